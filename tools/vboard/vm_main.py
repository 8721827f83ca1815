"""The board side of the virtual board: runs inside the MicroPython unix-port VM (not on target).

The host process (tools/vboard/host.py) owns the pty and implements the REPL protocols. This
program only executes what the host sends over a control pipe, in one ``__main__``-like
namespace, with the board folder mounted at ``/`` (and the host's ``/dev`` at ``/dev``, for
serial devices) and a board's ``sys.path``. User code writes
straight to stdout (the console; ``print`` ends lines with CRLF as on a board) and reads stdin
(console input while it runs).

host -> VM, one line per command: kind, seq (8 hex), CRC-32 (8 hex) of the rest, base64 payload.
  ``X`` mode+source (mode ``s`` single or ``f`` file input), ``F`` filename (run it if it
  exists), ``C`` text (tab completion)
VM -> host: kind + length (4 bytes, big-endian) + payload, seq first (4 bytes):
  ``B`` banner (ready), ``G`` (user code starts), ``E`` status+traceback (``0`` ok, ``X``
  exception, ``K`` KeyboardInterrupt, ``S`` SystemExit), ``C`` names, ``H`` (machine.reset()),
  ``R`` (resend your last command), ``W`` timeout ms (4 bytes: machine.WDT started), ``D``
  (the watchdog fed); the host keeps the watchdog's countdown (vm_machine.py)

Ctrl-C is SIGINT, which the unix port raises as KeyboardInterrupt at once, wherever the VM is
(even inside a C function or a collection). The host sends it only while user code runs, but
one can land late, in this program, and cut a command or a reply short. Then the program
unlocks the heap (``gc.collect()``), reports the job it was running (``E``) and asks for a
resend (``R``); a torn command line fails its CRC and a resent job runs only once (seq).
"""

import binascii
import builtins
import gc
import io
import os
import sys

import vfs
import vm_machine
import vm_os

_IN = open("/proc/self/fd/" + os.getenv("VBOARD_CTL_IN"), "rb")
_OUT = open("/proc/self/fd/" + os.getenv("VBOARD_CTL_OUT"), "wb")
_ME = __file__
_G = {"__name__": "__main__"}
_JOB = []  # [seq, status, traceback] of the job that runs, until its E is sent
_DONE = [0]  # seq of the last job started: a resent one is not run twice
_LATE = [0]  # 1: a Ctrl-C landed in this program; report and ask for a resend


def _send(kind, payload=b""):
    # One write of less than PIPE_BUF bytes per message: atomic, never torn.
    _OUT.write(kind + len(payload).to_bytes(4, "big") + payload)


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    # Drop this program's own frames: the console shows the user's code only.
    lines = [ln for ln in buf.getvalue().split("\n") if _ME not in ln]
    return "\n".join(lines)[-3000:].encode()


def _run(source, name, mode):
    # _JOB holds [seq, b"K", b""]: a Ctrl-C anywhere below still ends in an E for this job.
    try:
        _send(b"G", _JOB[0])
        if source is not None:
            source = source.decode()
        else:
            try:
                os.stat(name)
            except OSError:
                source = ""
            else:
                with open(name) as f:
                    source = f.read()
                _G["__file__"] = name
        code = compile(source, name, mode)
        source = None
        exec(code, _G)
        _JOB[1] = b"0"
    except SystemExit:
        _JOB[1] = b"S"
    except BaseException as exc:  # noqa: B036 - a board's REPL prints every exception
        gc.collect()  # a Ctrl-C inside a collection leaves the heap locked; this unlocks it
        _JOB[1] = b"K" if isinstance(exc, KeyboardInterrupt) else b"X"
        _JOB[2] = type(exc).__name__.encode() + b"\n"
        try:
            _JOB[2] = _traceback(exc)
        except Exception:  # noqa: BLE001 - e.g. MemoryError: the name is enough
            pass
    _send(b"E", _JOB[0] + _JOB[1] + _JOB[2])
    _JOB.clear()


def _complete(seq, text):
    i = len(text)
    while i and (text[i - 1].isalpha() or text[i - 1].isdigit() or text[i - 1] in "_."):
        i -= 1
    words = text[i:].split(".")
    names = []
    try:
        if len(words) == 1:
            names = list(_G) + dir(builtins)
        else:
            obj = _G[words[0]] if words[0] in _G else getattr(builtins, words[0])
            for word in words[1:-1]:
                obj = getattr(obj, word)
            names = dir(obj)
    except Exception:  # noqa: BLE001 - nothing to complete
        pass
    found = sorted({n for n in names if n.startswith(words[-1])})
    _send(b"C", seq + "\n".join(found)[:3000].encode())


def _command(line):
    """(kind, seq, payload) of a command line, or None if it is torn or corrupt."""
    if len(line) < 18 or line[-1:] != b"\n":
        return None
    try:
        if binascii.crc32(line[:9] + line[17:-1]) != int(line[9:17], 16):
            return None
        return line[:1], int(line[1:9], 16), binascii.a2b_base64(line[17:-1])
    except ValueError:
        return None


def _out_of_memory(head):
    """A command the heap could not take (a stopped firmware still holds it): answer with a
    MemoryError, as a board's REPL would, and stay up."""
    gc.collect()
    try:
        seq = int(head[1:9], 16)
    except ValueError:
        return
    tag = seq.to_bytes(4, "big")
    if head[:1] == b"C":
        _send(b"C", tag)
    elif seq <= _DONE[0]:
        _send(b"E", tag + b"K")
    else:
        _DONE[0] = seq
        _send(b"G", tag)
        _send(b"E", tag + b"XMemoryError: memory allocation failed\n")


def _serve():
    while True:
        if _LATE[0]:
            gc.collect()  # a Ctrl-C inside a collection leaves the heap locked; this unlocks it
            if _JOB:  # the Ctrl-C cut the job's end short: report it now
                _send(b"E", _JOB[0] + _JOB[1] + _JOB[2])
                _JOB.clear()
            _send(b"R")
            _LATE[0] = 0
        line = _IN.readline()
        if not line:
            return  # the host is gone
        try:
            command = _command(line)
        except MemoryError:
            # The heap cannot take the command (a stopped firmware still holds it).
            head, line = line[:9], None
            _out_of_memory(head)
            continue
        if command is None:
            continue
        kind, seq, payload = command
        tag = seq.to_bytes(4, "big")
        if kind == b"X" or kind == b"F":
            if seq <= _DONE[0]:
                # Resent because a Ctrl-C cut this job short before it could start.
                _send(b"E", tag + b"K")
                continue
            _JOB[:] = [tag, b"K", b""]
            _DONE[0] = seq
            if kind == b"X":
                _run(payload[1:], "<stdin>", "single" if payload[:1] == b"s" else "exec")
            else:
                _run(None, payload.decode(), "exec")
        elif kind == b"C":
            _complete(tag, payload.decode())


_print = print


def _cooked_print(*args, sep=" ", end="\n", file=None):
    # A board's console turns LF into CRLF for text (print, the REPL's results) but not for
    # sys.stdout.buffer; the unix port writes LF. So text is cooked here and binary stays raw.
    if file is not None and file is not sys.stdout and file is not sys.stderr:
        _print(*args, sep=sep, end=end, file=file)
        return
    out = file or sys.stdout
    if "\n" in sep or any(isinstance(a, str) and "\n" in a for a in args):
        buf = io.StringIO()
        _print(*args, sep=sep, end=end, file=buf)
        out.write(buf.getvalue().replace("\n", "\r\n"))
    else:
        _print(*args, sep=sep, end=end.replace("\n", "\r\n"), file=out)


def _repl_print(value):
    if value is not None:
        sys.stdout.write(repr(value).replace("\n", "\r\n") + "\r\n")


def _setup():
    builtins.print = _cooked_print
    builtins.__repl_print__ = _repl_print
    vm_machine._notify = _send
    sys.modules["machine"] = vm_machine
    sys.modules["os"] = vm_os
    root = os.getenv("VBOARD_ROOT")
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(root), "/")
    # The host's devices stay reachable, as a board's UART is: uart.url "/dev/ttyUSB0" (a
    # USB-serial adapter) or an emulator's pty opens from the firmware as on the host.
    vfs.mount(vfs.VfsPosix("/dev"), "/dev")
    os.chdir("/")
    sys.path.clear()
    sys.path.extend(("", ".frozen", "/lib"))
    banner = sys.version.split("; ", 1)[1] + "; " + sys.implementation._machine
    _send(b"B", banner.encode())


def main():
    _setup()
    # Two nested handlers: a Ctrl-C on the inner loop's edge is caught by the outer one.
    while True:
        try:
            while True:
                try:
                    _serve()
                    return
                except KeyboardInterrupt:
                    _LATE[0] = 1
        except KeyboardInterrupt:
            _LATE[0] = 1


main()
