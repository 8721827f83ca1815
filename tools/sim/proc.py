"""Child processes for ``make sim``, the end-to-end tests and the benchmark.

``Proc`` reads a child's stdout and stderr on threads, keeps the lines and hands each one to an
``on_line(source, stream, text)`` callback; ``wait_for`` blocks on a condition until a line
matches (never a sleep). ``stop`` ends a child (signal, then kill after a grace period).
"""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts and the micropython VM
CTRL_C = b"\x03"


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
