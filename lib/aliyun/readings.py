"""The session's property posts on flash: ``aliyun.backlog`` opened, closed and fed.

``Readings`` stays loaded; the store's code (``aliyun.store``, ``aliyun.backlog``) is loaded
only between bring-ups (``park`` before each, ``reopen`` after): a reading taken meanwhile goes
to a new segment file through the small ``aliyun.spool``, so every reading is on flash when
``add`` returns. ``clock`` is the session's (epoch ms, ticks) pair: NTP's, or the module's
network clock until NTP answers.
"""

import gc

from aliyun import unload

_CODE = ("aliyun.backlog", "aliyun.store")


class Readings:
    def __init__(self, root: str, max_bytes: int, product_key: str, device_name: str, diff):
        self._args = (root, max_bytes, product_key, device_name, diff)
        self.backlog = None
        self.boot = 0  # this run's number (the store's, from its first opening)
        self._parked = None  # [segment number, bytes in it, segment size, stats when closed]
        self._open()

    def _open(self) -> None:
        from aliyun.backlog import Backlog

        self.backlog = Backlog(*self._args, boot=self.boot)
        self.boot = self.backlog.boot

    @property
    def records(self) -> int:
        if self.backlog is not None:
            return self.backlog.store.records
        return self._parked[3]["records"] if self._parked else 0

    def add(self, msg_id: str, params: dict, epoch_ms, ticks) -> bool:
        """Keep a reading on flash; False if older ones were dropped for room."""
        backlog, parked = self.backlog, self._parked
        if backlog is not None:
            return backlog.add(msg_id, params, epoch_ms, ticks)
        if parked is None:
            raise OSError(5)  # the store failed to reopen: nothing accepted
        from aliyun import spool  # loaded: the store's own append

        record = spool.reading(msg_id, params, epoch_ms, self.boot, ticks)
        if parked[1] and parked[1] + spool.HEAD + len(record) > parked[2]:
            parked[0] += 1  # segment full: the next one (the store's naming, aliyun.store)
            parked[1] = 0
        parked[1] += spool.append("%s/%d.q" % (self._args[0], parked[0]), record)
        parked[3]["records"] += 1
        return True

    def park(self, clock, now_ms) -> None:
        """Close the store and unload its code (RAM for a bring-up)."""
        backlog = self.backlog
        if backlog is not None:
            store = backlog.store
            state = backlog.state(clock, now_ms)
            self._parked = [store._last + 1, 0, store.segment_bytes, state]
            self.backlog = None
            unload(_CODE)

    def reopen(self) -> None:
        """After a bring-up; OSError or MemoryError leave it closed (``add`` goes on)."""
        if self._parked is not None:
            gc.collect()
            self._open()
            self._parked = None

    def next(self, clock, now_ms, topic: str):
        """The next message for the pump (see ``Backlog.next``), None when closed."""
        backlog = self.backlog
        if backlog is None:
            return None
        if backlog.store.records > 1:
            gc.collect()  # a batch of old readings is the largest message
        try:
            return backlog.next(clock, now_ms, topic)
        except MemoryError:  # a fragmented heap: once more after a collection
            gc.collect()
            return backlog.next(clock, now_ms, topic)

    def ack(self, token) -> None:
        if self.backlog is not None:
            self.backlog.store.ack(token)

    def state(self, clock, now_ms) -> dict:
        """For ``stats``: records, bytes, oldest age, drops (as when closed, plus new ones)."""
        if self.backlog is not None:
            return self.backlog.state(clock, now_ms)
        return self._parked[3] if self._parked else {}
