"""The shared parts of the measuring runs: the work folder, the cloud, every process started.

Every run uses tools/sim/ (the plumbing of ``make sim`` and the end-to-end tests): one local
cloud for the whole benchmark (a device per figure), a fresh emulator per run, the firmware
from the ``.mpy`` build in a board folder. Waits block on log lines and cloud rows, with
timeouts; every process is registered with ``Context`` and stopped on every exit path.
"""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from tools import mpy_build
from tools.cloud.server import read_server_file
from tools.sim.board import Firmware
from tools.sim.parts import Cloud, Emulator, device_config
from tools.sim.proc import BIN, ROOT, Proc
from tools.sim.rows import RowLog, row_matches

HERE = Path(__file__).resolve().parent
MPY_PATH = ".frozen:build/lib"
BAUD = 115200
FAILURE = r"MemoryError|Traceback|unexpected error"
ONLINE = r" I state online$"
WAIT = 45.0


class BenchError(Exception):
    pass


class Lines:
    """Lines of one process with the host time each arrived (for latencies and boot times)."""

    def __init__(self):
        self.items = []  # (epoch s, source, stream, text)
        self._lock = threading.Lock()

    def __call__(self, source, stream, text):
        with self._lock:
            self.items.append((time.time(), source, stream, text))

    def find(self, pattern, source=None):
        regex = re.compile(pattern)
        with self._lock:
            items = list(self.items)
        return [
            (when, m)
            for when, src, _, text in items
            if (source is None or src == source)
            for m in [regex.search(text)]
            if m
        ]


class Rows(RowLog):
    """The cloud's message log, with the bench's per-device selection and condition waits."""

    def mark(self):
        with self._cond:
            return len(self.rows)

    def select(self, since, device, **fields):
        with self._cond:
            rows = self.rows[since:]
        fields["deviceName"] = device
        return [r for r in rows if row_matches(r, fields)]

    def wait_until(self, check, timeout, abort=None):
        """Block until ``check()`` is true; ``abort()`` may return a reason to give up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                reason = abort() if abort else None
                if reason:
                    raise BenchError(reason)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("timed out after %g s" % timeout)
                self._cond.wait(min(left, 0.2))


class BenchFirmware(Firmware):
    """The firmware, optionally run through tools/bench/vm_firmware.py (``-m bench_fw``)."""

    def __init__(self, board_dir, config, heapsize, mode=None, args=(), on_line=None):
        super().__init__(board_dir, config, heapsize, mpy=True, on_line=on_line)
        self.mode = mode
        self.args = [str(a) for a in args]

    def prepare(self):
        super().prepare()
        if self.mode:
            src = HERE / "vm_firmware.py"
            cmd = [mpy_build.mpy_cross(), "-o", str(self.board_dir / "bench_fw.mpy")]
            subprocess.run(cmd + ["-s", "bench_fw.py", str(src)], check=True)
        return self

    def start(self):
        if not self.mode:
            return super().start()
        return self.launch(["-m", "bench_fw", self.mode] + self.args)

    def failure(self):
        """Why the firmware cannot pass any more (a MemoryError, a crash, an exit), or None."""
        found = self.proc.find(FAILURE)
        if found:
            return "firmware: " + found[0].string.strip()
        if not self.proc.running():
            return "firmware exited (status %s)" % self.proc.popen.poll()
        return None

    def wait(self, pattern, timeout=WAIT, since=0):
        """The index of the first line matching ``pattern``; fails fast on ``failure()``."""
        index, match = self.proc.wait_for(
            "(?P<want>%s)|(?P<bad>%s)" % (pattern, FAILURE), timeout, since=since
        )
        if match.group("bad"):
            raise BenchError("firmware: " + match.string.strip())
        return index


class Context:
    """The shared cloud, the work folder and every process started (stopped by ``close``)."""

    def __init__(self, workdir, say=print):
        self.workdir = Path(workdir)
        self.say = say
        self.parts = []
        self._lock = threading.Lock()
        self.cloud = None
        self.product = None
        self.devices = {}
        self.rows = Rows()
        self.control = None
        self.heapsize = None  # the heap of the runs other than the bisection
        self.scenarios = 0
        self._devices_lock = threading.Lock()

    def track(self, part):
        with self._lock:
            self.parts.append(part)
        return part

    def close(self):
        with self._lock:
            parts, self.parts = self.parts[::-1], []
        for part in parts:
            try:
                part.close()
            except Exception as exc:  # keep stopping the others
                self.say("bench: stopping %r failed: %r" % (part, exc))

    def start_cloud(self):
        if self.cloud is not None:
            return
        self.cloud = self.track(Cloud(self.workdir / "cloud"))
        # Dynamic registration on: the heap figure logs in each way (the others sign directly).
        self.product = self.cloud.add_product("bench", dynamic_register=True)
        self.cloud.start()
        self.cloud.follow(self.rows.add)
        self.control = read_server_file(self.cloud.state_dir)

    def device(self, name):
        with self._devices_lock:  # runs on several threads (boot and idle side by side)
            self.start_cloud()
            if name not in self.devices:
                self.devices[name] = self.cloud.add_device(self.product["productKey"], name)
            return self.devices[name]

    def pub(self, topic, payload, qos=0):
        """A downlink through the control API (in-process: no CLI start-up per message)."""
        from tools.cloud.cli import control_ok

        body = {"topic": topic, "payload": payload, "qos": qos}
        return control_ok(self.control, "POST", "/pub", body)

    def emulator(self, profile="fast", args=(), lines=None, tls=True):
        emu = Emulator(self.cloud.info, tls, profile, list(args), lines)
        self.track(emu)
        emu.start()
        return emu

    def firmware(
        self, name, device, emu, heapsize, mode=None, args=(), lines=None, auth="direct", **cfg
    ):
        config = device_config(device, auth, emu.uart_url, **cfg)
        board = self.workdir / ("board-" + name)
        fw = BenchFirmware(board, config, heapsize, mode, args, lines)
        self.track(fw)
        fw.prepare()
        fw.start()
        return fw


def run_vm(args, micropypath, timeout):
    """Run ``micropython ARGS`` from the project root with ``MICROPYPATH``; what it printed."""
    env = dict(os.environ, MICROPYPATH=micropypath)
    argv = [str(a) for a in [BIN / "micropython"] + list(args)]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def vm_failed(name, out):
    """The BenchError for a run whose figures are missing: the end of what it printed."""
    return BenchError("%s: %s" % (name, (out.stderr or out.stdout).strip()[-300:]))


def user_topic(device, name):
    return "/%s/%s/user/%s" % (device["productKey"], device["deviceName"], name)


def kib(nbytes):
    return "%dk" % (nbytes // 1024)


class Stoppable(Proc):
    """A plain child process with ``close()`` like the parts of tools.sim."""

    def close(self):
        self.stop()


def run_parallel(jobs):
    """Run callables on threads; their results (or the exception each raised) by name."""
    results = {}

    def worker(name, job):
        try:
            results[name] = job()
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=worker, args=item, daemon=True, name=item[0])
        for item in jobs.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
    return results
