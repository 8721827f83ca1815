"""The platform's limits (reference §1.5, §4.1, §4.9) and how the local cloud reacts to them.

=====================================  ==========  ============================================
limit                                  value       reaction (source; choices marked)
=====================================  ==========  ============================================
CONNECTs per device per minute         5           CONNACK 3 and close (§1.5 [S6]; the code
                                                   is a choice: MQTT 3.1.1 has no "rate
                                                   exceeded", 3 = "server unavailable")
topic filters per SUBSCRIBE            8           SUBACK 0x80 for the 9th and later (§4.1)
subscriptions per device               100         SUBACK 0x80 for a new filter (§4.1)
first packet not CONNECT, or none      10 s        close without answer (MQTT-3.1.0-1; the
within the CONNECT timeout                         timeout is a choice: "立即" after CONNECT OK)
protocol level other than 3.1.1        -           CONNACK 1 and close (§1.6, MQTT-3.1.2-2)
uplink messages per device             QoS0 30/s   dropped, logged ``throttled``; QoS 1 still
                                       QoS1 10/s   acknowledged (§4.9 [S6]; "> 30 QPS
                                                   dropped" [S7]; no feedback over MQTT)
message payload                        256 KB      dropped unread (no PUBACK), logged
                                                   ``denied`` (§4.9: "larger rejected")
iot-auth failures of one device        5 / 60 s    code 429 "too many requests" until the
                                                   window passes (§4.4 code; numbers: choice)
=====================================  ==========  ============================================

Counting windows slide: a limit of N per T seconds admits an event when fewer than N admitted
events of the same key lie within the last T seconds. Refused events are not counted, so a
device that keeps retrying gets through as soon as its oldest admitted event ages out.
"""

import asyncio
import collections
import time
from dataclasses import dataclass

CONNECT = 0x10  # first byte of a CONNECT packet (MQTT 3.1.1 §2.2)
CONNECT_MAX_BYTES = 64 * 1024  # a CONNECT above this is not a device's (ids ≤ 64, short secrets)
PROTOCOLS = {"MQTT": (4,), "MQIsdp": ()}  # protocol name → levels served (3.1.1 only, §1.6)


@dataclass(frozen=True)
class Limits:
    """One server's limits; the defaults are the platform's (see the module table)."""

    connects_per_minute: int = 5
    filters_per_subscribe: int = 8
    subscriptions_per_device: int = 100
    connect_timeout_s: float = 10.0
    qos0_per_second: int = 30
    qos1_per_second: int = 10
    message_bytes: int = 256 * 1024
    auth_failures: int = 5
    auth_window_s: float = 60.0


class SlidingWindow:
    """At most ``limit`` admitted events per ``window`` seconds for each key."""

    def __init__(self, limit: int, window: float, clock=time.monotonic, max_keys=10000):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._events = {}

    def _recent(self, key, now):
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def blocked(self, key) -> bool:
        """True while ``key`` has used up its budget (nothing is counted)."""
        events = self._recent(key, self.clock())
        return events is not None and len(events) >= self.limit

    def allow(self, key) -> bool:
        """Count an event of ``key`` if its budget allows; True when admitted."""
        if self.blocked(key):
            return False
        self.add(key)
        return True

    def add(self, key):
        """Count an event of ``key`` without checking the budget."""
        now = self.clock()
        events = self._recent(key, now)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._prune(now)
            events = self._events[key] = collections.deque()
        events.append(now)

    def _prune(self, now):
        for key in list(self._events):
            self._recent(key, now)
        while len(self._events) >= self.max_keys:  # still full: forget the oldest key
            del self._events[next(iter(self._events))]


class FirstPacketError(Exception):
    """The connection did not start with a usable CONNECT; ``connack`` is the return code to
    answer with before closing, or None to close without an answer."""

    def __init__(self, reason, connack=None):
        super().__init__(reason)
        self.reason = reason
        self.connack = connack


async def read_connect(reader, timeout: float) -> bytes:
    """The raw first packet of a connection, checked to be an MQTT 3.1.1 CONNECT.

    Raises FirstPacketError (not CONNECT, CONNECT timeout, unsupported protocol) or
    EOFError (closed before a byte arrived)."""
    try:
        return await asyncio.wait_for(_read_packet(reader), timeout)
    except asyncio.TimeoutError:
        raise FirstPacketError("no CONNECT within %g s" % timeout) from None


async def _read_packet(reader) -> bytes:
    try:
        head = await reader.read(1)
    except asyncio.IncompleteReadError:
        raise EOFError from None
    if head[0] != CONNECT:
        raise FirstPacketError("first packet 0x%02x is not CONNECT" % head[0])
    length, shift = 0, 0
    for _ in range(4):
        byte = (await _read(reader, 1))[0]
        head += bytes((byte,))
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise FirstPacketError("CONNECT: malformed remaining length")
    if length > CONNECT_MAX_BYTES:
        raise FirstPacketError("CONNECT of %d bytes" % length)
    body = await _read(reader, length) if length else b""
    _check_protocol(body)
    return head + body


async def _read(reader, n) -> bytes:
    try:
        return await reader.read(n)
    except asyncio.IncompleteReadError:
        raise FirstPacketError("connection closed inside the CONNECT") from None


def _check_protocol(body: bytes):
    """Protocol name and level of a CONNECT variable header (MQTT 3.1.1 §3.1.2.1-2)."""
    size = int.from_bytes(body[:2], "big") if len(body) >= 2 else -1
    if size < 0 or len(body) < 3 + size:
        raise FirstPacketError("CONNECT without protocol name and level")
    name = body[2 : 2 + size].decode("utf-8", "replace")
    level = body[2 + size]
    if name not in PROTOCOLS:
        raise FirstPacketError("CONNECT protocol name %r" % name)
    if level not in PROTOCOLS[name]:
        raise FirstPacketError("protocol %s level %d: only MQTT 3.1.1" % (name, level), 1)


class GuardedReader:
    """The connection's reader for amqtt: replays the pre-read CONNECT, then discards a
    PUBLISH payload above ``max_payload`` as it streams in (never buffered) and reports its
    size to ``on_oversized``; amqtt then drops that packet (a short read) and goes on."""

    def __init__(self, inner, prefix: bytes, max_payload: int, on_oversized):
        self._inner = inner
        self._prefix = memoryview(prefix)
        self.max_payload = max_payload
        self.on_oversized = on_oversized

    async def read(self, n=-1) -> bytes:
        if self._prefix:
            size = len(self._prefix) if n < 0 else min(n, len(self._prefix))
            data, self._prefix = bytes(self._prefix[:size]), self._prefix[size:]
            if n < 0 or size == n:
                return data
            return data + await self._inner.read(n - size)
        if n > self.max_payload:  # only a PUBLISH payload is read in one piece this large
            left = n
            while left:
                chunk = min(left, 64 * 1024)
                await self._inner.read(chunk)
                left -= chunk
            self.on_oversized(n)
            return b""
        return await self._inner.read(n)

    def feed_eof(self):
        self._inner.feed_eof()
