"""End-to-end harness: the firmware on the MicroPython VM against the emulator and the local cloud.

``Stack`` wraps tools/sim/ (the same plumbing as ``make sim``) for tests:

    def test_direct_auth_comes_online(stack):
        stack.start(auth="direct")                         # cloud, module, firmware
        stack.wait_device(r" I state online")              # a firmware log line (regex)
        stack.wait_row(type="status", status="online")     # a row of the cloud's message log
        stack.user_get('{"n":1}')                          # downlink on /pk/dn/user/get
        stack.wait_row(type="up", topic="/user/update")    # the example app's echo
        stack.fault("drop_mqtt")                           # air724-sim ctl drop_mqtt
        assert stack.set_property(ReportInterval=0)["code"] == 460

Every wait blocks on the output or the log of a process with a timeout (never a fixed sleep) and
fails with the tail of the relevant output. All processes stop when the fixture ends.
"""

import json
import os
import subprocess
from pathlib import Path

from tools.sim.board import FIRMWARE_HEAP, Firmware
from tools.sim.parts import DEFAULT_IMEI, Cloud, Emulator, device_config
from tools.sim.proc import BIN, ROOT
from tools.sim.rows import RowLog

WAIT = 60  # seconds: generous for a loaded CI machine; a passing wait returns at once


class Stack:
    """Cloud + emulator + firmware for one test; ``close()`` stops whatever was started."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.lines = []  # every line of every process: (source, stream, text)
        self.rows = RowLog()
        self.cloud = self.emulator = self.firmware = None
        self.product = self.device = None

    def _line(self, source, stream, text):
        self.lines.append((source, stream, text))

    def start_cloud(self, dynamic_register=False):
        self.cloud = Cloud(self.workdir / "cloud", self._line)
        self.product = self.cloud.add_product("e2e", dynamic_register=dynamic_register)
        self.device = self.cloud.add_device(self.product["productKey"], DEFAULT_IMEI)
        self.cloud.start()
        self.cloud.follow(self.rows.add)
        return self.cloud

    def start_emulator(self, tls=True, profile="fast", args=()):
        self.emulator = Emulator(self.cloud.info, tls, profile, args, self._line)
        self.emulator.start()
        return self.emulator

    def config(self, auth="direct", **overrides):
        """config.json for the provisioned device and the running emulator."""
        url = self.emulator.uart_url if self.emulator else "tcp://127.0.0.1:9"
        secret = self.product["productSecret"] if self.product else ""
        return device_config(self.device, auth, url, product_secret=secret, **overrides)

    def start_firmware(self, config, heapsize=None, mpy=True, replace=None):
        """Run the firmware with ``config`` (a dict, or raw text for broken files).

        The heap is ``E2E_HEAPSIZE`` (the benchmark's search sets it), else ``FIRMWARE_HEAP``.
        ``replace`` maps board modules to source files put there instead (``{"app": path}``:
        ``app.mpy`` goes, ``app.py`` comes).
        """
        heapsize = heapsize or os.environ.get("E2E_HEAPSIZE", FIRMWARE_HEAP)
        self.firmware = Firmware(
            self.workdir / "board", config, heapsize, mpy, on_line=self._line
        ).prepare()
        for name, source in (replace or {}).items():
            for old in self.firmware.board_dir.glob(name + ".*"):
                old.unlink()
            (self.firmware.board_dir / (name + ".py")).write_text(Path(source).read_text())
        self.firmware.start()
        return self.firmware

    def start(self, auth="direct", tls=True, profile="fast", emulator_args=(), **overrides):
        """The whole stack; ``overrides`` go into config.json (e.g. ``device_name=""``)."""
        self.start_cloud(dynamic_register=auth == "dynreg")
        self.start_emulator(tls, profile, emulator_args)
        self.start_firmware(self.config(auth, tls=tls, **overrides))
        return self

    # -- waits and actions --

    def wait_device(self, pattern, timeout=WAIT, since=0):
        """The first firmware log line matching ``pattern`` (a regex) as a match object."""
        return self.firmware.wait_for(pattern, timeout, since)[1]

    def wait_row(self, timeout=WAIT, since=0, **fields):
        return self.rows.wait(timeout, since, **fields)

    def fault(self, kind, **params):
        reply = self.emulator.ctl(kind, **params)
        assert reply.get("ok"), reply
        return reply

    def topic(self, name):
        return "/%s/%s/user/%s" % (self.device["productKey"], self.device["deviceName"], name)

    def user_get(self, payload, qos=0):
        return self.cloud.pub(self.topic("get"), payload, qos)

    def set_property(self, timeout=10.0, **params):
        return self.cloud.set_property(self.device["deviceName"], timeout, **params)

    def cli(self, *args, timeout=60):
        """``aliyun-local ARGS --json`` on this cloud: (exit code, JSON or None, stderr)."""
        argv = [BIN / "aliyun-local", "--state-dir", self.cloud.state_dir, *args, "--json"]
        proc = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout
        )
        out = proc.stdout.strip()
        return (
            proc.returncode,
            json.loads(out) if out.startswith(("{", "[")) else None,
            proc.stderr,
        )

    def secrets_seen(self):
        """Lines of the firmware or the cloud that print the device or product secret (the
        module's AT transcript is the UART itself: dynamic registration carries one there)."""
        device, product = self.device or {}, self.product or {}
        secrets = [s for s in (device.get("deviceSecret"), product.get("productSecret")) if s]
        return [
            line
            for line in self.lines
            if line[0] != "module" and any(s in line[2] for s in secrets)
        ]

    def close(self):
        for part in (self.firmware, self.emulator, self.cloud):
            if part is not None:
                try:
                    part.close()
                except Exception as exc:  # keep stopping the others
                    self.lines.append(("harness", "err", "close failed: %r" % exc))


def run_vm(script, *args, timeout=60, heapsize="128k"):
    """Run a MicroPython script with firmware/ and lib/ from source on its path."""
    path = [".frozen", ROOT / "lib", ROOT / "firmware"]
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(map(str, path)))
    cmd = [str(BIN / "micropython"), "-X", "heapsize=" + heapsize, str(script)]
    return subprocess.run(
        cmd + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout
    )
