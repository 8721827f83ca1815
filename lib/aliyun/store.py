"""Persistent FIFO of records on the board's filesystem: survives resets and power cuts.

The queue is a directory (littlefs on ESP32/RP2040, any directory on the unix port) holding
append-only segment files ``<n>.q`` (n counts up) and a pointer file ``ack``:

- A record is framed as ``length (u16 LE) | crc32(length bytes + payload) (u32 LE) | payload``
  (``aliyun.spool``) and appended to the newest segment in one write, the file closed after
  it, so it is on flash when ``append`` returns. A record cut short by a power cut (or
  corrupted) fails its length or CRC check: the next ``Store()`` keeps the records before it
  and skips the rest of that segment, counted in ``torn``. Every ``Store()`` appends to a new
  segment, so nothing is ever written after a torn record.
- ``ack`` holds the position of the oldest unsent record (segment, offset, crc32), rewritten
  atomically (written to ``ack.tmp``, then renamed over ``ack``: atomic on littlefs and POSIX) at
  most once per ``ack_every`` acknowledged records. A segment whose records are all sent is
  deleted. A reset before the pointer is saved sends up to ``ack_every - 1`` records again
  (at-least-once), never fewer; a missing or damaged pointer means "from the oldest segment".
- The files together stay within ``max_bytes``: a new segment that would exceed it deletes the
  oldest segment first, its unsent records counted in ``dropped``.

Flash wear (measured on littlefs, tools/bench/vm_store.py): littlefs is copy-on-write, so each
durable append copies the segment's last block: about one 4 KB erase per record, whatever the
segment size; 4096-byte segments (one littlefs block each) hold the most records per KB.

Reading: ``peek(n)`` returns up to ``n`` oldest unsent records (read into a small RAM window);
``token(k)`` marks the end of the first ``k`` of them, ``ack(token)`` acknowledges them once sent
(records deleted meanwhile for room do not shift it); ``pop(n)`` is both at once. Nothing here
knows what a record means.
"""

import os
from binascii import crc32
from struct import pack, unpack

from micropython import const

from aliyun.spool import HEAD as _HEAD
from aliyun.spool import append

_MAX_RECORD = const(65535)
_SUFFIX = ".q"


class Store:
    """The queue in directory ``root`` (created if missing); records are non-empty bytes."""

    def __init__(
        self, root: str, max_bytes: int = 65536, segment_bytes: int = 4096, ack_every: int = 8
    ):
        if segment_bytes < 64 or max_bytes < 2 * segment_bytes:
            raise ValueError("max_bytes must hold two segments of >= 64 bytes")
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.ack_every = ack_every
        self.records = 0  # unsent records
        self.bytes = 0  # bytes of the segment files
        self.dropped = 0  # unsent records deleted to stay within max_bytes
        self.torn = 0  # damaged records found (and skipped) when opening
        # Segments, oldest first: [number, file size, end of valid records, unsent records].
        self._segs = []
        self._ack = (0, 0)  # (segment, offset) of the oldest unsent record
        self._unsaved = 0  # records acknowledged since the pointer was last written
        self._window = []  # read-ahead: [(segment, end offset, payload)]
        self._next = (0, 0)  # (segment, offset) read next into the window
        self._write = None  # the segment appended to, None until the first append
        self._open()

    # -- opening --

    def _path(self, name) -> str:
        return self.root + "/" + name

    def _open(self) -> None:
        try:
            os.mkdir(self.root)
        except OSError:
            pass  # exists
        numbers = []
        for name in os.listdir(self.root):
            if name.endswith(_SUFFIX):
                try:
                    numbers.append(int(name[: -len(_SUFFIX)]))
                except ValueError:
                    pass
        numbers.sort()
        seg, off = self._load_pointer()
        for n in numbers:
            if n < seg:  # sent; its deletion was cut short
                self._remove(n)
            else:
                self._scan(n, off if n == seg else 0)
        first = self._segs[0][0] if self._segs else seg
        self._ack = self._next = (first, off if first == seg else 0)
        # Numbers only grow, past the pointer's too: a new segment never looks already sent.
        self._last = max(numbers[-1] if numbers else 0, seg)
        self.boot = self._last + 1  # the first segment of this run: tells runs apart
        self._drop_sent()

    def _load_pointer(self) -> tuple:
        try:
            with open(self._path("ack"), "rb") as f:
                raw = f.read(12)
        except OSError:  # missing: a fresh store
            raw = b""
        if len(raw) == 12:
            seg, off, crc = unpack("<III", raw)
            if crc == crc32(raw[:8]):
                return seg, off
        return 0, 0  # from the oldest segment: duplicates possible, no loss

    def _scan(self, n: int, ack_off: int) -> None:
        """Check every record of segment ``n``; count those from ``ack_off`` on as unsent."""
        end = unsent = 0
        with open(self._path(str(n) + _SUFFIX), "rb") as f:
            while True:
                data = _read_record(f)
                if data is None:
                    break
                if end >= ack_off:
                    unsent += 1
                end += _HEAD + len(data)
            size = f.seek(0, 2)
        if size > end:
            self.torn += 1
        self._segs.append([n, size, end, unsent])
        self.bytes += size
        self.records += unsent

    # -- writing --

    def append(self, data) -> bool:
        """Store ``data`` (bytes, 1..65535 long) durably; False if older unsent records had to
        be deleted to make room. OSError when the filesystem fails (the record is not kept)."""
        size = len(data)
        if not 0 < size <= _MAX_RECORD or size + _HEAD > self.segment_bytes:
            raise ValueError("record size")
        kept = True
        seg = self._segs[-1] if self._segs else None
        if self._write is None or seg is None or seg[1] + _HEAD + size > self.segment_bytes:
            kept = self._new_segment()
            seg = self._segs[-1]
        try:
            written = append(self._path(str(seg[0]) + _SUFFIX), data)
        except OSError:
            self._write = None  # bytes may have reached the file: never append after them
            raise
        seg[1] += written
        seg[2] = seg[1]
        seg[3] += 1
        self.bytes += written
        self.records += 1
        return kept

    def _new_segment(self) -> bool:
        kept = True
        while self._segs and self.bytes + self.segment_bytes > self.max_bytes:
            kept = False
            self.dropped += self._segs[0][3]
            self._delete_oldest()
        self._last += 1
        self._write = self._last
        self._segs.append([self._last, 0, 0, 0])
        return kept

    # -- reading and acknowledging --

    def peek(self, n: int = 1) -> list:
        """Up to ``n`` of the oldest unsent records (payload bytes), oldest first; ``pop``
        acknowledges them."""
        window = self._window
        while len(window) < n and self._fill(n - len(window)):
            pass
        return [item[2] for item in window[:n]]

    def _fill(self, n: int) -> bool:
        """Read up to ``n`` unsent records of one segment into the window; False if none."""
        seg, off = self._next
        for entry in self._segs:
            if entry[0] < seg:
                continue
            if entry[0] > seg:
                seg, off = entry[0], 0
            if off >= entry[2]:
                continue
            with open(self._path(str(seg) + _SUFFIX), "rb") as f:
                f.seek(off)
                while n and off < entry[2]:
                    data = _read_record(f)
                    if data is None:  # changed since it was checked: skip the rest
                        self.torn += 1
                        entry[2] = off
                        break
                    off += _HEAD + len(data)
                    self._window.append((seg, off, data))
                    n -= 1
            self._next = (seg, off)
            return True
        return False

    def token(self, n: int):
        """Where the first ``n`` records of the last ``peek`` end: ``ack`` it once they are
        sent. Records deleted meanwhile (store full) are simply gone; no other is acknowledged."""
        return self._window[n - 1][:2] if n else self._ack

    def ack(self, token) -> None:
        """Acknowledge every record up to ``token`` (from ``token``): they were sent."""
        window = self._window
        n = 0
        while n < len(window) and window[n][:2] <= token:
            seg = window[n][0]
            for entry in self._segs:
                if entry[0] == seg:
                    entry[3] -= 1
                    break
            n += 1
        if not n:
            return
        self._ack = window[n - 1][:2]
        del window[:n]
        self.records -= n
        self._unsaved += n
        self._drop_sent()  # deleting a sent segment acknowledges it too
        if self._unsaved >= self.ack_every:
            self.flush()

    def pop(self, n: int = 1) -> None:
        """Acknowledge the first ``n`` records returned by ``peek`` right before."""
        if n:
            self.ack(self.token(min(n, len(self._window))))

    def flush(self) -> None:
        """Save the acknowledgement pointer now (``pop`` does every ``ack_every`` records)."""
        raw = pack("<II", self._ack[0], self._ack[1])
        tmp = self._path("ack.tmp")
        with open(tmp, "wb") as f:
            f.write(raw + pack("<I", crc32(raw)))
        try:
            os.rename(tmp, self._path("ack"))
        except OSError:  # a filesystem whose rename does not replace (FAT)
            self._remove_file("ack")
            os.rename(tmp, self._path("ack"))
        self._unsaved = 0

    def _drop_sent(self) -> None:
        """Delete the oldest segments whose records were all sent (not the one written to)."""
        segs = self._segs
        while segs and segs[0][3] == 0 and segs[0][0] != self._write:
            self._delete_oldest()

    def _delete_oldest(self) -> None:
        seg = self._segs.pop(0)
        self.bytes -= seg[1]
        self.records -= seg[3]
        self._remove(seg[0])
        self._window = [w for w in self._window if w[0] != seg[0]]
        if self._ack[0] <= seg[0]:
            self._ack = (self._segs[0][0], 0) if self._segs else (seg[0] + 1, 0)
        if self._next[0] <= seg[0]:
            self._next = self._ack

    def _remove(self, n: int) -> None:
        self._remove_file(str(n) + _SUFFIX)

    def _remove_file(self, name: str) -> None:
        try:
            os.remove(self._path(name))
        except OSError:
            pass


def _read_record(f):
    """The next record's payload from file ``f``, or None at the end or at a damaged record."""
    head = f.read(_HEAD)
    if len(head) < _HEAD:
        return None
    size, crc = unpack("<HI", head)
    if not size:
        return None
    data = f.read(size)
    if len(data) < size or crc32(data, crc32(head[:2])) != crc:
        return None
    return data
