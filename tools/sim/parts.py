"""The cloud and the module of a run without hardware, each a child process of its console
script:

- ``Cloud``: ``aliyun-local serve`` on free loopback ports, with a product and device provisioned
  in its state dir, its CLI (``pub``, ``set-property``, ``log --json``) and a log follower;
- ``Emulator``: ``air724-sim --listen tcp://127.0.0.1:0`` with ``--resolve`` rules mapping the
  real Aliyun host names to the local cloud (``--strict-resolve``: nothing leaves loopback).

Every class stops its process on every exit path through ``close()``.
"""

import json
import signal
import subprocess
from pathlib import Path

from tools.sim.proc import BIN, Proc, SimError, run_json

REGION = "cn-shanghai"
MQTT_HOSTS = "*.iot-as-mqtt.%s.aliyuncs.com" % REGION
AUTH_HOST = "iot-auth.%s.aliyuncs.com" % REGION
DEFAULT_IMEI = "862991419835241"  # the emulator's default IMEI (the seed's DeviceName)


class Cloud:
    """``aliyun-local`` with its own state dir: provision, serve, console commands, log."""

    def __init__(self, state_dir, on_line=None):
        self.state_dir = Path(state_dir)
        self.on_line = on_line
        self.exe = BIN / "aliyun-local"
        self.info = None
        self.proc = None
        self.follower = None

    def cli(self, *args, timeout=60):
        return run_json([self.exe, "--state-dir", self.state_dir, *args, "--json"], timeout)

    def add_product(self, name="sim demo", dynamic_register=False):
        args = ["product", "add", name] + (["--dynamic-register"] if dynamic_register else [])
        return self.cli(*args)

    def add_device(self, product_key, device_name=None, secret=None):
        args = ["device", "add", product_key] + ([device_name] if device_name else [])
        return self.cli(*args + (["--secret", secret] if secret else []))

    def start(self, timeout=60):
        argv = [self.exe, "--state-dir", self.state_dir, "serve", "--quiet"]
        for name in ("mqtt", "mqtts", "https", "control"):
            argv += ["--%s-port" % name, "0"]
        self.proc = Proc("cloud", argv, on_line=self._line).start()
        _, match = self.proc.wait_for(r'^\{.*"ready": true', timeout, stream="out")
        self.info = json.loads(match.string)
        return self.info

    def _line(self, source, stream, text):
        if self.on_line is not None and not (stream == "out" and text.startswith("{")):
            self.on_line(source, stream, text)

    def follow(self, on_row):
        """Start ``log --follow --json``; ``on_row(row)`` for every message-log row."""

        def line(source, stream, text):
            if stream == "out" and text.startswith("{"):
                on_row(json.loads(text))
            elif self.on_line is not None and text:
                self.on_line("cloud", stream, text)

        # The whole log first (the state dir is fresh): rows written before the follower
        # connected are not lost, however fast the device comes online.
        argv = [self.exe, "--state-dir", self.state_dir, "log", "--follow", "--json"]
        self.follower = Proc("cloud-log", argv + ["--limit", "1000000"], on_line=line).start()
        return self.follower

    def pub(self, topic, payload, qos=0):
        return self.cli("pub", topic, payload, "--qos", str(qos))

    def set_property(self, device, timeout=10.0, **params):
        """``set-property``; the device's set_reply (a dict with its ``code``)."""
        assignments = ["%s=%s" % (key, json.dumps(value)) for key, value in params.items()]
        argv = [self.exe, "--state-dir", self.state_dir, "set-property", device]
        argv += assignments + ["--timeout", str(timeout), "--json"]
        proc = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout + 30
        )
        if proc.stdout.strip().startswith("{"):
            return json.loads(proc.stdout)
        raise SimError("set-property: " + (proc.stderr.strip() or "no reply"))

    def rows(self, limit=100000):
        """The message log, oldest first."""
        return self.cli("log", "--limit", str(limit))

    def close(self):
        for proc in (self.follower, self.proc):
            if proc is not None:
                proc.stop(signal.SIGINT)


def resolve_rules(info, tls=True):
    """``--resolve`` rules sending the real Aliyun names to the local cloud (reference §1.1:
    TLS and plain TCP share port 1883 at Aliyun; locally they are two listeners)."""
    ports = info["ports"]
    mqtt_1883 = ports["mqtts"] if tls else ports["mqtt"]
    return [
        "%s:1883=127.0.0.1:%d" % (MQTT_HOSTS, mqtt_1883),
        "%s:8883=127.0.0.1:%d" % (MQTT_HOSTS, ports["mqtts"]),
        "%s=127.0.0.1:%d" % (AUTH_HOST, ports["https"]),
    ]


class Emulator:
    """``air724-sim`` on a loopback TCP port, resolving Aliyun's names to ``cloud_info``."""

    def __init__(self, cloud_info, tls=True, profile="fast", args=(), on_line=None):
        self.cloud_info = cloud_info
        self.tls = tls
        self.profile = profile
        self.args = list(args)
        self.on_line = on_line
        self.proc = None
        self.ready = None

    def start(self, timeout=60):
        argv = [BIN / "air724-sim", "--listen", "tcp://127.0.0.1:0", "--strict-resolve"]
        argv += ["--profile", self.profile, "--color", "never", "--imei", DEFAULT_IMEI]
        for rule in resolve_rules(self.cloud_info, self.tls):
            argv += ["--resolve", rule]
        self.proc = Proc("module", argv + self.args, on_line=self._line).start()
        _, match = self.proc.wait_for(r'^\{.*"ready": true', timeout, stream="out")
        self.ready = json.loads(match.string)
        return self.ready

    def _line(self, source, stream, text):
        if self.on_line is not None and not (stream == "out" and text.startswith("{")):
            self.on_line(source, stream, text)

    @property
    def uart_url(self):
        return "tcp://" + self.ready["tcp"]

    def ctl(self, command, **params):
        """A fault or query through ``air724-sim ctl``; the JSON reply."""
        argv = [BIN / "air724-sim", "ctl", "--ctl", self.ready["ctl"], command]
        argv += ["%s=%s" % (key, value) for key, value in params.items()]
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)
        return json.loads(proc.stdout)

    def close(self):
        if self.proc is not None:
            self.proc.stop(signal.SIGINT)


def device_config(device, auth="direct", uart_url="", product_secret="", **overrides):
    """config.json for the provisioned ``device`` (the triple as ``device add --json`` prints)."""
    cfg = {
        "product_key": device["productKey"],
        "device_name": device["deviceName"],
        "device_secret": device.get("deviceSecret", "") if auth != "dynreg" else "",
        "auth": auth,
        "region": REGION,
        "telemetry_interval_s": 10,
        "echo_user_get": True,
        "log_level": "info",
        "uart": {"url": uart_url},
    }
    if auth == "dynreg":
        cfg["product_secret"] = product_secret
    cfg.update(overrides)
    return cfg
