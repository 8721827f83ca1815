"""ATChannel: one reader task, serialized commands, token matching, URC table, counted reads.

The channel owns an asyncio stream with MicroPython's ``asyncio.Stream`` interface (a board's
``asyncio.StreamReader(uart)``, or ``asyncio.open_connection`` on the unix port / CPython, where
the writer is passed separately). One task reads it into a pre-allocated buffer; lines are cut
and matched in place, so a line costs no copy. A line is offered, in this order, to the pending
command (echo, prompt, success tokens, ``ERROR``/``+CME ERROR``, abort tokens, response
prefixes) and then to the always-on URC table; a URC never lands in a command's response.

Counted reads: a header found by a rule (``+HTTPREAD: n`` line, ``+MSUB: "t",n byte,`` inline)
is followed by exactly ``n`` raw bytes, read whatever they contain. Data prompts (``DOWNLOAD``
line, ``>`` with no line end) release the command's payload write.
"""

import asyncio

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

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b


if hasattr(asyncio, "wait_for_ms"):
    _wait_for_ms = asyncio.wait_for_ms
else:  # CPython

    def _wait_for_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)


# Events passed to ``on_event(kind, data)``.
EV_OVERFLOW = const(1)  # a line longer than the buffer was dropped (data: None)
EV_DATA_DROPPED = const(2)  # a counted payload over data_max was skipped (data: its length)
EV_HANDLER_ERROR = const(3)  # a URC handler raised (data: the exception)
EV_UNSOLICITED = const(4)  # a line nobody took (data: memoryview, valid during the call)
EV_CLOSED = const(5)  # the stream ended or failed; the channel is closed (data: None)

_CR = const(13)
_LF = const(10)
_SP = const(32)
_GT = const(62)
# Counted-read modes.
_IDLE = const(0)
_INPLACE = const(1)  # payload fits in the line buffer, after its header
_BIG = const(2)  # payload read into its own bytearray (up to data_max)
_DROP = const(3)  # payload over data_max: skipped
# Outcome of the counted-header check of a complete line.
_NONE = const(0)
_BEGUN = const(1)
_WAIT = const(2)

_OK = (b"OK",)
# Resync probes: standard commands whose answer carries a line with a known prefix (see
# ATChannel.resync). Two, so the probe can differ from the command that timed out.
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


class _Exclusive:
    """``async with channel.exclusive():`` - run several commands with no other in between."""

    def __init__(self, ch):
        self._ch = ch

    async def __aenter__(self):
        ch = self._ch
        await ch._lock.acquire()
        ch._owner = asyncio.current_task()
        return ch

    async def __aexit__(self, exc_type, exc, tb):
        ch = self._ch
        ch._owner = None
        ch._lock.release()
        return False


class ATChannel:
    """AT command channel over an asyncio stream.

    ``bufsize`` bounds a line (and a counted header); counted payloads that fit after their
    header are read in place, larger ones into their own buffer up to ``data_max`` bytes, and
    bigger ones are skipped (``EV_DATA_DROPPED``; a command reading one raises ``DataError``).
    ``on_event(kind, data)`` receives the ``EV_*`` events.
    """

    def __init__(
        self,
        stream,
        writer=None,
        bufsize: int = 1024,
        data_max: int = 8192,
        probes: tuple = PROBES,
    ):
        self._in = stream
        self._out = stream if writer is None else writer
        # MicroPython's Stream has readinto(); CPython's StreamReader only read(n).
        self._readinto = getattr(stream, "readinto", None)
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self.data_max = data_max
        self.probes = probes
        self.on_event = None
        self.overflows = 0
        self.handler_errors = 0
        self._urcs = []  # (prefix, handler(line))
        self._eolc = []  # (prefix, handler(header, payload)): n ends the header line
        self._inline = []  # (prefix, handler(header, payload), header_fn)
        self._lock = asyncio.Lock()
        self._owner = None
        self._done = asyncio.Event()
        self._task = None
        self._closed = False
        self._stale = False
        self._stale_resp = None
        # Parser state: unread bytes are buf[_start:_end].
        self._start = 0
        self._end = 0
        self._skip = False  # dropping the rest of an overlong line
        self._skip_sp = False  # a space may follow a '>' prompt
        self._cmode = _IDLE
        self._hs = self._he = self._ps = self._count = 0
        self._big = self._bigmv = None
        self._bigpos = 0
        self._ctarget = None  # None: the pending command; else a URC handler
        self._cseq = 0
        # Pending command (fields, not an object: nothing allocated per command).
        self._active = False
        self._seq = 0
        self._cmd = b""
        self._ok = _OK
        self._abort = ()
        self._resp = None
        self._cprefix = None
        self._prompt = None
        self._gt = False
        self._payload = None
        self._drain = False
        self._need = False
        self._derr = False
        self._lines = None
        self._err = None

    # -- public API -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the reader task (once); call from inside the running event loop."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop the reader, fail a pending command with ``ClosedError``, close the stream."""
        task = self._task
        self._task = None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._shutdown()
        try:
            self._out.close()
        except Exception:  # closing is best effort
            pass

    def add_urc(self, prefix: bytes, handler, counted=None) -> None:
        """Route lines starting with ``prefix`` to ``handler`` (longest prefix first).

        ``counted`` None: ``handler(line)``. True: the header line ends with a byte count n and
        n raw bytes follow it. A function ``fn(head) -> (h, n) or None``: the header is the
        first h bytes of the line and n raw bytes follow at once (``+MSUB: "t",n byte,``).
        Counted handlers get ``handler(header, payload)``. Arguments are memoryviews into the
        channel's buffers, valid only during the call: copy what you keep.
        """
        self.remove_urc(prefix)
        if counted is None:
            table, entry = self._urcs, (prefix, handler)
        elif counted is True:
            table, entry = self._eolc, (prefix, handler)
        else:
            table, entry = self._inline, (prefix, handler, counted)
        i = 0
        while i < len(table) and len(table[i][0]) >= len(prefix):
            i += 1
        table.insert(i, entry)

    def remove_urc(self, prefix: bytes) -> None:
        for table in (self._urcs, self._eolc, self._inline):
            for i in range(len(table) - 1, -1, -1):
                if table[i][0] == prefix:
                    table.pop(i)

    def exclusive(self) -> "_Exclusive":
        """Context manager: the commands of this task run back to back, none in between."""
        return _Exclusive(self)

    async def command(
        self,
        cmd,
        timeout_ms: int = 5000,
        ok: tuple = _OK,
        abort: tuple = (),
        resp=(),
        counted: bytes = None,
        prompt: bytes = None,
        payload=None,
        resync: bool = True,
    ) -> list:
        """Send ``cmd`` (no CR/LF; the CR is added) and return its response lines.

        The list holds the response lines (bytes) and ends with the line that matched a token
        of ``ok`` (prefix match). ``resp``: a prefix or tuple of prefixes of the lines that
        belong to the answer; other lines go to the URC table or, if no URC takes them, are
        reported as ``EV_UNSOLICITED``. ``resp=None`` instead collects every line no URC takes
        (bare answers such as an IMEI). ``counted``: prefix of a header line ending in a
        byte count n; the header and then the n raw bytes are added to the list. ``prompt``
        (``b"DOWNLOAD"`` or ``b">"``) releases the write of ``payload``. Raises ``ATTimeoutError``,
        ``CommandError``/``CMEError``, ``AbortError`` (a token of ``abort``), ``ClosedError``.
        After a timeout or a cancelled wait the next command first resyncs (see ``resync``);
        ``resync=False`` skips that (autobaud ``AT``).
        """
        if type(cmd) is str:
            cmd = cmd.encode()
        if b"\r" in cmd or b"\n" in cmd:
            raise ArgumentError("CR/LF in command")
        if type(resp) is bytes:
            resp = (resp,)
        if type(ok) is bytes:
            ok = (ok,)
        if type(abort) is bytes:
            abort = (abort,)
        if self._closed:
            raise ClosedError()
        own = self._owner is not None and self._owner is asyncio.current_task()
        if not own:
            await self._lock.acquire()
        try:
            if self._stale and resync:
                await self._resync(timeout_ms)
            return await self._exchange(
                cmd, timeout_ms, ok, abort, resp, counted, prompt, payload, False
            )
        finally:
            if not own:
                self._lock.release()

    async def resync(self, timeout_ms: int = 2000) -> None:
        """Make sure no late answer of an earlier command is pending.

        Sends a probe whose answer has a known prefix line; final results that arrive before
        that line belong to an earlier command and are dropped. Run automatically before the
        first command after a timeout or a cancelled wait.
        """
        if self._closed:
            raise ClosedError()
        own = self._owner is not None and self._owner is asyncio.current_task()
        if not own:
            await self._lock.acquire()
        try:
            await self._resync(timeout_ms)
        finally:
            if not own:
                self._lock.release()

    # -- command side -----------------------------------------------------------------------

    async def _resync(self, timeout_ms):
        stale = self._stale_resp
        pick = self.probes[-1]
        for probe in self.probes:
            if stale is None or probe[1] not in stale:
                pick = probe
                break
        await self._exchange(pick[0], timeout_ms, _OK, (), (pick[1],), None, None, None, True)
        self._stale = False
        self._stale_resp = None

    async def _exchange(self, cmd, timeout_ms, ok, abort, resp, counted, prompt, payload, need):
        self._seq += 1
        self._cmd = cmd
        self._ok = ok
        self._abort = abort
        self._resp = resp
        self._cprefix = counted
        self._prompt = prompt
        self._gt = prompt == b">"
        self._payload = payload if prompt is not None else None
        self._drain = False
        self._need = need
        self._derr = False
        self._lines = None
        self._err = None
        self._active = True
        deadline = ticks_add(ticks_ms(), timeout_ms)
        out = self._out
        try:
            try:
                out.write(cmd)
                out.write(b"\r")  # the terminator the module expects (air724-at.md §2)
                await out.drain()
            except OSError:
                raise ClosedError() from None
            while self._active or self._drain:
                if self._drain:  # the reader wrote the payload at the prompt; flush it
                    self._drain = False
                    await out.drain()
                    continue
                left = ticks_diff(deadline, ticks_ms())
                if left <= 0:
                    raise ATTimeoutError(cmd)
                # No await since the check above, so no wake-up can be lost by this clear.
                self._done.clear()
                try:
                    await _wait_for_ms(self._done.wait(), left)
                except asyncio.TimeoutError:
                    if self._active:
                        raise ATTimeoutError(cmd) from None
            if self._err is not None:
                raise self._err
            return self._lines
        finally:
            if self._active:  # timeout, cancelled caller or write error
                self._active = False
                if not self._closed:
                    # A late answer may still come: resync before the next command.
                    self._stale = True
                    self._stale_resp = resp
            self._payload = None
            self._lines = None
            self._err = None

    def _finish(self, err):
        if err is None and self._derr:
            err = DataError()
        self._err = err
        self._active = False
        self._done.set()

    def _add(self, item):
        if self._lines is None:
            self._lines = [item]
        else:
            self._lines.append(item)

    def _release(self):
        # Data prompt: write the payload now (no scheduling delay inside the module's input
        # window); the command task drains it.
        self._out.write(self._payload)
        self._payload = None
        self._drain = True
        self._done.set()

    # -- reader side ------------------------------------------------------------------------

    async def _recv(self, dst):
        if self._readinto is not None:
            return await self._readinto(dst)
        data = await self._in.read(len(dst))
        n = len(data)
        dst[:n] = data
        return n

    async def _run(self):
        try:
            while True:
                if self._cmode == _BIG:
                    n = await self._recv(self._bigmv[self._bigpos :])
                    if n is None:
                        continue
                    if not n:
                        break
                    self._bigpos += n
                    if self._bigpos == len(self._big):
                        self._counted(self._bigmv)
                        self._big = self._bigmv = None
                        self._cmode = _IDLE
                        self._start = self._end = 0
                    continue
                n = await self._recv(self._mv[self._end :])
                if n is None:  # a UART read may return None (no data after all)
                    continue
                if not n:
                    break
                self._end += n
                self._scan()
        except OSError:
            pass
        finally:
            self._shutdown()

    def _shutdown(self):
        if self._closed:
            return
        self._closed = True
        if self._active:
            self._finish(ClosedError())
        self._emit(EV_CLOSED, None)

    def _emit(self, kind, data):
        cb = self.on_event
        if cb is not None:
            try:
                cb(kind, data)
            except Exception:  # an observer must not stop the reader
                pass

    def _call1(self, handler, a):
        try:
            handler(a)
        except Exception as exc:
            self.handler_errors += 1
            self._emit(EV_HANDLER_ERROR, exc)

    def _call2(self, handler, a, b):
        try:
            handler(a, b)
        except Exception as exc:
            self.handler_errors += 1
            self._emit(EV_HANDLER_ERROR, exc)

    def _scan(self):
        buf = self._buf
        while True:
            s = self._start
            end = self._end
            mode = self._cmode
            if mode == _INPLACE:
                if end - self._ps < self._count:
                    return
                ps = self._ps
                self._cmode = _IDLE
                self._start = ps + self._count
                self._counted(self._mv[ps : ps + self._count])
                continue
            if mode == _BIG:  # the reader fills the payload buffer directly
                return
            if mode == _DROP:
                k = end - self._ps
                if k < self._count:
                    self._count -= k
                    self._start = self._end = self._ps = 0
                    return
                self._cmode = _IDLE
                self._start = self._ps + self._count
                continue
            if s >= end:
                self._start = self._end = 0
                return
            if self._skip:  # rest of an overlong line
                e = _eol(buf, s, end)
                if e < 0:
                    self._start = self._end = 0
                    return
                self._skip = False
                self._start = e + 1
                continue
            c = buf[s]
            if self._skip_sp:
                self._skip_sp = False
                if c == _SP:
                    self._start = s + 1
                    continue
            # Blank lines and boot noise (0x00/0xFF) between lines.
            if c == _CR or c == _LF or c == 0 or c == 0xFF:
                self._start = s + 1
                continue
            # '>' prompt: no line end follows (MPUBEX, air724-at.md §2); '> ' on newer firmware.
            if c == _GT and self._gt and self._payload is not None and self._active:
                self._start = s + 1
                self._skip_sp = True
                self._release()
                continue
            e = _eol(buf, s, end)
            if self._inline and self._try_inline(s, e if e >= 0 else end):
                continue
            if e < 0:
                self._more(s)
                return
            r = self._try_eol_counted(s, e, end)
            if r == _WAIT:
                return
            if r == _NONE:
                self._start = e + 1
                self._line(s, e)

    def _more(self, s):
        """Keep the partial line buf[s:end] and make room to read more."""
        if self._end < len(self._buf):
            return
        if s:
            self._compact(s)
            return
        self.overflows += 1
        self._skip = True
        self._start = self._end = 0
        self._emit(EV_OVERFLOW, None)

    def _compact(self, s):
        n = self._end - s
        self._mv[0:n] = self._mv[s : self._end]
        self._start = 0
        self._end = n

    def _try_inline(self, s, stop):
        buf = self._buf
        for rule in self._inline:
            p = rule[0]
            if stop - s >= len(p) and buf.startswith(p, s):
                r = rule[2](self._mv[s:stop])
                if r is None:
                    return False
                self._begin(s, s + r[0], s + r[0], r[1], rule[1])
                return True
        return False

    def _try_eol_counted(self, s, e, end):
        buf = self._buf
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
        if target is False:
            return _NONE
        count = _tail_int(buf, s, e)
        if count < 0:
            return _NONE
        ps = e + 1
        if buf[e] == _CR:  # CR LF ends the header: the payload starts after the LF
            if ps >= end:
                self._more(s)  # wait for the byte after CR
                return _WAIT
            if buf[ps] == _LF:
                ps += 1
        self._begin(s, e, ps, count, target)
        return _BEGUN

    def _begin(self, hs, he, ps, n, target):
        self._ctarget = target
        self._cseq = self._seq
        self._count = n
        size = len(self._buf)
        if ps + n > size and hs:
            self._compact(hs)
            ps -= hs
            he -= hs
            hs = 0
        self._hs = hs
        self._he = he
        self._ps = ps
        end = self._end
        if ps + n <= size:
            self._cmode = _INPLACE
            return
        if n <= self.data_max:
            big = bytearray(n)
            have = end - ps
            big[0:have] = self._mv[ps:end]
            self._big = big
            self._bigmv = memoryview(big)
            self._bigpos = have
            self._cmode = _BIG
            return
        self._cmode = _DROP
        if target is None and self._active:
            self._derr = True
        self._emit(EV_DATA_DROPPED, n)

    def _counted(self, payload):
        head = self._mv[self._hs : self._he]
        target = self._ctarget
        if target is not None:
            self._call2(target, head, payload)
        elif self._active and self._cseq == self._seq:
            self._add(bytes(head))
            self._add(bytes(payload))
        else:  # the command that asked for it is gone (timed out)
            self._emit(EV_UNSOLICITED, head)

    def _line(self, s, e):
        buf = self._buf
        n = e - s
        if self._active:
            cmd = self._cmd
            if n == len(cmd) and buf.startswith(cmd, s):
                return  # echo (on by default after boot, air724-at.md §2)
            p = self._prompt
            if p is not None and not self._gt and self._payload is not None:
                if _starts(buf, p, s, n):
                    self._release()  # DOWNLOAD line (AT+HTTPDATA)
                    return
            for t in self._ok:
                if _starts(buf, t, s, n):
                    if self._need and self._lines is None:
                        break  # a late result of an earlier command (resync): unsolicited
                    if self._payload is not None:
                        self._finish(ResponseError("result before prompt"))
                        return
                    self._add(t if n == len(t) else bytes(self._mv[s:e]))
                    self._finish(None)
                    return
            else:  # no success token matched
                if self._final_error(s, e, n):
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
                            self._add(bytes(self._mv[s:e]))
                            return
                if self._urc(s, e):
                    return
                if resp is None:
                    self._add(bytes(self._mv[s:e]))
                    return
        elif self._urc(s, e):
            return
        if self.on_event is not None:
            self._emit(EV_UNSOLICITED, self._mv[s:e])

    def _final_error(self, s, e, n):
        buf = self._buf
        if _starts(buf, b"ERROR", s, n):
            err = CommandError(b"ERROR" if n == 5 else bytes(self._mv[s:e]), _tail_int(buf, s, e))
        elif _starts(buf, b"+CME ERROR:", s, n) or _starts(buf, b"+CMS ERROR:", s, n):
            err = CMEError(bytes(self._mv[s:e]), _tail_int(buf, s, e))
        else:
            return False
        if not (self._need and self._lines is None):  # else: stale, dropped (resync)
            self._finish(err)
        return True

    def _urc(self, s, e):
        buf = self._buf
        n = e - s
        for u in self._urcs:
            if _starts(buf, u[0], s, n):
                self._call1(u[1], self._mv[s:e])
                return True
        return False
