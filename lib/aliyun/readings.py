"""The session's property posts on flash: ``aliyun.backlog`` opened, closed and fed.

``Readings`` stays loaded; the store's code (``aliyun.store``, ``aliyun.backlog``) is loaded
only between bring-ups (``park`` before each, ``reopen`` after): a reading taken meanwhile goes
to a new segment file through the small ``aliyun.spool``, so every reading is on flash when
``add`` returns. ``clock`` is the session's (epoch ms, ticks) pair: NTP's, or the module's
network clock until NTP answers.
"""

import gc
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun import unload
from atmodem import wait_ms
from atmodem.errors import ATTimeoutError

_CODE = ("aliyun.backlog", "aliyun.store")
_CLOCK_RETRY_MS = const(10000)  # stored readings wait for NTP: asked again this often


def attach(session, product_key: str, device_name: str) -> None:
    """Give ``session`` (an ``aliyun.online.Online``) its readings on flash."""
    readings = Readings(
        session.store_dir,
        session.config["store"]["max_bytes"],
        product_key,
        device_name,
        ticks_diff,
    )
    session.readings = readings
    # Ids must differ from those of readings stored by earlier runs (unique per device per
    # day, reference §4.2): a million per run, counted by the store.
    session.thing._next_id = 1 + (readings.boot % 4000) * 1000000


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

    def reopen(self, log) -> None:
        """After a bring-up; an error (OSError, MemoryError) is logged and leaves it closed:
        ``add`` goes on, readings still reach the flash."""
        if self._parked is not None:
            gc.collect()
            try:
                self._open()
            except Exception as exc:
                log("warning", "store not reopened: %s: %s" % (type(exc).__name__, exc))
                return
            self._parked = None

    async def post(self, session, params: dict, timeout_ms: int):
        """``session.post_properties`` with a store: on flash first; the reply is awaited only
        while online with no older reading waiting (else None at once)."""
        thing = session.thing
        msg_id = thing.ids()
        waiter = thing.expect_reply(msg_id)
        try:
            measured = session.time_ms()
            if not self.add(msg_id, params, measured, ticks_ms()):
                session.log("warning", "store full: oldest readings dropped")
            session.log("debug", "stored %s t=%s" % (msg_id, measured))
            session._wake_outbox.set()
            if not session.online or timeout_ms <= 0 or self.records > 1:
                return None  # offline, or behind older readings: the reply comes much later
            await wait_ms(waiter.event.wait(), timeout_ms)
            return waiter.code
        except ATTimeoutError:
            return None
        finally:
            thing.forget(msg_id)

    def message(self, session):
        """The pump's next message from the store, dated by a clock NTP set since this
        connect (the cloud's clock may have moved: wait for this link's NTP answer)."""
        clock = session.thing.clock
        if clock is session._clock_at_online:
            clock = None
        now = session.time_ms() if clock is not None else 0
        return self.next(clock, now, session.topics.property_post)

    async def idle(self, session) -> None:
        """Readings wait for the clock: until woken, asking NTP again now and then."""
        try:
            await wait_ms(session._wake_outbox.wait(), _CLOCK_RETRY_MS)
        except ATTimeoutError:
            session._sync_clock()

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
