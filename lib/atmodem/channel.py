"""ATChannel: one reader task, serialized commands with timeouts, tokens, prompts and URCs.

The channel owns an asyncio stream with MicroPython's ``asyncio.Stream`` interface (a board's
``asyncio.StreamReader(uart)``, or ``asyncio.open_connection`` on the unix port / CPython, where
the writer is passed separately).

Receive side: bytes are read into one pre-allocated buffer and cut into lines in place (a line
is a span of the buffer, handed out as a memoryview: no copy). Lines end in CR, LF or CR LF;
blank lines and boot noise (0x00/0xFF) between lines are skipped; a line longer than the buffer
is dropped (``EV_OVERFLOW``) and reading goes on. Each complete line is offered, in this order,
to the pending command (echo, data prompt, success tokens, ``ERROR`` / ``+CME ERROR``, abort
tokens, response prefixes) and then to the always-on URC table, so a URC never lands in a
command's response.

Counted reads: a header found by a rule is followed by exactly n raw bytes, read whatever they
contain. The payload lands in the buffer right after its header when it fits, else in its own
bytearray (up to ``data_max``), else it is skipped (``EV_DATA_DROPPED``).

After a timeout or a cancelled wait the answer may still come; the next command first sends a
probe whose answer has a known line, and drops any final result that comes before that line,
so a late ``OK`` is never taken as the next command's answer.
"""

import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from atmodem.errors import (
    AbortError,
    ArgumentError,
    ATTimeoutError,
    ClosedError,
    CMEError,
    CommandError,
    DataError,
    ResponseError,
)

# Events passed to ``on_event(kind, data)``: the values of atmodem.EV_* (__init__.py).
_EV_OVERFLOW = const(1)
_EV_DATA_DROPPED = const(2)
_EV_HANDLER_ERROR = const(3)
_EV_UNSOLICITED = const(4)
_EV_CLOSED = const(5)

_CR = const(13)
_LF = const(10)
_SP = const(32)
# Reader modes.
_LINE = const(0)  # cutting lines
_INPLACE = const(1)  # counted payload that fits in the line buffer, after its header
_BIG = const(2)  # counted payload read into its own bytearray (up to data_max)
_DROP = const(3)  # counted payload over data_max: skipped
_SKIP = const(4)  # the rest of an overlong line: skipped
_PROMPT = const(5)  # just after a '>' prompt: one space may follow

_OK = (b"OK",)
# Resync probes: standard commands whose answer carries a line with a known prefix. Two, so
# the probe can differ from the command that timed out.
PROBES = ((b"AT+CSQ", b"+CSQ:"), (b"AT+CMEE?", b"+CMEE:"))


def _starts(buf, token, s, n):
    return len(token) <= n and buf.startswith(token, s)


def _eol(buf, s, end):
    # Lines end in CR, LF or CR LF (air724-at.md §2); the first of either ends the line.
    cr = buf.find(b"\r", s, end)
    lf = buf.find(b"\n", s, cr if cr >= 0 else end)
    return lf if lf >= 0 else cr


def _tail_int(buf, s, e):
    """The decimal number that ends buf[s:e], or -1 (``+HTTPREAD: 128``, ``+CME ERROR: 3``)."""
    i = e
    while i > s and 48 <= buf[i - 1] <= 57:
        i -= 1
    if i == e:
        return -1
    n = 0
    while i < e:
        n = n * 10 + buf[i] - 48
        i += 1
    return n


class ATChannel:
    """AT command channel over an asyncio stream.

    ``bufsize`` bounds a line (and a counted header); counted payloads that fit after their
    header are read in place, larger ones into their own buffer up to ``data_max`` bytes, and
    bigger ones are skipped (``EV_DATA_DROPPED``; a command reading one raises ``DataError``).
    ``on_event(kind, data)`` receives the ``EV_*`` events. ``closed`` turns True (never back)
    when the stream ends or ``close()`` ran.
    """

    def __init__(self, stream, writer=None, bufsize: int = 1024, data_max: int = 8192):
        self._in = stream
        self._out = stream if writer is None else writer
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self.data_max = data_max
        self.on_event: object = None  # None, or a callable on_event(kind, data)
        self.overflows = 0
        self.handler_errors = 0
        self.closed = False
        # URC tables of (prefix, handler, counted), longest prefix first: plain lines, headers
        # ending in their count, headers with the count inside (see add_urc).
        self._urcs = []
        self._eolc = []
        self._inline = []
        # Reader state: unread bytes are buf[_start:_end]; a counted read has its header in
        # _head, its length in _count (left to skip in _DROP), its buffer in _big (_BIG mode)
        # and its target in _ctarget: a URC handler, None (the pending command) or False (the
        # command that asked for it is gone).
        self._start = self._end = self._mode = self._count = self._bigpos = 0
        self._head = self._mv
        self._big = self._ctarget = None
        # Serialization: the task holding the channel and an Event (asyncio.Lock allocates on
        # every acquire).
        self._owner = None
        self._free = asyncio.Event()
        self._done = asyncio.Event()  # wakes the command task
        self._tasks = None  # (reader, timer)
        self._arm = asyncio.Event()  # wakes the idle timer
        self._until = None  # the deadline the timer sleeps until, None when it does not sleep
        self._deadline = 0
        self._stale = None  # after a timeout: that command's resp prefixes (a probe must differ)
        # Pending command (fields, not an object: nothing allocated per command).
        self._active = self._probe = self._drain = False
        self._cmd = b""
        self._ok = _OK
        self._abort = ()
        self._resp = self._cprefix = self._payload = self._err = None
        self._prompt = b""
        self._lines: "list" = None  # pyright: ignore[reportAttributeAccessIssue]

    # -- public API ---------------------------------------------------------------------------

    def add_urc(self, prefix: bytes, handler, counted=None) -> None:
        """Route lines starting with ``prefix`` to ``handler`` (longest prefix first).

        ``counted`` None: ``handler(line)``. True: the header line ends with a byte count n and
        n raw bytes follow it. A function ``fn(head) -> (h, n) or None``: the header is the
        first h bytes of the line and n raw bytes follow at once (``+MSUB: "t",n byte,``);
        ``head`` is the line so far, without line end. Counted handlers get
        ``handler(header, payload)``. Arguments are memoryviews into the reader's buffers,
        valid only during the call: copy what you keep. Handlers run in the reader task and
        must not block; what they raise is reported as ``EV_HANDLER_ERROR``.
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

    def start(self) -> None:
        """Start the reader and timer tasks (once), from inside the running event loop."""
        if self._tasks is None and not self.closed:
            self._tasks = (asyncio.create_task(self._run()), asyncio.create_task(self._timer()))

    async def close(self) -> None:
        """Stop the tasks, fail a pending command with ``ClosedError``, close the stream."""
        for task in self._tasks or ():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = None
        self._shutdown()
        try:
            self._out.close()
        except Exception:  # closing is best effort
            pass

    def exclusive(self) -> "ATChannel":
        """``async with channel.exclusive():`` - this task's commands run with none in between."""
        return self

    async def __aenter__(self):
        while self._owner is not None:
            await self._free.wait()
        self._owner = asyncio.current_task()
        self._free.clear()
        return self

    async def __aexit__(self, *exc):
        self._owner = None
        self._free.set()

    async def command(
        self,
        cmd: "bytes | str",
        timeout_ms: int = 5000,
        ok: tuple = _OK,
        abort: tuple = (),
        resp: "bytes | tuple | None" = (),
        counted: "bytes | None" = None,
        prompt: "bytes | None" = None,
        payload: "bytes | None" = None,
        resync: "bool | None" = True,
    ) -> list:
        """Send ``cmd`` (no CR/LF; the CR is added) and return its response lines.

        The list holds the response lines (bytes) and ends with the line that matched a token
        of ``ok`` (prefix match). ``resp``: a prefix or tuple of prefixes of the lines that
        belong to the answer; other lines go to the URC table or, if no URC takes them, are
        reported as ``EV_UNSOLICITED``. ``resp=None`` instead collects every line no URC takes
        (bare answers such as an IMEI). ``counted``: prefix of a header line ending in a
        byte count n; the header and then the n raw bytes are added to the list. ``prompt``
        (``b"DOWNLOAD"`` or ``b">"``) releases the write of ``payload``. Raises
        ``ATTimeoutError``, ``CommandError``/``CMEError``, ``AbortError`` (a token of
        ``abort``), ``ClosedError``, ``ArgumentError`` (CR/LF in ``cmd``). After a timeout or
        a cancelled wait the next command first resyncs (see ``resync()``); ``resync=False``
        skips that (autobaud ``AT``); ``None`` marks the probe itself (internal).
        """
        if isinstance(cmd, str):
            cmd = cmd.encode()
        if b"\r" in cmd or b"\n" in cmd:
            raise ArgumentError("CR/LF in command")
        if type(resp) is bytes:
            resp = (resp,)
        if type(ok) is bytes:
            ok = (ok,)
        if type(abort) is bytes:
            abort = (abort,)
        if self.closed:
            raise ClosedError()
        own = self._owner is asyncio.current_task()  # inside exclusive(), or a resync probe
        if not own:
            while self._owner is not None:  # inline acquire: no allocation when free
                await self._free.wait()
            self._owner = asyncio.current_task()
            self._free.clear()
        try:
            if self._stale is not None and resync:
                await self.resync(timeout_ms)
            # The exchange itself, inline: one coroutine object per command.
            self._cmd = cmd
            self._ok = ok
            self._abort = abort
            self._resp = resp
            self._cprefix = counted
            self._prompt = prompt or b""
            self._payload = payload if prompt is not None else None
            self._probe = resync is None
            self._lines = []
            self._err = None
            self._active = True
            deadline = self._deadline = ticks_add(ticks_ms(), timeout_ms)
            # One timer task wakes a command at its deadline: no wait_for task per command.
            if self._until is None:
                self._arm.set()
            elif ticks_diff(self._until, deadline) > 0 and self._tasks is not None:
                self._until = None
                self._tasks[1].cancel()  # asleep past the new deadline: re-arm
            out = self._out
            try:
                out.write(cmd)
                out.write(b"\r")  # the terminator the module expects (air724-at.md §2)
                self._drain = True
                while self._active or self._drain:
                    if self._drain:  # the command, or the payload the reader wrote at the prompt
                        self._drain = False
                        # MicroPython's Stream writes at once and keeps in out_buf only what did
                        # not fit; with nothing there its drain() would only yield. CPython's
                        # always runs.
                        if getattr(out, "out_buf", True):
                            await out.drain()
                        continue
                    if ticks_diff(deadline, ticks_ms()) <= 0:
                        raise ATTimeoutError(cmd)
                    # No await since the checks above, so this clear loses no wake-up. The
                    # reader (result, prompt) or the timer (deadline) sets the event.
                    self._done.clear()
                    await self._done.wait()
            except OSError:
                raise ClosedError() from None
            if self._err is not None:
                raise self._err
            return self._lines
        finally:
            if self._active:  # timeout, cancelled caller or write error
                self._active = False
                if self._ctarget is None:
                    self._ctarget = False  # a counted read under way is no longer ours
                if not self.closed:
                    self._stale = resp or ()  # a late answer may still come: resync first
            self._payload = self._err = None
            self._lines = None  # pyright: ignore[reportAttributeAccessIssue]
            if not own:
                self._owner = None
                self._free.set()

    async def resync(self, timeout_ms: int = 2000) -> None:
        """Make sure no late answer of an earlier command is pending.

        Sends a probe (``PROBES``) whose answer has a known prefix line; final results that
        arrive before that line belong to an earlier command and are dropped. Runs by itself
        before the first command after a timeout or a cancelled wait.
        """
        stale = self._stale
        probe = PROBES[-1]
        for probe in PROBES:
            if not stale or probe[1] not in stale:  # a late line could fool this probe
                break
        await self.command(probe[0], timeout_ms, resp=probe[1], resync=None)
        self._stale = None

    async def _timer(self):
        # Sleeps until the pending command's deadline, then wakes it (it raises the timeout).
        while True:
            if self._active:
                left = ticks_diff(self._deadline, ticks_ms())
                if left > 0:
                    self._until = self._deadline
                    try:
                        await asyncio.sleep_ms(left)
                    except asyncio.CancelledError:  # re-armed by command(), or closed
                        if self.closed:
                            raise
                    continue
                self._done.set()
            self._until = None
            self._arm.clear()
            await self._arm.wait()

    # -- reader task --------------------------------------------------------------------------

    async def _run(self):
        # MicroPython's Stream has readinto(); CPython's StreamReader only read(n).
        recv = getattr(self._in, "readinto", None)
        try:
            while True:
                big = self._big
                dst = self._mv[self._end :] if big is None else big[self._bigpos :]
                if recv is not None:
                    n = await recv(dst)
                else:
                    data = await self._in.read(len(dst))
                    n = len(data)
                    dst[:n] = data
                if n is None:  # a UART read may return None (no data after all)
                    continue
                if not n:
                    break
                if big is None:
                    self._end += n
                    self._scan()
                    continue
                self._bigpos += n
                if self._bigpos == len(big):  # _BIG mode: the payload's own buffer is full
                    self._big = None
                    self._mode = _LINE
                    self._start = self._end = 0
                    self._counted(big)
        except OSError:
            pass
        finally:
            self._shutdown()

    def _shutdown(self):
        if not self.closed:
            self.closed = True
            if self._active:
                self._finish(ClosedError())
            if self._tasks is not None:
                self._tasks[1].cancel()  # the timer
            self._emit(_EV_CLOSED, None)

    def _emit(self, kind, data):
        cb = self.on_event
        if callable(cb):  # None when nobody listens
            try:
                cb(kind, data)
            except Exception:  # an observer must not stop the reader
                pass

    def _scan(self):
        buf = self._buf
        mv = self._mv
        while True:
            s = self._start
            end = self._end
            mode = self._mode
            if mode == _INPLACE:
                n = self._count
                if end - s < n:
                    return
                self._mode = _LINE
                self._start = s + n
                self._counted(mv[s : s + n])
                continue
            if mode == _BIG:  # the reader fills the payload buffer directly
                return
            if mode == _DROP:
                if end - s < self._count:
                    self._count -= end - s
                    self._start = self._end = 0
                    return
                self._mode = _LINE
                self._start = s + self._count
                continue
            if s >= end:
                self._start = self._end = 0
                return
            if mode == _SKIP:  # rest of an overlong line
                e = _eol(buf, s, end)
                if e < 0:
                    self._start = self._end = 0
                    return
                self._mode = _LINE
                self._start = e + 1
                continue
            c = buf[s]
            if mode == _PROMPT:
                self._mode = _LINE
                if c == _SP:
                    self._start = s + 1
                    continue
            # Blank lines and boot noise (0x00/0xFF) between lines.
            if c == _CR or c == _LF or c == 0 or c == 0xFF:
                self._start = s + 1
                continue
            # Data prompt: '>' with no line end after it (MPUBEX, air724-at.md §2; '> ' on newer
            # firmware), or the DOWNLOAD line (AT+HTTPDATA). The payload is written now (no
            # scheduling delay inside the module's input window); the command task drains it.
            p = self._payload
            if p is not None and _starts(buf, self._prompt, s, end - s):
                self._out.write(p)
                self._payload = None
                self._drain = True
                self._done.set()
                self._start = s + len(self._prompt)
                self._mode = _PROMPT
                continue
            e = _eol(buf, s, end)
            stop = e if e >= 0 else end
            # Inline counted header (the count is inside the line, the payload follows at once).
            r = None
            for rule in self._inline:
                if _starts(buf, rule[0], s, stop - s):
                    r = rule[2](mv[s:stop])
                    if r is not None:
                        self._begin(s, s + r[0], s + r[0], r[1], rule[1])
                    break
            if r is not None:
                continue
            if e >= 0:
                # A header line ending in its count: the pending command's, else a rule's.
                n = e - s
                target = False
                cp = self._cprefix
                if cp is not None and self._active and _starts(buf, cp, s, n):
                    target = None
                else:
                    for rule in self._eolc:
                        if _starts(buf, rule[0], s, n):
                            target = rule[1]
                            break
                n = -1 if target is False else _tail_int(buf, s, e)
                if n < 0:
                    self._start = e + 1
                    self._line(s, e)
                    continue
                # CR LF ends the header and the payload starts after the LF: after a CR that
                # ends the data, wait for the next byte.
                ps = e + 1
                if ps < end or buf[e] != _CR:
                    if ps < end and buf[e] == _CR and buf[ps] == _LF:
                        ps += 1
                    self._begin(s, e, ps, n, target)
                    continue
            # A partial line: keep buf[s:end] and make room to read more.
            if end < len(buf):
                return
            if s:  # move it to the front
                mv[0 : end - s] = mv[s:end]
                self._start = 0
                self._end = end - s
                return
            self.overflows += 1
            self._mode = _SKIP
            self._start = self._end = 0
            self._emit(_EV_OVERFLOW, None)
            return

    def _begin(self, hs, he, ps, n, target):
        """Start a counted read: header buf[hs:he], n payload bytes from buf[ps]."""
        self._ctarget = target
        self._count = n
        size = len(self._buf)
        if ps + n > size and hs:  # move the header to the front: more room for the payload
            self._mv[0 : self._end - hs] = self._mv[hs : self._end]
            self._end -= hs
            ps -= hs
            he -= hs
            hs = 0
        self._head = self._mv[hs:he]
        self._start = ps
        if ps + n <= size:
            self._mode = _INPLACE
            return
        if n <= self.data_max:
            big = bytearray(n)
            have = self._end - ps
            big[0:have] = self._mv[ps : self._end]
            self._big = memoryview(big)
            self._bigpos = have
            self._mode = _BIG
            return
        self._mode = _DROP
        if target is None and self._active:
            self._err = DataError()  # raised when the command ends
        self._emit(_EV_DATA_DROPPED, n)

    def _counted(self, payload):
        head = self._head
        target = self._ctarget
        if target is None:  # the pending command's
            self._lines.append(bytes(head))
            self._lines.append(bytes(payload))
        elif not callable(target):  # False: the command that asked for it is gone (timed out)
            self._emit(_EV_UNSOLICITED, head)
        else:
            try:
                target(head, payload)
            except Exception as exc:
                self.handler_errors += 1
                self._emit(_EV_HANDLER_ERROR, exc)

    def _urc(self, s, e):
        buf = self._buf
        n = e - s
        for u in self._urcs:
            if _starts(buf, u[0], s, n):
                try:
                    u[1](self._mv[s:e])
                except Exception as exc:
                    self.handler_errors += 1
                    self._emit(_EV_HANDLER_ERROR, exc)
                return True
        return False

    # -- command side -------------------------------------------------------------------------

    def _finish(self, err):
        if err is not None:
            self._err = err
        self._active = False
        self._payload = None
        self._done.set()

    def _line(self, s, e):
        """A complete line buf[s:e] (no line end): the pending command's, a URC or unsolicited."""
        buf = self._buf
        n = e - s
        if self._active:
            cmd = self._cmd
            if n == len(cmd) and buf.startswith(cmd, s):
                return  # echo (on by default after boot, air724-at.md §2)
            # While probing, a final result before the probe's answer line is a late one.
            late = self._probe and not self._lines
            for t in self._ok:
                if _starts(buf, t, s, n):
                    if late:
                        break  # reported as unsolicited
                    if self._payload is not None:
                        self._finish(ResponseError("result before prompt"))
                        return
                    self._lines.append(t if n == len(t) else bytes(self._mv[s:e]))
                    self._finish(None)
                    return
            else:  # no success token matched
                err = None
                if _starts(buf, b"ERROR", s, n):
                    err = CommandError
                elif _starts(buf, b"+CME ERROR:", s, n) or _starts(buf, b"+CMS ERROR:", s, n):
                    err = CMEError
                if err is not None:
                    if not late:  # else dropped
                        self._finish(err(bytes(self._mv[s:e]), _tail_int(buf, s, e)))
                    return
                for t in self._abort:
                    if _starts(buf, t, s, n):
                        self._finish(AbortError(bytes(self._mv[s:e])))
                        self._urc(s, e)  # an abort line is often a link event too
                        return
                resp = self._resp
                if resp is not None:
                    for t in resp:
                        if _starts(buf, t, s, n):
                            self._lines.append(bytes(self._mv[s:e]))
                            return
                if self._urc(s, e):
                    return
                if resp is None:
                    self._lines.append(bytes(self._mv[s:e]))
                    return
        elif self._urc(s, e):
            return
        if self.on_event is not None:
            self._emit(_EV_UNSOLICITED, self._mv[s:e])
