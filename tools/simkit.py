"""Process plumbing for ``make sim`` and the end-to-end tests.

Starts the three parts of a run without hardware, each a child process of its console script:

- ``Cloud``: ``aliyun-local serve`` on free loopback ports, with a product and device provisioned
  in its state dir, its CLI (``pub``, ``set-property``, ``log --json``) and a log follower;
- ``Emulator``: ``air724-sim --listen tcp://127.0.0.1:0`` with ``--resolve`` rules mapping the
  real Aliyun host names to the local cloud (``--strict-resolve``: nothing leaves loopback);
- ``Firmware``: firmware/main.py under the ``micropython`` VM (``-X heapsize``) in a board folder
  laid out like the device (main.py and boot.py as source, everything else ``.mpy`` or ``.py``,
  lib/ beside them, a generated config.json).

``Proc`` reads each child's stdout and stderr on threads, keeps the lines and hands each one to
an ``on_line(source, stream, text)`` callback; ``wait_for`` blocks on a condition until a line
matches (never a sleep). ``stop`` ends a child (signal, then kill after a grace period), and
every class stops its process on every exit path through ``close()``.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts and the micropython VM
REGION = "cn-shanghai"
MQTT_HOSTS = "*.iot-as-mqtt.%s.aliyuncs.com" % REGION
AUTH_HOST = "iot-auth.%s.aliyuncs.com" % REGION
DEFAULT_IMEI = "862991419835241"  # the emulator's default IMEI (the seed's DeviceName)
# MicroPython heap of the firmware under make sim and the end-to-end tests: the budget of the
# brief, on this 64-bit port (see README "Memory").
FIRMWARE_HEAP = "128k"


class SimError(Exception):
    """A part failed to start or a wait timed out; the message says which and why."""


class Proc:
    """A child process whose output lines are collected by reader threads."""

    def __init__(self, name, argv, cwd=None, env=None, on_line=None, stdin=False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.env = env
        self.on_line = on_line
        self.stdin = stdin
        self.lines = []  # (stream, text)
        self.popen = None
        self.started_at = None
        self._cond = threading.Condition()
        self._threads = []
        self._open_streams = 0

    def start(self):
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C reaches the orchestrator only
        )
        self.started_at = time.time()
        for stream_name, stream in (("out", self.popen.stdout), ("err", self.popen.stderr)):
            thread = threading.Thread(
                target=self._read, args=(stream_name, stream), daemon=True, name=self.name
            )
            self._open_streams += 1
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self, stream_name, stream):
        try:
            for raw in iter(stream.readline, b""):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._cond:
                    self.lines.append((stream_name, text))
                    self._cond.notify_all()
                if self.on_line is not None:
                    self.on_line(self.name, stream_name, text)
        finally:
            stream.close()
            with self._cond:
                self._open_streams -= 1
                self._cond.notify_all()

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def wait_for(self, pattern, timeout, stream=None, since=0):
        """The first match of ``pattern`` in a line (index >= ``since``) as ``(index, match)``.

        Raises SimError when the time is up or the process ended without printing it.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self.lines):
                    where, text = self.lines[index]
                    if stream is None or where == stream:
                        match = regex.search(text)
                        if match:
                            return index, match
                    index += 1
                if self._open_streams == 0:
                    raise SimError(
                        "%s ended (status %s) before printing /%s/:\n%s"
                        % (self.name, self.popen.poll(), pattern, self.tail())
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SimError(
                        "%s: no /%s/ within %g s:\n%s" % (self.name, pattern, timeout, self.tail())
                    )
                self._cond.wait(left)

    def find(self, pattern, stream=None):
        """Every match of ``pattern`` so far."""
        regex = re.compile(pattern)
        with self._cond:
            lines = list(self.lines)
        found = []
        for where, text in lines:
            if stream is None or where == stream:
                match = regex.search(text)
                if match:
                    found.append(match)
        return found

    def tail(self, n=25):
        with self._cond:
            lines = self.lines[-n:]
        return "\n".join("  %s %s" % (where, text) for where, text in lines)

    def wait_exit(self, timeout):
        """The exit status once the process ended (SimError if it still runs after timeout)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SimError("%s still running after %g s" % (self.name, timeout)) from None

    def send(self, data):
        """Write ``data`` to the process's stdin (started with ``stdin=True``); False if it
        could not (ended, or no stdin)."""
        try:
            self.popen.stdin.write(data)
            self.popen.stdin.flush()
        except (AttributeError, OSError, ValueError):
            return False
        return True

    def stop(self, sig=signal.SIGTERM, grace=10.0):
        """Signal the process, wait ``grace`` s, then kill it; returns the exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        for thread in self._threads:
            thread.join(5)
        if self.popen.stdin:
            self.popen.stdin.close()
        return self.popen.returncode


def run_json(argv, timeout=60):
    """Run a CLI with ``--json``; its parsed stdout (SimError with its stderr on failure)."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SimError("%s failed (%d): %s" % (Path(argv[0]).name, proc.returncode, proc.stderr))
    return json.loads(proc.stdout)


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


def layout_board(board_dir, mpy=True):
    """Lay out the device's filesystem in ``board_dir``: main.py and boot.py as source, the
    other firmware modules and lib/ as .mpy (``mpy``) or .py. Returns ``board_dir``."""
    board = Path(board_dir)
    if board.exists():
        shutil.rmtree(board)
    board.mkdir(parents=True)
    if mpy:
        from tools import mpy_build

        mpy_build.build()
        base, ext = ROOT / "build", "*.mpy"
    else:
        base, ext = ROOT, "*.py"
    for src in sorted((base / "firmware").rglob(ext)):
        rel = src.relative_to(base / "firmware")
        if rel.stem in ("main", "boot") and rel.parent == Path("."):
            continue
        _copy(src, board / rel)
    for name in ("main.py", "boot.py"):
        _copy(ROOT / "firmware" / name, board / name)
    for src in sorted((base / "lib").rglob(ext)):
        rel = src.relative_to(base / "lib")
        if rel.parts[0].endswith(".egg-info"):
            continue
        _copy(src, board / "lib" / rel)
    return board


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


CTRL_C = b"\x03"


class Firmware:
    """firmware/main.py on the micropython VM in a board folder with ``config``."""

    def __init__(self, board_dir, config, heapsize=FIRMWARE_HEAP, mpy=True, on_line=None):
        self.board_dir = Path(board_dir)
        self.config = config
        self.heapsize = heapsize
        self.mpy = mpy
        self.on_line = on_line
        self.proc = None

    def prepare(self):
        layout_board(self.board_dir, self.mpy)
        self.write_config(self.config)
        return self

    def write_config(self, config):
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        (self.board_dir / "config.json").write_text(text)

    def start(self):
        return self.launch(["main.py"])

    def launch(self, args):
        """Run the VM in the board folder with ``args``, the board's paths and a console that
        ``stop`` can send Ctrl-C to (FIRMWARE_STOP=stdin, see firmware/boards/unix.py)."""
        path = [".frozen", self.board_dir / "lib", self.board_dir]
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(map(str, path)), FIRMWARE_STOP="stdin")
        argv = [BIN / "micropython", "-X", "heapsize=" + self.heapsize] + args
        self.proc = Proc("device", argv, self.board_dir, env, self.on_line, stdin=True)
        return self.proc.start()

    def wait_for(self, pattern, timeout=60, since=0):
        return self.proc.wait_for(pattern, timeout, since=since)

    def stats(self):
        """The ``stats {json}`` line main.py logs when stopped, or None."""
        found = self.proc.find(r" I stats (\{.*\})$") if self.proc else []
        return json.loads(found[-1].group(1)) if found else None

    def stop(self, grace=10.0):
        """Ctrl-C on the console (the stats line); SIGINT, then kill, if it still runs after
        ``grace`` s each; the exit status."""
        if self.proc is None:
            return None
        if self.proc.running() and self.proc.send(CTRL_C):
            try:
                self.proc.wait_exit(grace)
            except SimError:
                pass  # SIGINT next
        return self.proc.stop(signal.SIGINT, grace)

    close = stop


class RowLog:
    """The cloud's message-log rows, as ``log --follow --json`` delivers them (``add`` is the
    follower's callback); the end-to-end tests and the benchmark wait on them."""

    def __init__(self):
        self.rows = []
        self._cond = threading.Condition()

    def add(self, row):
        with self._cond:
            self.rows.append(row)
            self._cond.notify_all()

    def matching(self, **fields):
        """Rows whose fields equal ``fields``; ``topic`` matches as a suffix."""
        with self._cond:
            rows = list(self.rows)
        return [row for row in rows if row_matches(row, fields)]

    def wait(self, timeout=60, since=0, **fields):
        """The first row from index ``since`` on matching ``fields``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self.rows):
                    if row_matches(self.rows[index], fields):
                        return self.rows[index]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join("  " + json.dumps(r) for r in self.rows[-15:])
                    message = "no cloud log row %s in %g s:\n%s" % (fields, timeout, tail)
                    raise AssertionError(message)
                self._cond.wait(left)


def row_matches(row, fields):
    """``fields`` equal the row's (as text); ``topic`` matches as a suffix."""
    for key, want in fields.items():
        have = row.get(key)
        if key == "topic":
            if not (have or "").endswith(want):
                return False
        elif str(have) != str(want):
            return False
    return True
