"""LineScanner: the receive side of the AT engine, synchronous, fed bytes by the reader task.

Bytes land in one buffer (``space()``: where the next read goes; ``received(n)`` scans them;
``feed(data)`` does both), cut into lines in place (memoryviews). Lines end in CR, LF or CR LF
(air724-at.md §2); blank lines and boot noise (0x00/0xFF) between lines are skipped; a line
longer than the buffer is dropped (``EV_OVERFLOW``). A data prompt (``>`` with no line end, or
``DOWNLOAD``) is found as it arrives. Counted reads: a header found by a rule is followed by n
raw bytes, copied out when they fit after the header, else read into a bytearray of their own
(up to ``data_max``), else skipped (``EV_DATA_DROPPED``), and abandoned when the bytes stop
(``atmodem.counted``). A partial line is searched once: the next read looks for a line end,
and asks a header rule, only past what was seen. Meanings: ``atmodem.pending``.
"""

from micropython import const

from atmodem.counted import Counted

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from typing import Callable

_EV_OVERFLOW = const(1)  # the value of atmodem.EV_OVERFLOW (__init__.py)

_CR = const(13)
_LF = const(10)
_SP = const(32)
_SCRATCH = const(32)  # reads shorter than this go through the scratch buffer (space())
# Reader modes (the counted ones are also atmodem.counted's).
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


class LineScanner(Counted):
    """Cuts received bytes into lines, counted payloads and prompts (see the module doc).
    ``bufsize`` bounds a line (and a counted header); ``data_max`` a counted payload read into
    its own buffer. ``on_event(kind, data)`` receives the ``EV_*`` events."""

    # From atmodem.pending (annotations: no code on the board): a line buf[s:e]; the prompt
    # arrived; a counted read is complete; _cprefix's is over data_max; EV_* out.
    _line: "Callable[[int, int], None]"
    _prompted: "Callable[[], None]"
    _counted: "Callable[[bytearray | None], None]"
    _own_dropped: "Callable[[], None]"
    _emit: "Callable[[int, object], None]"

    def __init__(self, bufsize: int = 1024, data_max: int = 8192):
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self.data_max = data_max
        self.on_event: object = None  # None, or a callable on_event(kind, data)
        self.overflows = 0
        self.handler_errors = 0
        self._counted_init()
        # URC tables of (prefix, handler, counted), longest prefix first: plain lines, headers
        # ending in their count, headers with the count inside (atmodem.pending.add_urc).
        self._urcs = []
        self._eolc = []
        self._inline = []
        # Unread: buf[_start:_end], of a partial line buf[_start:_seen] searched. A counted read:
        # header buf[_hs:_he] (_hs -1: an inline rule's, which kept what it needs), length
        # _count (left to skip in _DROP), buffer _big/_bigmv (_BIG), target _ctarget: a URC
        # handler, None (the pending command) or False (that command is gone).
        self._start = self._end = self._mode = self._count = self._bigpos = self._seen = 0
        self._hs = self._he = 0
        self._big = self._bigmv = self._ctarget = None
        self._cprefix = self._prompt = None  # the pending command's counted prefix, data prompt
        self._scratch = memoryview(bytearray(_SCRATCH))  # see space()
        self._trickle = self._into = False

    def space(self) -> memoryview:
        """Where the next received bytes go (never empty). No new memoryview when the buffer is
        empty, nor while bytes trickle in (fewer than _SCRATCH a read): a scratch buffer then,
        copied on by ``received``."""
        big = self._bigmv
        if big is None:
            at = self._end
            if not at:
                return self._mv
            room = len(self._buf) - at
        else:  # at most a line buffer: what comes after a silence moves there (Counted._abandon)
            at = self._bigpos
            room = min(len(big) - at, len(self._buf))
        if self._trickle and room >= _SCRATCH:
            self._into = True
            return self._scratch
        return self._mv[at:] if big is None else big[at : at + room]

    def received(self, n: int) -> None:
        """``n`` bytes were written into ``space()``: scan them."""
        if self._into:  # from the scratch buffer, byte by byte (a slice would allocate)
            self._into = False
            big = self._big
            dst = self._buf if big is None else big
            at = self._end if big is None else self._bigpos
            src = self._scratch
            for i in range(n):
                dst[at + i] = src[i]
        self._trickle = n < _SCRATCH
        if self._late():  # a counted read that got no byte for gap_ms: given up
            self._abandon(n)
            return
        big = self._big
        if big is None:
            self._end += n
            self._scan()
            return
        self._bigpos += n
        if self._bigpos == len(big):  # _BIG mode: the payload's own buffer is full
            self._big = self._bigmv = None
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
        seen = self._seen  # set by _partial for this same line, else 0
        self._seen = 0
        if s >= end:
            self._start = self._end = 0
            return False
        c = buf[s]
        if c == _CR or c == _LF or c == 0 or c == 0xFF:
            self._start = s + 1  # blank lines and boot noise (0x00/0xFF) between lines
            return True
        # Data prompt: '>' with no line end (MPUBEX, air724-at.md §2), or DOWNLOAD (HTTPDATA).
        prompt = self._prompt
        if prompt is not None and starts(buf, prompt, s, end - s):
            self._start = s + len(prompt)
            self._mode = _PROMPT
            self._prompted()
            return True
        k = seen if seen > s else s  # buf[s:k] has no line end and no header's last comma
        e = _eol(buf, k, end)
        stop = e if e >= 0 else end
        if self._inline and self._inline_header(s, k, stop):
            return True
        if e >= 0 and self._complete(s, e, end):
            return True
        return self._partial(s, end, stop)

    def _inline_header(self, s, k, stop):
        # A header with its count inside, ending in a comma, the payload at once: its rule is
        # asked once per new comma, with the line up to that comma.
        buf = self._buf
        for rule in self._inline:
            if starts(buf, rule[0], s, stop - s):
                c = buf.find(b",", k, stop)
                while c >= 0:
                    n = rule[2](buf, s, c + 1)
                    if n >= 0:
                        self._begin(-1, c + 1, c + 1, n, rule[1])
                        return True
                    c = buf.find(b",", c + 1, stop)
                break
        return False

    def _complete(self, s, e, end):
        # A complete line buf[s:e]; a header ending in its count (the pending command's, else
        # a rule's) starts a counted read. False: wait for the byte after a CR.
        buf = self._buf
        n = e - s
        target = False
        if self._cprefix is not None and starts(buf, self._cprefix, s, n):
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
        # CR LF ends the header, the payload starts after the LF: after a CR, wait for a byte.
        ps = e + 1
        if ps < end or buf[e] != _CR:
            if ps < end and buf[e] == _CR and buf[ps] == _LF:
                ps += 1
            self._begin(s, e, ps, count, target)
            return True
        return False

    def _partial(self, s, end, seen):
        # A partial line: keep buf[s:end] (searched up to seen) and make room to read more.
        mv = self._mv
        if end < len(mv):
            self._seen = seen
            return False
        if s:  # move it to the front
            mv[0 : end - s] = mv[s:end]
            self._start = 0
            self._end = end - s
            self._seen = seen - s
            return False
        self.overflows += 1
        self._mode = _SKIP
        self._start = self._end = 0
        self._emit(_EV_OVERFLOW, None)
        return False
