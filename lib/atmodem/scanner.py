"""LineScanner: the receive side of the AT engine, synchronous, fed bytes by the reader task.

Bytes land in one buffer (``space()``: where the next read goes; ``received(n)`` scans them;
``feed(data)`` does both) and are cut into lines in place (memoryviews, no copy). Lines end in
CR, LF or CR LF (air724-at.md §2); blank lines and boot noise (0x00/0xFF) between lines are
skipped; a line longer than the buffer is dropped (``EV_OVERFLOW``). A data prompt (``>`` with
no line end, or ``DOWNLOAD``) is found as it arrives. Counted reads: a header found by a rule
is followed by n raw bytes, kept after the header when they fit, else in their own bytearray
(up to ``data_max``), else skipped (``EV_DATA_DROPPED``). One method per reader mode. A counted
read has no deadline of its own yet (its command times out; one would be checked in
``received``). What lines mean is ``atmodem.pending``'s.
"""

from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from typing import Callable

_EV_OVERFLOW = const(1)  # the values of atmodem.EV_* (__init__.py)
_EV_DATA_DROPPED = const(2)

_CR = const(13)
_LF = const(10)
_SP = const(32)
# Reader modes.
_LINE = const(0)  # cutting lines
_INPLACE = const(1)  # counted payload that fits in the line buffer, after its header
_DROP = const(2)  # counted payload over data_max: skipped
_SKIP = const(3)  # the rest of an overlong line: skipped
_PROMPT = const(4)  # just after a '>' prompt: one space may follow
_BIG = const(5)  # counted payload read into its own bytearray (up to data_max) by the reader


def starts(buf, token, s, n) -> bool:
    """True if the ``n`` bytes at ``buf[s]`` start with ``token``."""
    return len(token) <= n and buf.startswith(token, s)


def _eol(buf, s, end):
    # Lines end in CR, LF or CR LF (air724-at.md §2); the first of either ends the line.
    cr = buf.find(b"\r", s, end)
    lf = buf.find(b"\n", s, cr if cr >= 0 else end)
    return lf if lf >= 0 else cr


def tail_int(buf, s, e) -> int:
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


class LineScanner:
    """Cuts received bytes into lines, counted payloads and prompts (see the module doc).

    ``bufsize`` bounds a line (and a counted header); ``data_max`` a counted payload read into
    its own buffer. ``on_event(kind, data)`` receives the ``EV_*`` events.
    """

    # What lines mean, from atmodem.pending (annotations only: no code on the board): a line
    # buf[s:e]; the prompt arrived; a counted read is complete; _cprefix's is over data_max.
    _line: "Callable[[int, int], None]"
    _prompted: "Callable[[], None]"
    _counted: "Callable[[memoryview], None]"
    _own_dropped: "Callable[[], None]"

    def __init__(self, bufsize: int = 1024, data_max: int = 8192):
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self.data_max = data_max
        self.on_event: object = None  # None, or a callable on_event(kind, data)
        self.overflows = 0
        self.handler_errors = 0
        # URC tables of (prefix, handler, counted), longest prefix first: plain lines, headers
        # ending in their count, headers with the count inside (atmodem.pending.add_urc).
        self._urcs = []
        self._eolc = []
        self._inline = []
        # Unread bytes are buf[_start:_end]; a counted read has its header in _head, its length
        # in _count (left to skip in _DROP), its buffer in _big (_BIG mode) and its target in
        # _ctarget: a URC handler, None (the pending command) or False (that command is gone).
        self._start = self._end = self._mode = self._count = self._bigpos = 0
        self._head = self._mv
        self._big = self._ctarget = None
        self._cprefix = None  # the pending command's counted header prefix, if any
        self._prompt = None  # the data prompt a pending command waits for, if any

    def space(self) -> memoryview:
        """Where the next received bytes go (never empty)."""
        big = self._big
        return self._mv[self._end :] if big is None else big[self._bigpos :]

    def received(self, n: int) -> None:
        """``n`` bytes were written into ``space()``: scan them."""
        big = self._big
        if big is None:
            self._end += n
            self._scan()
            return
        self._bigpos += n
        if self._bigpos == len(big):  # _BIG mode: the payload's own buffer is full
            self._big = None
            self._mode = _LINE
            self._start = self._end = 0
            self._counted(big)

    def feed(self, data) -> None:
        """Scan ``data`` as if the reader had received it."""
        i = 0
        while i < len(data):
            dst = self.space()
            k = min(len(dst), len(data) - i)
            dst[:k] = data[i : i + k]
            i += k
            self.received(k)

    def _scan(self):
        # A mode's method returns False when it needs more bytes (in _BIG: see received).
        go = True
        while go:  # bounded: each step consumes bytes or changes mode
            mode = self._mode
            if mode == _LINE:
                go = self._cut()
            elif mode == _INPLACE:
                go = self._inplace()
            elif mode == _DROP:
                go = self._drop()
            elif mode == _SKIP:
                go = self._skip()
            else:
                go = mode == _PROMPT and self._after_prompt()

    def _inplace(self):
        s = self._start
        n = self._count
        if self._end - s < n:
            return False
        self._mode = _LINE
        self._start = s + n
        self._counted(self._mv[s : s + n])
        return True

    def _drop(self):
        s = self._start
        left = self._end - s
        if left < self._count:
            self._count -= left
            self._start = self._end = 0
            return False
        self._mode = _LINE
        self._start = s + self._count
        return True

    def _skip(self):
        s = self._start
        e = _eol(self._buf, s, self._end) if s < self._end else -1
        if e < 0:
            self._start = self._end = 0
            return False
        self._mode = _LINE
        self._start = e + 1
        return True

    def _after_prompt(self):
        s = self._start
        if s >= self._end:
            self._start = self._end = 0
            return False
        self._mode = _LINE
        if self._buf[s] == _SP:  # '> ' on newer firmware
            self._start = s + 1
        return True

    def _cut(self):
        buf = self._buf
        s = self._start
        end = self._end
        if s >= end:
            self._start = self._end = 0
            return False
        c = buf[s]
        # Blank lines and boot noise (0x00/0xFF) between lines.
        if c == _CR or c == _LF or c == 0 or c == 0xFF:
            self._start = s + 1
            return True
        # Data prompt: '>' with no line end after it (MPUBEX, air724-at.md §2), or the
        # DOWNLOAD line (AT+HTTPDATA).
        prompt = self._prompt
        if prompt is not None and starts(buf, prompt, s, end - s):
            self._start = s + len(prompt)
            self._mode = _PROMPT
            self._prompted()
            return True
        e = _eol(buf, s, end)
        if self._inline and self._inline_header(s, e if e >= 0 else end):
            return True
        if e >= 0 and self._complete(s, e, end):
            return True
        return self._partial(s, end)

    def _inline_header(self, s, stop):
        # A counted header with the count inside the line; the payload follows at once.
        for rule in self._inline:
            if starts(self._buf, rule[0], s, stop - s):
                r = rule[2](self._mv[s:stop])
                if r is None:
                    return False
                self._begin(s, s + r[0], s + r[0], r[1], rule[1])
                return True
        return False

    def _complete(self, s, e, end):
        # A complete line buf[s:e]; a header ending in its count (the pending command's, else
        # a rule's) starts a counted read. False: wait for the byte after a CR.
        buf = self._buf
        n = e - s
        target = False
        cp = self._cprefix
        if cp is not None and starts(buf, cp, s, n):
            target = None
        else:
            for rule in self._eolc:
                if starts(buf, rule[0], s, n):
                    target = rule[1]
                    break
        count = -1 if target is False else tail_int(buf, s, e)
        if count < 0:
            self._start = e + 1
            self._line(s, e)
            return True
        # CR LF ends the header and the payload starts after the LF: after a CR that ends the
        # data, wait for the next byte.
        ps = e + 1
        if ps < end or buf[e] != _CR:
            if ps < end and buf[e] == _CR and buf[ps] == _LF:
                ps += 1
            self._begin(s, e, ps, count, target)
            return True
        return False

    def _partial(self, s, end):
        # A partial line: keep buf[s:end] and make room to read more.
        mv = self._mv
        if end < len(mv):
            return False
        if s:  # move it to the front
            mv[0 : end - s] = mv[s:end]
            self._start = 0
            self._end = end - s
            return False
        self.overflows += 1
        self._mode = _SKIP
        self._start = self._end = 0
        self._emit(_EV_OVERFLOW, None)
        return False

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
        if target is None:
            self._own_dropped()
        self._emit(_EV_DATA_DROPPED, n)

    def _emit(self, kind, data):
        cb = self.on_event
        if callable(cb):  # None when nobody listens
            try:
                cb(kind, data)
            except Exception:  # an observer must not stop the reader
                pass
