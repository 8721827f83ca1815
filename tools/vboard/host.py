"""The virtual board's host process: a pty that behaves like a MicroPython board's console.

The host owns the pty and speaks the board's console protocols on it: the friendly REPL (line
editing, continuation lines, paste mode), the raw REPL (Ctrl-A, Ctrl-B, Ctrl-D, raw-paste with
flow control), soft reset (Ctrl-D at an empty prompt, ``sys.exit()``) and hard reset
(``machine.reset()``). Code runs in a child ``micropython`` VM (vm_main.py), a fresh one per
reset, with the board folder as its ``/``. While code runs, console bytes go to the VM's stdin and
Ctrl-C becomes SIGINT, which the unix port turns into KeyboardInterrupt.
"""

import base64
import ctypes
import os
import select
import selectors
import signal
import subprocess
import sys
import time
import tty
import zlib
from pathlib import Path

from tools.sim.board import FIRMWARE_HEAP
from tools.vboard.console import ConsoleModes
from tools.vboard.editor import CTRL_C

HERE = Path(__file__).resolve().parent
BACKLOG = 1 << 16  # console output kept while no one reads the pty; older bytes are dropped
SIGINT_GAP = 0.25  # the unix port exits on a 2nd SIGINT before the 1st is handled
# SIGINT raises KeyboardInterrupt wherever the VM is, even in C code; one that lands after the
# code ended can hurt the VM. So a Ctrl-C waits this long: code that ends meanwhile was not
# interrupted and the Ctrl-C goes to the REPL, as it would on a board.
GRACE = 0.05

TRACE = os.environ.get("VBOARD_TRACE")  # a file: control messages and console input

# The notices that answer each command (so it need not be resent).
ANSWERS = {b"X": (b"G", b"E"), b"F": (b"G", b"E"), b"C": (b"C",)}

# Input states
BOOTING, IDLE, RUNNING, WAITING = "booting", "idle", "running", "waiting"


def _trace(*items) -> None:
    with open(TRACE, "a") as f:
        print("vboard:", *items, file=f)


def _die_with_parent() -> None:
    # Linux: the VM gets SIGKILL if the host dies, even while user code runs forever.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def micropython_exe() -> str:
    exe = Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


class VirtualBoard:
    """One virtual board: ``open()`` it, then ``serve()`` until ``stop()``."""

    def __init__(self, folder, heapsize=FIRMWARE_HEAP, log=None, on_ready=None):
        self.folder = Path(folder).resolve()
        self.heapsize = heapsize
        self.log = open(log, "ab", buffering=0) if log else None
        self.sel = selectors.DefaultSelector()
        self.port = None
        self.vm = None
        self.seq = 0
        self.pending = bytearray()  # console input not yet consumed
        self.out = bytearray()  # console output the pty did not take yet
        self.to_vm = bytearray()  # console input for the VM's stdin
        self.banner = b"MicroPython"
        self.console = ConsoleModes(self)  # the REPL's input modes (console.py)
        self._stopping = False
        self.failed = None  # why serve() gave up, if it did
        self.on_ready = on_ready  # called with the port once the first VM is up
        self.wdt_ms, self.wdt_due = 0, None  # the watchdog stand-in: timeout, deadline
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> str:
        """Create the pty and power the board on; return the port (pty path)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or line editing until a client configures it
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self.sel.register(self.master, selectors.EVENT_READ, "pty")
        self._power_on(soft=False)
        return self.port

    def stop(self) -> None:
        """Ask ``serve()`` to return (safe from a signal handler or another thread)."""
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def serve(self) -> None:
        while not self._stopping:
            dues = [d for d in (self.job.get("due") if self.job else None, self.wdt_due) if d]
            timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
            for key, events in self.sel.select(timeout):
                if self._stopping:
                    break
                self._dispatch(key.data, events)
            if self.job and self.job.get("due") and time.monotonic() >= self.job["due"]:
                self._interrupt()
            if self.wdt_due and time.monotonic() >= self.wdt_due and self.vm is not None:
                self._watchdog_bite()
        self.close()

    def close(self) -> None:
        self._kill_vm()
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.sel.close()
        if self.log:
            self.log.close()

    def _dispatch(self, what, events) -> None:
        if what == "wake":
            os.read(self._wake_r, 64)
        elif what == "pty":
            if events & selectors.EVENT_READ:
                self._pty_read()
            if events & selectors.EVENT_WRITE:
                self._flush_out()
        elif what == "vm-out":
            self._vm_read()
        elif what == "vm-ctl":
            self._ctl_read()
        elif what == "vm-in":
            self._flush_to_vm()

    # -- the VM ----------------------------------------------------------------------------

    def _power_on(self, soft: bool) -> None:
        """Start a fresh VM; it runs boot.py, then main.py in friendly mode, then the REPL."""
        self._kill_vm()
        self.console.reset(hard=not soft)  # the raw/friendly mode survives a soft reset
        if not soft:
            self.wdt_ms, self.wdt_due = 0, None  # a hard reset stops the watchdog
        ctl_in_r, ctl_in_w = os.pipe()
        ctl_out_r, ctl_out_w = os.pipe()
        in_r, in_w = os.pipe()  # the VM's stdin; the host keeps its read end too
        env = dict(
            os.environ,
            VBOARD_ROOT=str(self.folder),
            VBOARD_CTL_IN=str(ctl_in_r),
            VBOARD_CTL_OUT=str(ctl_out_w),
        )
        env.pop("MICROPYPATH", None)
        cmd = [micropython_exe(), "-X", "heapsize=" + self.heapsize, str(HERE / "vm_main.py")]
        self.vm = subprocess.Popen(
            cmd,
            stdin=in_r,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(ctl_in_r, ctl_out_w),
            env=env,
            cwd=self.folder,
            preexec_fn=_die_with_parent,
        )
        os.close(ctl_in_r)
        os.close(ctl_out_w)
        self.ctl_w, self.ctl_r = ctl_in_w, ctl_out_r
        self.vm_in, self.vm_in_r, self.vm_out = in_w, in_r, self.vm.stdout.fileno()
        for fd in (self.vm_in, self.vm_out):  # not vm_in_r: the VM shares its blocking mode
            os.set_blocking(fd, False)
        self.sel.register(self.vm_out, selectors.EVENT_READ, "vm-out")
        self.sel.register(self.ctl_r, selectors.EVENT_READ, "vm-ctl")
        self.ctl_buf = b""
        self.outstanding = None
        self.to_vm.clear()
        self.state = BOOTING
        self.boot_steps = ["boot.py", "main.py"]
        self.skip_main = False
        self.job = None
        self.ready = False

    def _kill_vm(self) -> bytes:
        """Stop the VM; return the console input it had not read."""
        vm, self.vm = self.vm, None
        if vm is None:
            return b""
        for fd in (self.vm_out, self.ctl_r, self.vm_in):
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        vm.kill()
        vm.wait()
        unread = self._unread_input()
        vm.stdout.close()
        for fd in (self.ctl_w, self.ctl_r, self.vm_in, self.vm_in_r):
            os.close(fd)
        return unread

    def _unread_input(self) -> bytes:
        """What is left in the VM's stdin; only while the VM does not read it (ended or dead)."""
        data = b""
        while select.select([self.vm_in_r], [], [], 0)[0]:
            chunk = os.read(self.vm_in_r, 65536)
            if not chunk:
                break
            data += chunk
        return data

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        """Send a command as one CRC-checked line; keep it for a resend until it is answered."""
        if TRACE:
            _trace("send", kind, payload[:40], self.state)
        head = kind + b"%08x" % self.seq
        body = base64.b64encode(payload)
        line = head + b"%08x" % zlib.crc32(head + body) + body + b"\n"
        self.outstanding = (ANSWERS[kind], line)
        self._write_ctl(line)

    def _write_ctl(self, line: bytes) -> None:
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self.ctl_w, view) :]
        except OSError:
            pass  # the VM is gone; its stdout EOF restarts it

    def _vm_read(self) -> None:
        try:
            data = os.read(self.vm_out, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._write(data)
        else:
            self._vm_died()

    def _drain_vm_output(self) -> None:
        while True:
            try:
                data = os.read(self.vm_out, 65536)
            except OSError:
                return
            if not data:
                return
            self._write(data)

    def _vm_died(self) -> None:
        code = self.vm.wait()
        self._write(b"\r\nvboard: the VM exited (status %d): hard reset\r\n" % code)
        if not self.ready:
            self.failed = "the MicroPython VM exited (status %d) before it was ready" % code
            self.stop()
            return
        self.pending[:0] = self._kill_vm() + self.to_vm
        self._power_on(soft=False)

    def _ctl_read(self) -> None:
        try:
            data = os.read(self.ctl_r, 65536)
        except OSError:
            data = b""
        if not data:
            try:
                self.sel.unregister(self.ctl_r)
            except (KeyError, ValueError):
                pass
            return
        self.ctl_buf += data
        while len(self.ctl_buf) >= 5:
            size = int.from_bytes(self.ctl_buf[1:5], "big")
            if len(self.ctl_buf) < 5 + size:
                break
            kind, payload = self.ctl_buf[:1], self.ctl_buf[5 : 5 + size]
            self.ctl_buf = self.ctl_buf[5 + size :]
            self._notice(kind, payload)
            if self.vm is None or kind == b"H":
                break

    def _notice(self, kind: bytes, payload: bytes) -> None:
        if TRACE:
            _trace("notice", kind, payload[:40], self.state)
        if kind in (b"W", b"D"):
            self._watchdog_notice(kind, payload)
            return
        seq = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else -1
        current = self.job is not None and seq == self.job["seq"]
        if current and self.outstanding and kind in self.outstanding[0]:
            self.outstanding = None  # answered
        if kind == b"R":
            # A late Ctrl-C hit the VM outside user code: it may have lost the last command.
            if self.outstanding:
                self._write_ctl(self.outstanding[1])
        elif kind == b"B" and not self.ready:
            self.banner = payload
            self.ready = True
            if self.on_ready:
                callback, self.on_ready = self.on_ready, None
                callback(self.port)
            self._boot_step()
        elif kind == b"H":
            # machine.reset(): a fresh VM. Input that came meanwhile is kept for the new one,
            # and a Ctrl-C among it still skips main.py (mpremote can follow right away).
            ctrl_c = b"\x03" if self.job and self.job["interrupt"] else b""
            self.pending[:0] = ctrl_c + self._kill_vm() + self.to_vm
            self._power_on(soft=False)
            self._pump()
        elif kind == b"G" and current and not self.job["started"]:
            self.job["started"] = True
            if self.job["interrupt"]:
                self._request_interrupt()
        elif kind == b"E" and current and self.state == RUNNING:
            self._drain_vm_output()  # all output of the code precedes what comes next
            self.job["status"] = payload[4:5]
            self.job["text"] = payload[5:]
            # Input the code left unread goes back to the REPL, ahead of newer input; so does a
            # Ctrl-C that was not delivered because the code ended first.
            ctrl_c = b"\x03" if self.job["interrupt"] else b""
            self.pending[:0] = ctrl_c + self._unread_input() + self.to_vm
            self.to_vm.clear()
            self._finish(self.job)
        elif kind == b"C" and current and self.state == WAITING:
            self.job = None
            self.state = IDLE
            self.console.completed(payload[4:].decode(errors="replace"))
            self._pump()

    # -- the watchdog stand-in (vm_machine.WDT) ----------------------------------------------

    def _watchdog_notice(self, kind: bytes, payload: bytes) -> None:
        """``W`` timeout: (re)start the countdown; ``D``: fed. Kept across soft resets."""
        now = time.monotonic()
        if kind == b"W":
            self.wdt_ms = int.from_bytes(payload[:4], "big")
        if self.wdt_ms:
            self.wdt_due = now + self.wdt_ms / 1000

    def _watchdog_bite(self) -> None:
        self._write(b"\r\nvboard: watchdog reset (not fed for %d ms)\r\n" % self.wdt_ms)
        self.pending[:0] = self._kill_vm() + self.to_vm
        self._power_on(soft=False)
        self._pump()

    def _start_job(self, kind: str, message: bytes, payload: bytes, **extra) -> None:
        self.seq += 1
        self.job = {"seq": self.seq, "kind": kind, "started": False, "interrupt": False}
        self.job.update(extra)
        self.state = RUNNING if message in (b"X", b"F") else WAITING
        self._send(message, payload)

    def _run_code(self, kind: str, source: str, single: bool = False) -> None:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
        mode = b"s" if single else b"f"
        self._start_job(kind, b"X", mode + source.encode("utf-8", "surrogateescape"))

    def _request_interrupt(self) -> None:
        """Ctrl-C while code runs: SIGINT after a grace period, if the code still runs then."""
        job = self.job
        job["interrupt"] = True
        if job["started"] and not job.get("due"):
            job["due"] = max(time.monotonic() + GRACE, job.get("sigint", 0.0) + SIGINT_GAP)

    def _interrupt(self) -> None:
        job = self.job
        job["due"] = None
        if self.state == RUNNING and job["interrupt"]:
            job["interrupt"] = False
            job["sigint"] = time.monotonic()
            self.vm.send_signal(signal.SIGINT)

    # -- console output --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.log:
            self.log.write(data)
        self.out += data
        if len(self.out) > BACKLOG:
            del self.out[: len(self.out) - BACKLOG]
        self._flush_out()

    def _write_text(self, text: bytes) -> None:
        # Tracebacks come from the VM with LF line ends; a board's console writes CRLF.
        self._write(text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def _flush_out(self) -> None:
        while self.out:
            try:
                n = os.write(self.master, self.out)
            except BlockingIOError:
                break
            except OSError:
                self.out.clear()
                break
            del self.out[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
        self.sel.modify(self.master, events, "pty")

    # -- console input ---------------------------------------------------------------------

    def _pty_read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            return
        if TRACE:
            _trace("input", data[:40], self.state)
        self.pending += data
        self._pump()

    def _pump(self) -> None:
        """Consume pending input as far as the current state allows."""
        while self.pending and self.vm is not None:
            if self.state == RUNNING:
                self._input_while_running()
            elif self.state == IDLE:
                self.console.feed(self.pending.pop(0))
            elif self.state == BOOTING and CTRL_C in self.pending:
                # Ctrl-C before boot.py starts: main.py is skipped (a Ctrl-C sent right after a
                # reset always reaches the REPL).
                self.pending = self.pending.replace(b"\x03", b"")
                self.skip_main = True
            else:
                return

    def _input_while_running(self) -> None:
        data = bytes(self.pending)
        self.pending.clear()
        head, ctrl_c, rest = data.partition(b"\x03")
        self.to_vm += head
        if ctrl_c:
            self.pending += rest
            if self.job["kind"] == "boot":
                self.skip_main = True
            self._request_interrupt()
        self._flush_to_vm()

    def _flush_to_vm(self) -> None:
        while self.to_vm and self.vm is not None:
            try:
                n = os.write(self.vm_in, self.to_vm)
            except BlockingIOError:
                break
            except OSError:
                self.to_vm.clear()
                break
            del self.to_vm[:n]
        if self.vm is None:
            return
        try:
            if self.to_vm:
                self.sel.register(self.vm_in, selectors.EVENT_WRITE, "vm-in")
            else:
                self.sel.unregister(self.vm_in)
        except (KeyError, ValueError):
            pass

    # -- boot ------------------------------------------------------------------------------

    def _boot_step(self) -> None:
        while self.boot_steps:
            name = self.boot_steps.pop(0)
            if name == "main.py" and (self.console.raw or self.skip_main):
                continue
            self._start_job("boot", b"F", name.encode())
            self._pump()
            return
        self.state = IDLE
        self.console.enter()
        self._pump()

    def _soft_reset(self) -> None:
        self._write(b"MPY: soft reboot\r\n")
        self._power_on(soft=True)

    def _finish(self, job) -> None:
        """Code ended and its unread input is back: print its outcome, then go on."""
        self.job = None
        status, text = job["status"], job["text"]
        if job["kind"] == "raw":
            self._write(b"\x04")
            self._write_text(text)
            self._write(b"\x04")
        else:
            self._write_text(text)
        if status == b"S":  # SystemExit: a board soft-resets
            self._soft_reset()
            return
        if job["kind"] == "boot":
            self.state = BOOTING
            self._boot_step()
            return
        self.state = IDLE
        self.console.prompt(after_raw=job["kind"] == "raw")
        self._pump()

    def _complete(self, word: str) -> None:
        """Tab at the friendly prompt: the VM lists the names (``C``), the console completes."""
        self.state = WAITING
        self._start_job("complete", b"C", word.encode())
