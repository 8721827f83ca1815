"""Counted reads of the AT engine's scanner (``atmodem.scanner.LineScanner`` extends this).

A counted header (``+MSUB: "<topic>",<n> byte,``, ``+HTTPREAD: <n>``) is followed by n raw
bytes: copied out once when they fit after the header in the line buffer (``_INPLACE``), else
read into a bytearray of their own up to ``data_max``, handed over as it is (``_BIG``), else
skipped (``_DROP``, ``EV_DATA_DROPPED``).

A counted read has a deadline. The module sends a payload at line speed, so when no byte came
for ``gap_ms`` the count was a lie (a miscounted or truncated header) and the read is abandoned
(``EV_COUNTED_ABANDONED`` with the bytes still missing, counted in ``abandoned``): line mode
resumes with the bytes that come after the silence, so later answers are never swallowed for
good. It is checked when bytes arrive (``received``) and when a command gives up (``expire``,
called by the channel). A pending command's own read that is abandoned fails (``DataError``).
"""

from time import ticks_diff, ticks_ms

from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from typing import Callable

_EV_DATA_DROPPED = const(2)  # the values of atmodem.EV_* (__init__.py)
_EV_COUNTED_ABANDONED = const(6)
_GAP_MS = const(1000)  # no byte for this long in a counted read: the count was a lie
# Reader modes, the values of atmodem.scanner's.
_LINE = const(0)
_INPLACE = const(1)
_DROP = const(2)
_BIG = const(5)


class Counted:
    """The counted-read modes of ``LineScanner`` and their deadline."""

    # The scanner's (annotations only): its buffer and state, and what a read ends in.
    _buf: bytearray
    _mv: memoryview
    _start: int
    _end: int
    _mode: int
    _count: int
    _bigpos: int
    _big: "bytearray | None"
    _bigmv: "memoryview | None"
    _ctarget: object
    _hs: int
    _he: int
    data_max: int
    _counted: "Callable[[bytearray | None], None]"
    _own_dropped: "Callable[[], None]"
    _emit: "Callable[[int, object], None]"
    _scan: "Callable[[], None]"

    def _counted_init(self):
        self.abandoned = 0  # counted reads given up (no byte for gap_ms)
        self.gap_ms = _GAP_MS
        self.clock = ticks_ms  # the time source of the deadline
        self._last = 0  # when bytes last arrived

    def expire(self) -> bool:
        """Abandon a counted read that got no byte for ``gap_ms``; True if one was."""
        if not self._late(False):
            return False
        self._abandon(0)
        return True

    def _late(self, arrived=True) -> bool:
        # In a counted read and nothing came for gap_ms (arrived: bytes came now).
        now = self.clock()
        late = ticks_diff(now, self._last) > self.gap_ms
        if arrived:
            self._last = now
        mode = self._mode
        return late and (_INPLACE <= mode <= _DROP or mode == _BIG)

    def _abandon(self, n):
        # Give up the counted read; the n bytes just written into space() start a line.
        if self._mode == _BIG:
            big = self._bigmv
            pos = self._bigpos
            missing = len(big) - pos  # pyright: ignore[reportArgumentType] - set in _BIG
            self._mv[0:n] = big[pos : pos + n]  # pyright: ignore[reportOptionalSubscript]
            self._big = self._bigmv = None
            self._start = 0
            self._end = n
        else:
            missing = self._count - (self._end - self._start if self._mode == _INPLACE else 0)
            self._start = self._end
            self._end += n
        self._mode = _LINE
        self.abandoned += 1
        if self._ctarget is None:
            self._own_dropped()  # the pending command's own read: it fails
        self._emit(_EV_COUNTED_ABANDONED, missing)
        self._scan()

    def _inplace(self):
        s = self._start
        n = self._count
        if self._end - s < n:
            return False
        self._mode = _LINE
        self._start = s + n  # a copy (the buffer is reused), none for a command that is gone
        self._counted(self._buf[s : s + n] if self._ctarget is not False else None)
        return True

    def _drop(self):
        s = self._start
        if self._end - s < self._count:
            self._count -= self._end - s
            self._start = self._end = 0
            return False
        self._mode = _LINE
        self._start = s + self._count
        return True

    def _begin(self, hs, he, ps, n, target):
        # A counted read: header buf[hs:he] (hs -1: an inline rule's), n bytes from buf[ps].
        self._ctarget = target
        self._count = n
        size = len(self._buf)
        cut = he if hs < 0 else hs
        if ps + n > size and cut:  # move what is left to the front: more room for the payload
            self._mv[0 : self._end - cut] = self._mv[cut : self._end]
            self._end -= cut
            ps -= cut
            he -= cut
            hs = -1 if hs < 0 else 0
        self._hs = hs
        self._he = he
        self._start = ps
        if ps + n <= size:
            self._mode = _INPLACE
            return
        if n <= self.data_max:
            big = self._big = bytearray(n)
            have = self._end - ps
            big[0:have] = self._mv[ps : self._end]
            self._bigmv = memoryview(big)
            self._bigpos = have
            self._mode = _BIG
            return
        self._mode = _DROP
        if target is None:
            self._own_dropped()
        self._emit(_EV_DATA_DROPPED, n)
