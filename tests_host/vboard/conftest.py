"""Fixtures for the virtual board: a ``vboard`` process on a pty, driven by real mpremote.

Every board has its own folder (its ``/``) and console log. Waits are for output, with
timeouts, never fixed sleeps; every process started here is stopped by its fixture.
"""

import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


class Board:
    """A running vboard: ``port``, ``folder`` (the board's /), ``log`` (console output)."""

    def __init__(self, folder: Path, log: Path, *args: str):
        self.folder, self.log = folder, log
        cmd = [str(BIN / "vboard"), "--dir", str(folder), "--log", str(log), *args]
        # stderr to a file: --online echoes the cloud's log there for as long as it runs.
        self.err_path = log.with_suffix(".stderr")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        self.port = self._first_line(timeout=20)

    def _first_line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise AssertionError("vboard printed no port")
        line = self.proc.stdout.readline().decode().strip()
        assert line.startswith("/dev/"), f"vboard's first line is not a port: {line!r}"
        return line

    def mpremote(self, *args: str, timeout: float = 30, check: bool = True):
        cmd = [str(BIN / "mpremote"), "connect", self.port, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def exec(self, code: str, *, resume: bool = False) -> str:
        args = ("resume", "exec", code) if resume else ("exec", code)
        return self.mpremote(*args).stdout

    def log_text(self) -> str:
        return self.log.read_bytes().decode(errors="replace") if self.log.exists() else ""

    def wait_log(self, text: str, after: int = 0, timeout: float = 10) -> int:
        """Wait until ``text`` appears in the console log after offset ``after``; its end."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.log_text().find(text, after)
            if found >= 0:
                return found + len(text)
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the console: {self.log_text()[after:]!r}")
            time.sleep(0.02)  # polling a file: the wait itself is bounded by the deadline

    def err_text(self) -> str:
        return self.err_path.read_bytes().decode(errors="replace")

    def wait_err(self, pattern: str, timeout: float = 30) -> "re.Match":
        """Wait until ``pattern`` matches the vboard's stderr; the match."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.err_text(), re.M)
            if found:
                return found
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"/{pattern}/ not on stderr: {self.err_text()!r}")
            time.sleep(0.05)  # polling a file: the wait itself is bounded by the deadline

    def console(self) -> "Console":
        return Console(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            # Still running: its stack (SIGUSR1) goes into stderr, which the fixture reports.
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        self.stderr = self.err_text()


class Console:
    """The board's serial console through pyserial, as a terminal program sees it."""

    def __init__(self, port: str):
        self.serial = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""

    def send(self, data: bytes) -> None:
        self.serial.write(data)

    def expect(self, text: bytes, timeout: float = 10) -> bytes:
        """Read until ``text``; return everything read up to and including it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not received; got {self.seen!r}")
            self.seen += self.serial.read(max(1, self.serial.in_waiting))
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def friendly(self) -> None:
        """Interrupt whatever runs, go to the friendly REPL and wait until it has caught up."""
        self.marks = getattr(self, "marks", 0) + 1
        self.send(b"\x03\x02print('in' + 'sync%d')\r" % self.marks)
        self.expect(b"insync%d\r\n>>> " % self.marks)

    def close(self) -> None:
        self.serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def start_vboard(tmp_path):
    """Factory: start a vboard with extra CLI arguments; all are stopped after the test."""
    boards = []

    def start(*args: str, name: str = "board") -> Board:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        board = Board(folder, tmp_path / (name + ".log"), *args)
        boards.append(board)
        return board

    yield start
    for board in boards:
        board.stop()
        assert board.proc.returncode == 0, board.stderr


@pytest.fixture
def vboard(start_vboard):
    return start_vboard()


def write_files(folder: Path, files: dict) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def listener():
    """A module's address that accepts TCP connections and never answers: the firmware keeps
    trying."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield "tcp://127.0.0.1:%d" % server.getsockname()[1]
