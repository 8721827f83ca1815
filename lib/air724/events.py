"""Link events: the Air724's URCs that mean the link (or the module) changed state.

``LinkEvents`` registers the URCs on the channel and publishes each event by name to the
subscribed callbacks, ``callback(name, line)``, and into a small ring read by ``await get()``.
Names are the module-level strings below.
"""

import asyncio

from atmodem.errors import ATTimeoutError

CLOSED = "closed"  # URC CLOSED: the MQTT TCP link closed (§7.5; reliable since V838)
PDP_DEACT = "pdp_deact"  # PDP context deactivated: any spelling holding DEACT (§5.3)
BEARER_DEACT = "bearer_deact"  # +SAPBR 1: DEACT, the HTTP bearer dropped (§5.1)
REBOOT = "reboot"  # RDY: the module (re)started; echo is on again, settings lost (§3.2)
SIM_REMOVED = "sim_removed"  # +CPIN: NOT INSERTED (Air724) / SIM REMOVED (manual) (§3.2)
SIM_READY = "sim_ready"  # +CPIN: READY

# Boot and network URCs that carry no link event but must not land in a bare-line answer
# such as AT+CGSN's (air724-at.md §3.2 "a robust driver should treat ... as URCs").
_QUIET = (b"^MODE:", b"+NITZ:", b"SMS READY", b"+E_UTRAN", b"UART Boot", b"+CREG:")
_QUIET2 = (b"+CEREG:", b"+CGREG:")


def _ignore(line):
    pass


class Ring:
    """Bounded FIFO with an awaitable ``get``; when full the oldest item goes (``dropped``)."""

    def __init__(self, size: int):
        self._items: list = [None] * size
        self._head = 0
        self._len = 0
        self.dropped = 0
        self._ev = asyncio.Event()

    def __len__(self):
        return self._len

    def put(self, item) -> None:
        size = len(self._items)
        if self._len == size:
            self._head = (self._head + 1) % size
            self._len -= 1
            self.dropped += 1
        self._items[(self._head + self._len) % size] = item
        self._len += 1
        self._ev.set()

    async def get(self, timeout_ms: int):
        """The oldest item; ``ATTimeoutError`` if none comes within ``timeout_ms``."""
        while not self._len:
            self._ev.clear()
            try:
                await _wait_ms(self._ev.wait(), timeout_ms)
            except asyncio.TimeoutError:
                raise ATTimeoutError(b"") from None
        item = self._items[self._head]
        self._items[self._head] = None
        self._head = (self._head + 1) % len(self._items)
        self._len -= 1
        return item

    def clear(self) -> None:
        while self._len:
            self._items[self._head] = None
            self._head = (self._head + 1) % len(self._items)
            self._len -= 1


class LinkEvents:
    """Publishes link events from the URC table; ``size`` bounds the ring read by ``get``."""

    def __init__(self, channel, size: int = 8):
        self._subs = []
        self.ring = Ring(size)
        add = channel.add_urc
        add(b"CLOSED", self._closed)
        # +PDP DEACT, +PDP: DEACT, +PDP:DEACT and +CGEV: NW PDN DEACT 1 (§5.3, §12.6).
        add(b"+PDP", self._deact)
        add(b"+CGEV:", self._deact)
        add(b"PDP DEACT", self._deact)
        add(b"+SAPBR ", self._bearer)  # "+SAPBR 1: DEACT"; the query answer is "+SAPBR:"
        add(b"RDY", self._rdy)
        add(b"+CPIN:", self._cpin)
        for prefix in _QUIET + _QUIET2:
            add(prefix, _ignore)

    def subscribe(self, callback) -> None:
        """``callback(name: str, line: bytes)``, called from the reader task: must not block."""
        if callback not in self._subs:
            self._subs.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._subs:
            self._subs.remove(callback)

    def publish(self, name: str, line: bytes = b"") -> None:
        self.ring.put((name, line))
        for callback in self._subs:
            callback(name, line)

    async def get(self, timeout_ms: int) -> tuple:
        """The oldest unread event as ``(name, line)``; ``ATTimeoutError`` if none comes."""
        return await self.ring.get(timeout_ms)

    def unsolicited(self, line: "bytes | memoryview") -> None:
        """Feed a line no URC took: any other PDP-deactivation spelling still counts."""
        if b"DEACT" in bytes(line):
            self.publish(PDP_DEACT, bytes(line))

    # URC handlers: the line is a memoryview valid during the call.

    def _closed(self, line):
        self.publish(CLOSED, b"CLOSED")

    def _deact(self, line):
        line = bytes(line)
        if b"DEACT" in line:  # "+CGEV: ME PDN ACT 1" is not a loss
            self.publish(PDP_DEACT, line)

    def _bearer(self, line):
        line = bytes(line)
        if b"DEACT" in line:
            self.publish(BEARER_DEACT, line)

    def _rdy(self, line):
        self.publish(REBOOT, b"RDY")

    def _cpin(self, line):
        line = bytes(line)
        if b"NOT INSERTED" in line or b"REMOVED" in line:
            self.publish(SIM_REMOVED, line)
        elif b"READY" in line:
            self.publish(SIM_READY, line)


if hasattr(asyncio, "wait_for_ms"):
    _wait_ms = asyncio.wait_for_ms
else:  # CPython

    def _wait_ms(aw, timeout: int):
        return asyncio.wait_for(aw, timeout / 1000)
