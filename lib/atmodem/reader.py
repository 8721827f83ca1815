"""LineReader: the receive half of the AT engine (one task owns the stream's input).

Bytes are read into one pre-allocated buffer and cut into lines in place: a line is a span
of the buffer, handed out as a memoryview, so a line costs no copy. Lines end in CR, LF or
CR LF; blank lines and boot noise (0x00/0xFF) between lines are skipped; a line longer than
the buffer is dropped (``EV_OVERFLOW``) and reading goes on.

Counted reads: a header found by a rule is followed by exactly n raw bytes, read whatever
they contain. The payload lands in the buffer right after its header when it fits, else in
its own bytearray (up to ``data_max``), else it is skipped (``EV_DATA_DROPPED``).

``ATChannel`` (channel.py) adds the command side through the ``_cmd_*`` and ``_line`` hooks.
"""

from micropython import const

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


class LineReader:
    """Reads the stream, cuts lines, runs counted reads and the URC table."""

    def __init__(self, stream, bufsize: int, data_max: int):
        self._in = stream
        # MicroPython's Stream has readinto(); CPython's StreamReader only read(n).
        self._readinto = getattr(stream, "readinto", None)
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self.data_max = data_max
        self.on_event: object = None  # None, or a callable on_event(kind, data)
        self.overflows = 0
        self.handler_errors = 0
        self._closed = False
        self._urcs = []  # (prefix, handler(line))
        self._eolc = []  # (prefix, handler(header, payload)): n ends the header line
        self._inline = []  # (prefix, handler(header, payload), header_fn)
        # Parser state: unread bytes are buf[_start:_end].
        self._start = 0
        self._end = 0
        self._skip = False  # dropping the rest of an overlong line
        self._skip_sp = False  # a space may follow a '>' prompt
        self._cmode = _IDLE
        self._hs = self._he = self._ps = self._count = 0
        self._bigmv = None  # a payload's own buffer (_BIG mode)
        self._bigpos = 0
        self._ctarget = None  # None: the pending command; else a URC handler

    @property
    def closed(self) -> bool:
        return self._closed

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

    # -- hooks for the command side -----------------------------------------------------------

    def _cmd_prompt(self) -> bool:
        """A '>' began a line: True if it released a pending payload."""
        return False

    def _cmd_counted(self, s: int, n: int) -> bool:
        """True if buf[s:s+n] is the pending command's counted header."""
        return False

    def _cmd_data(self, head, payload):
        """A counted read for the command finished."""
        self._unsolicited(head)

    def _line(self, s, e):
        """A complete line buf[s:e] (no line end)."""
        if not self._urc(s, e):
            self._unsolicited(self._mv[s:e])

    def _on_closed(self):
        pass

    # -- reader task --------------------------------------------------------------------------

    async def _read(self, dst):
        # For streams without readinto (CPython's StreamReader).
        data = await self._in.read(len(dst))
        n = len(data)
        dst[:n] = data
        return n

    async def _run(self):
        recv = self._readinto
        if recv is None:
            recv = self._read
        try:
            while True:
                big = self._bigmv
                if big is not None:  # _BIG mode: the payload is read into its own buffer
                    n = await recv(big[self._bigpos :])
                    if n is None:
                        continue
                    if not n:
                        break
                    self._bigpos += n
                    if self._bigpos == len(big):
                        self._counted(big)
                        self._bigmv = None
                        self._cmode = _IDLE
                        self._start = self._end = 0
                    continue
                n = await recv(self._mv[self._end :])
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
        if not self._closed:
            self._closed = True
            self._on_closed()
            self._emit(EV_CLOSED, None)

    def _emit(self, kind, data):
        cb = self.on_event
        if callable(cb):  # None when nobody listens
            try:
                cb(kind, data)
            except Exception:  # an observer must not stop the reader
                pass

    def _unsolicited(self, line):
        if self.on_event is not None:
            self._emit(EV_UNSOLICITED, line)

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

    # -- line cutting -------------------------------------------------------------------------

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
            if c == _GT and self._cmd_prompt():
                self._start = s + 1
                self._skip_sp = True
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

    def _urc(self, s, e):
        buf = self._buf
        n = e - s
        for u in self._urcs:
            if _starts(buf, u[0], s, n):
                self._call1(u[1], self._mv[s:e])
                return True
        return False

    # -- counted reads ------------------------------------------------------------------------

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
        if self._cmd_counted(s, n):
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
            self._bigmv = memoryview(big)
            self._bigpos = have
            self._cmode = _BIG
            return
        self._cmode = _DROP
        self._dropped(target is None)
        self._emit(EV_DATA_DROPPED, n)

    def _dropped(self, for_command):
        pass

    def _counted(self, payload):
        head = self._mv[self._hs : self._he]
        if self._ctarget is None:
            self._cmd_data(head, payload)
        else:
            self._call2(self._ctarget, head, payload)
