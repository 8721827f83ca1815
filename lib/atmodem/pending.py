"""Pending: the command the channel waits for, and what each complete line means to it.

The fields of the one pending command (no object allocated per command) and the matching of a
line against it, in this order: echo, success tokens, ``ERROR`` / ``+CME ERROR``, abort tokens,
response prefixes; a line that is not the command's goes to the URC table (``LineScanner``),
else out as ``EV_UNSOLICITED``. ``atmodem.channel.ATChannel`` extends it with the tasks, the
serialization and the command's stages.
"""

import asyncio

from micropython import const

from atmodem.errors import AbortError, CMEError, CommandError, DataError, ResponseError
from atmodem.scanner import LineScanner, starts, tail_int

_EV_HANDLER_ERROR = const(3)
_EV_UNSOLICITED = const(4)
OK = (b"OK",)


class Pending(LineScanner):
    """The pending command of a channel writing to ``out`` (see the module doc)."""

    def __init__(self, out, bufsize: int, data_max: int):
        super().__init__(bufsize, data_max)
        self._out = out
        self._done = asyncio.Event()  # wakes the command task
        self._active = self._probe = self._drain = False
        self._cmd = b""
        self._ok = OK
        self._abort = ()
        self._resp = self._payload = self._err = None
        self._lines: "list" = None  # pyright: ignore[reportAttributeAccessIssue]

    def add_urc(self, prefix: bytes, handler, counted=None) -> None:
        """Route lines starting with ``prefix`` to ``handler`` (longest prefix first).

        ``counted`` None: ``handler(line)``. True: the header line ends with a byte count n and
        n raw bytes follow it. A function ``fn(buf, s, e) -> n``: a header that ends in a comma
        and has its count inside, n raw bytes following at once (``+MSUB: "t",n byte,``);
        ``fn`` is asked once per comma, with the line so far ``buf[s:e]`` (up to and with that
        comma) and answers n, or -1 while the header is not complete; it keeps what it needs
        of the header (it gets no copy). Counted handlers get ``handler(header, payload)``:
        the header a memoryview (None for a rule's), the payload a bytearray of its own. A
        line is a memoryview into the reader's buffer, valid only during the call: copy what
        you keep. Handlers run in the reader task and must not block; what they raise is
        reported as ``EV_HANDLER_ERROR``.
        """
        self.remove_urc(prefix)
        table = self._urcs if counted is None else self._eolc if counted is True else self._inline
        i = 0
        while i < len(table) and len(table[i][0]) >= len(prefix):
            i += 1
        table.insert(i, (prefix, handler, counted))

    def remove_urc(self, prefix: bytes) -> None:
        for table in (self._urcs, self._eolc, self._inline):
            for i in range(len(table) - 1, -1, -1):
                if table[i][0] == prefix:
                    table.pop(i)

    def _expect(self, cmd, ok, abort, resp):
        """The pending command is ``cmd``, ended by ``ok``/``abort``, answered by ``resp``."""
        self._cmd = cmd
        self._ok = (ok,) if type(ok) is bytes else ok
        self._abort = (abort,) if type(abort) is bytes else abort
        self._resp = (resp,) if type(resp) is bytes else resp
        self._lines = []
        self._err = None
        self._active = True

    def _data(self, counted, prompt, payload):
        """Its counted header prefix, and the ``payload`` to write at ``prompt``."""
        self._cprefix = counted
        self._payload = payload if prompt is not None else None
        self._prompt = prompt if payload is not None else None

    def _result(self):
        if self._err is not None:
            raise self._err
        return self._lines

    def _finish(self, err):
        if err is not None:
            self._err = err
        self._active = False
        self._cprefix = self._prompt = self._payload = None
        self._done.set()

    def _prompted(self):
        # Written now (no scheduling delay inside the module's input window, air724-at.md §2);
        # the command task drains it.
        self._out.write(self._payload)
        self._payload = self._prompt = None
        self._drain = True
        self._done.set()

    def _counted(self, payload):
        # payload: a bytearray of its own (None when its command is gone). The header: a
        # memoryview, None for an inline rule's (the rule kept what it needs).
        head = None if self._hs < 0 else self._mv[self._hs : self._he]
        target = self._ctarget
        if target is None:  # the pending command's: a header ending in its count, never None
            self._lines.append(bytes(head))  # pyright: ignore[reportArgumentType]
            self._lines.append(payload)
        elif not callable(target):  # False: the command that asked for it is gone (timed out)
            self._emit(_EV_UNSOLICITED, head)
        else:
            try:
                target(head, payload)
            except Exception as exc:
                self.handler_errors += 1
                self._emit(_EV_HANDLER_ERROR, exc)

    def _emit(self, kind, data):
        cb = self.on_event
        if callable(cb):  # None when nobody listens
            try:
                cb(kind, data)
            except Exception:  # an observer must not stop the reader
                pass

    def _own_dropped(self):
        if self._active:
            self._err = DataError()  # raised when the command ends

    def _line(self, s, e):
        """A complete line buf[s:e] (no line end): the pending command's, a URC or unsolicited."""
        if self._active and self._for_command(s, e):
            return
        if self._urc(s, e):
            return
        if self.on_event is not None:
            self._emit(_EV_UNSOLICITED, self._mv[s:e])

    def _for_command(self, s, e):
        # True when the line belongs to the pending command (or is dropped as a late result).
        buf = self._buf
        n = e - s
        cmd = self._cmd
        if n == len(cmd) and buf.startswith(cmd, s):
            return True  # echo (on by default after boot, air724-at.md §2)
        # While probing, a final result before the probe's answer line is a late one.
        late = self._probe and not self._lines
        for t in self._ok:
            if starts(buf, t, s, n):
                if late:
                    return False  # reported as unsolicited
                if self._prompt is not None:
                    self._finish(ResponseError("result before prompt"))
                    return True
                self._lines.append(t if n == len(t) else bytes(self._mv[s:e]))
                self._finish(None)
                return True
        err = None
        if starts(buf, b"ERROR", s, n):
            err = CommandError
        elif starts(buf, b"+CME ERROR:", s, n) or starts(buf, b"+CMS ERROR:", s, n):
            err = CMEError
        if err is not None:
            if not late:  # else dropped
                self._finish(err(bytes(self._mv[s:e]), tail_int(buf, s, e)))
            return True
        for t in self._abort:
            if starts(buf, t, s, n):
                self._finish(AbortError(bytes(self._mv[s:e])))
                self._urc(s, e)  # an abort line is often a link event too
                return True
        resp = self._resp
        if resp is not None:
            for t in resp:
                if starts(buf, t, s, n):
                    self._lines.append(bytes(self._mv[s:e]))
                    return True
            return False
        if not self._urc(s, e):  # resp None: every line no URC takes
            self._lines.append(bytes(self._mv[s:e]))
        return True

    def _urc(self, s, e):
        buf = self._buf
        n = e - s
        for u in self._urcs:
            if starts(buf, u[0], s, n):
                try:
                    u[1](self._mv[s:e])
                except Exception as exc:
                    self.handler_errors += 1
                    self._emit(_EV_HANDLER_ERROR, exc)
                return True
        return False
