"""AT engine: one reader task, serialized commands, URC dispatch.

Knows nothing about the Air724 or Aliyun. ``ATChannel`` (channel.py) and the typed errors
(errors.py) are re-exported here. Defined here, for the drivers and the session: ``wait_ms``,
the one place where a timed-out wait becomes the typed ``ATTimeoutError`` (every wait goes
through it), and ``Ring``, the bounded FIFO of link events, incoming MQTT messages and the
session's QoS1 outbox.
"""

import asyncio

from atmodem.channel import ATChannel  # noqa: F401
from atmodem.errors import (  # noqa: F401
    AbortError,
    ArgumentError,
    ATError,
    ATTimeoutError,
    ClosedError,
    CMEError,
    CommandError,
    DataError,
    ResponseError,
)

# Events passed to ``ATChannel.on_event(kind, data)`` (channel.py sends these values).
EV_OVERFLOW = 1  # a line longer than the buffer was dropped (data: None)
EV_DATA_DROPPED = 2  # a counted payload over data_max was skipped (data: its length)
EV_HANDLER_ERROR = 3  # a URC handler raised (data: the exception)
EV_UNSOLICITED = 4  # a line nobody took (data: memoryview, valid during the call)
EV_CLOSED = 5  # the stream ended or failed; the channel is closed (data: None)
EV_COUNTED_ABANDONED = 6  # a counted read got no byte for gap_ms: given up (data: bytes missing)


async def wait_ms(aw, timeout_ms: int, what=b""):
    """Await ``aw`` at most ``timeout_ms``; ``ATTimeoutError(what)`` when the time is up."""
    try:
        return await asyncio.wait_for_ms(aw, timeout_ms)
    except asyncio.TimeoutError:
        raise ATTimeoutError(what) from None


class Ring:
    """Bounded FIFO with an awaitable ``get``; when full the oldest item goes (``dropped``).

    ``peek`` and ``pop`` serve a reader that removes an item only once it is done with it; while
    it works on the oldest it sets ``held``, and then the next oldest is the one that goes (or
    the new item, in a ring of one). ``pop`` clears ``held``.
    """

    def __init__(self, size: int = 32):
        if size < 1:
            raise ValueError("size < 1")
        self._items: list = [None] * size
        self._head = 0
        self._len = 0
        self.dropped = 0
        self.held = False
        self._ev = asyncio.Event()

    def __len__(self):
        return self._len

    def put(self, item) -> bool:
        """Queue ``item``; False if the oldest item had to go to make room."""
        items = self._items
        size = len(items)
        kept = self._len < size
        if not kept:
            self.dropped += 1
            head = self._head
            if self.held:  # the oldest is being worked on: the next oldest goes
                if size == 1:
                    return False
                items[(head + 1) % size] = items[head]
                items[head] = None
            self._head = (head + 1) % size
            self._len -= 1
        items[(self._head + self._len) % size] = item
        self._len += 1
        self._ev.set()
        return kept

    def peek(self):
        """The oldest item, left in place; None when empty."""
        return self._items[self._head] if self._len else None

    def pop(self) -> None:
        """Remove the oldest item (if any)."""
        self.held = False
        if self._len:
            self._items[self._head] = None
            self._head = (self._head + 1) % len(self._items)
            self._len -= 1

    async def get(self, timeout_ms: int):
        """Remove and return the oldest item; ``ATTimeoutError`` if none comes in time."""
        while not self._len:
            self._ev.clear()
            await wait_ms(self._ev.wait(), timeout_ms)
        item = self._items[self._head]
        self.pop()
        return item
