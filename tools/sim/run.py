"""``make sim``: the firmware, the emulated Air724UG and the local cloud, in one log.

``Sim`` provisions a demo product and device in a fresh ``aliyun-local`` state
dir, starts the cloud, the emulator (resolving the real Aliyun names to the local cloud) and the
firmware (firmware/main.py on the MicroPython VM with a 128 KB heap, its config.json pointing
the UART at the emulator). Every line of the three goes to one time-stamped log, prefixed with
its source (``device``, ``module``, ``cloud``, ``sim``). Once the device is online the sim
drives the downlink side every few seconds: a message on ``/pk/dn/user/get`` (the example app
echoes it to ``/user/update``) or a ``set-property`` (``LEDSwitch``, ``ReportInterval``, and an
out-of-range value the device must refuse with 460).

It runs until Ctrl-C, or for ``--seconds`` (``SIM_SECONDS``), then prints a summary from the
cloud's message log and the firmware's stats line, and exits 0 only if the device came online
and messages went both ways. Every child process is stopped on every exit path.
"""

import json
import os
import shutil
import tempfile
import threading
import time

from tools.sim import parts
from tools.sim.board import Firmware
from tools.sim.console import Console, format_row, shorten
from tools.sim.proc import SimError
from tools.sim.summary import render_summary, summarize

_FIRMWARE_RESTARTS = 3


def downlink_plan(step, interval_s):
    """The ``step``-th downlink: ``("pub", payload)`` or ``("set", params, expected code)``."""
    cycle = (
        ("pub",),
        ("set", {"LEDSwitch": 0}, 200),
        ("set", {"ReportInterval": 0}, 460),  # out of range: the device refuses it
        ("pub",),
        ("set", {"ReportInterval": interval_s}, 200),
        ("pub",),
        ("set", {"LEDSwitch": 1}, 200),
    )
    action = cycle[step % len(cycle)]
    if action[0] == "pub":
        payload = json.dumps({"seq": step, "text": "hello from the cloud"}, separators=(",", ":"))
        return ("pub", payload)
    return action


class Sim:
    def __init__(self, options, console=None):
        self.o = options
        self.console = console or Console(show_at=options.at)
        self.workdir = None
        self.cloud = self.emulator = self.firmware = None
        self.device = None
        self.online = threading.Event()
        self.stop = threading.Event()
        self.started_ms = None
        self.device_online_ms = None  # when the firmware's first "state online" line came
        self.restarts = 0
        self.rows = []

    def say(self, text):
        self.console.line("sim", text)

    # -- start --

    def start(self):
        self.workdir = tempfile.mkdtemp(prefix="air724-sim-")
        on_line = self.console.proc_line
        self.cloud = parts.Cloud(os.path.join(self.workdir, "cloud"), on_line)
        auth = self.o.auth
        product = self.cloud.add_product("sim demo", dynamic_register=auth == "dynreg")
        pk = product["productKey"]
        self.device = self.cloud.add_device(pk, parts.DEFAULT_IMEI)
        info = self.cloud.start()
        self.say(
            "cloud ready: product %s, device %s, mqtt %d, mqtts %d, https %d"
            % (
                pk,
                self.device["deviceName"],
                info["ports"]["mqtt"],
                info["ports"]["mqtts"],
                info["ports"]["https"],
            )
        )
        self.cloud.follow(self._row)
        self.emulator = parts.Emulator(info, self.o.tls, self.o.profile, on_line=on_line)
        ready = self.emulator.start()
        self.say("module ready on tcp://%s (profile %s)" % (ready["tcp"], self.o.profile))
        overrides = {"tls": self.o.tls, "telemetry_interval_s": self.o.interval}
        if self.o.ota:
            from tools.sim.ota import heapsize

            overrides["ota"], overrides["ota_trial_s"] = True, 10  # tools/sim/ota.py
            self.o.heapsize = heapsize(self.o)
        if self.o.name_from_imei:
            overrides["device_name"] = ""
        cfg = parts.device_config(
            self.device,
            auth,
            self.emulator.uart_url,
            product_secret=product["productSecret"],
            **overrides,
        )
        board = os.path.join(self.workdir, "board")
        self.firmware = Firmware(
            board, cfg, self.o.heapsize, mpy=not self.o.source, on_line=self._device_line
        ).prepare()
        kind = "source" if self.o.source else ".mpy"
        self.say(
            "firmware (%s, auth %s, tls %s) on micropython -X heapsize=%s"
            % (kind, auth, "on" if self.o.tls else "off", self.o.heapsize)
        )
        self.firmware.start()
        self.started_ms = int(self.firmware.proc.started_at * 1000)

    def _device_line(self, source, stream, text):
        if self.device_online_ms is None and text.endswith(" I state online"):
            self.device_online_ms = int(time.time() * 1000)
        self.console.proc_line(source, stream, text)

    def _row(self, row):
        self.rows.append(row)
        pk, dn = self.device["productKey"], self.device["deviceName"]
        text = format_row(row, pk, dn)
        if text is None:
            return
        self.console.line("cloud", text, row.get("time", 0) / 1000 or None)
        if row["type"] == "status" and row["status"] == "online":
            self.online.set()
        elif row["type"] == "status" and row["status"] == "offline":
            self.online.clear()

    # -- run --

    def drive(self, deadline):
        """Send downlinks while online until the deadline (None: until interrupted)."""
        step = 0
        while True:
            wait = self.o.every
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            if self.stop.wait(wait):
                return
            self._watch_firmware()
            if self.online.is_set():
                if self.o.ota and step == 1:
                    from tools.sim.ota import ota_demo

                    ota_demo(self)
                self._downlink(step)
                step += 1

    def _watch_firmware(self):
        """A firmware that exited was reset (unix port): start it again, like a board reboots."""
        proc = self.firmware.proc
        if proc.running():
            return
        if self.restarts >= _FIRMWARE_RESTARTS:
            raise SimError("the firmware keeps exiting (status %s)" % proc.popen.poll())
        self.restarts += 1
        self.say(
            "firmware exited (status %s): restarting it (%d/%d)"
            % (proc.popen.poll(), self.restarts, _FIRMWARE_RESTARTS)
        )
        self.firmware.start()

    def _downlink(self, step):
        pk, dn = self.device["productKey"], self.device["deviceName"]
        action = downlink_plan(step, self.o.interval)
        try:
            if action[0] == "pub":
                topic = "/%s/%s/user/get" % (pk, dn)
                self.say("pub %s %s" % (shorten(topic, pk, dn), action[1]))
                self.cloud.pub(topic, action[1])
                return
            params, expected = action[1], action[2]
            shown = " ".join("%s=%s" % item for item in params.items())
            reply = self.cloud.set_property(dn, **params)
            code = reply.get("code")
            note = "" if code == expected else " (expected %d)" % expected
            self.say("set-property %s -> set_reply %s%s" % (shown, code, note))
        except SimError as exc:
            self.say("downlink failed: %s" % exc)

    def run(self):
        """Start everything, drive it, stop it, print the summary; the exit status."""
        begin = time.monotonic()
        deadline = begin + self.o.seconds if self.o.seconds else None
        interrupted = False
        try:
            self.start()
            self.say(
                "running %s; Ctrl-C stops"
                % ("for %d s" % self.o.seconds if self.o.seconds else "until interrupted")
            )
            self.drive(deadline)
        except KeyboardInterrupt:
            interrupted = True
        except SimError as exc:
            self.say("error: %s" % exc)
        finally:
            stats = self.shutdown()
        summary = self.summary(stats)
        for line in render_summary(summary, time.monotonic() - begin):
            print(line, flush=True)
        if interrupted and not summary["online"]:
            return 130
        return 0 if summary["ok"] else 1

    def shutdown(self):
        """Stop the firmware first (its stats line), then the emulator and the cloud."""
        stats = None
        try:
            if self.firmware is not None and self.firmware.proc is not None:
                self.firmware.stop()
                stats = self.firmware.stats()
        finally:
            self.console.quiet.update(("cloud", "module"))
            for part in (self.emulator, self.cloud):
                if part is not None:
                    part.close()
        return stats

    def summary(self, stats):
        pk = self.device["productKey"] if self.device else ""
        dn = self.device["deviceName"] if self.device else ""
        rows = self.rows
        if self.cloud is not None and self.cloud.info is not None:
            try:
                rows = self.cloud.rows()  # the whole log, from the state dir
            except SimError as exc:
                self.say("cloud log unavailable (%s): using the followed rows" % exc)
        return summarize(rows, pk, dn, self.started_ms, stats, self.device_online_ms)

    def cleanup(self):
        if self.workdir and not self.o.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir:
            print("kept %s (config.json there holds the device secret)" % self.workdir)
