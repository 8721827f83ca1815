"""The board side of the virtual board: runs inside the MicroPython unix-port VM (not on target).

The host process (tools/vboard/host.py) owns the pty and implements the REPL protocols. This
program only executes what the host sends over a control pipe, in one ``__main__``-like
namespace, with the board folder mounted at ``/`` and a board's ``sys.path``. User code writes
straight to stdout (the console; ``print`` ends lines with CRLF as on a board) and reads stdin
(console input while it runs).

Control messages are ``kind (1 byte) + length (4 bytes, big-endian) + payload``; ``seq`` is the
host's 4-byte execution number.
  host -> VM: ``X`` seq+mode+source (mode ``s`` single or ``f`` file input), ``F`` seq+filename
              (run it if it exists), ``D`` seq (return unread console input), ``C`` seq+text
              (tab completion)
  VM -> host: ``B`` banner (ready), ``G`` seq (user code starts), ``E`` seq+status+traceback
              (``0`` ok, ``X`` exception, ``K`` KeyboardInterrupt, ``S`` SystemExit),
              ``L`` seq+bytes, ``C`` seq+names, ``H`` (machine.reset())
The host sends SIGINT (the unix port raises KeyboardInterrupt) only between ``G`` and ``E``.
"""

import builtins
import io
import os
import select
import sys

import vfs
import vm_machine
import vm_os

_IN = open("/proc/self/fd/" + os.getenv("VBOARD_CTL_IN"), "rb")
_OUT = open("/proc/self/fd/" + os.getenv("VBOARD_CTL_OUT"), "wb")
_ME = __file__
_G = {"__name__": "__main__"}


def _send(kind, payload=b""):
    # One write per message (kept below PIPE_BUF by the callers), so it is atomic.
    _OUT.write(kind + len(payload).to_bytes(4, "big") + payload)


def _send_safely(kind, payload=b""):
    # A late SIGINT may land here: retry (the host drops a duplicate by its seq).
    while True:
        try:
            _send(kind, payload)
            return
        except KeyboardInterrupt:
            pass


def _read_exact(n):
    data = b""
    while len(data) < n:
        try:
            chunk = _IN.read(n - len(data))
        except KeyboardInterrupt:
            continue
        if not chunk:
            sys.exit(0)  # host gone
        data += chunk
    return data


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    # Drop this program's own frames: the console shows the user's code only.
    lines = [ln for ln in buf.getvalue().split("\n") if _ME not in ln]
    return "\n".join(lines)[-3000:]


def _run(seq, source, name, mode):
    status, text = b"0", ""
    try:
        _send(b"G", seq)
        if source is None:
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
    except SystemExit:
        status = b"S"
    except KeyboardInterrupt as exc:
        status, text = b"K", _traceback(exc)
    except BaseException as exc:  # noqa: B036 - a board's REPL prints every exception
        status = b"X"
        try:
            text = _traceback(exc)
        except BaseException:  # noqa: B036 - e.g. MemoryError while formatting
            text = "%s\n" % type(exc).__name__
    _send_safely(b"E", seq + status + text.encode())


def _drain(seq):
    # Console bytes the host forwarded while code ran and that the code did not read.
    left = b""
    try:
        poller = select.poll()
        poller.register(sys.stdin, select.POLLIN)
        while len(left) < 3000 and poller.poll(0):
            byte = sys.stdin.buffer.read(1)
            if not byte:
                break
            left += byte
    except KeyboardInterrupt:
        pass
    _send_safely(b"L", seq + left)


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
    except BaseException:  # noqa: B036 - nothing to complete (or a late Ctrl-C)
        pass
    found = sorted({n for n in names if n.startswith(words[-1])})
    _send_safely(b"C", seq + "\n".join(found)[:3000].encode())


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
    vm_machine._notify = _send_safely
    sys.modules["machine"] = vm_machine
    sys.modules["os"] = vm_os
    root = os.getenv("VBOARD_ROOT")
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(root), "/")
    os.chdir("/")
    sys.path.clear()
    sys.path.extend(("", ".frozen", "/lib"))
    banner = sys.version.split("; ", 1)[1] + "; " + sys.implementation._machine
    _send_safely(b"B", banner.encode())


def main():
    _setup()
    while True:
        try:
            head = _IN.read(5)
        except KeyboardInterrupt:
            continue
        if not head:
            return
        kind = head[:1]
        payload = _read_exact(int.from_bytes(head[1:5], "big"))
        seq = payload[:4]
        if kind == b"X":
            mode = "single" if payload[4:5] == b"s" else "exec"
            _run(seq, payload[5:].decode(), "<stdin>", mode)
        elif kind == b"F":
            _run(seq, None, payload[4:].decode(), "exec")
        elif kind == b"D":
            _drain(seq)
        elif kind == b"C":
            _complete(seq, payload[4:].decode())


main()
