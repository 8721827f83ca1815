"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring (``atmodem.Ring``) of ``size`` slots allocated once. When full, ``put`` drops the
oldest message not yet sent and counts it in ``dropped``: a device offline for days keeps its
newest data and says how much it lost. A message leaves only when ``pop`` confirms it was
published (PUBACK received; ``peek`` reads it before, ``held`` marks it handed to the module),
so a link lost mid-publish sends it again after recovery (at-least-once, as QoS1 promises).
The message in flight is never the one dropped: it may well be delivered, and its ``pop`` must
remove it, not the next one.

``pump`` is the online task that empties it, then the session's readings on flash (if any),
at most ``_PACE_N`` messages a second: the platform takes 10 QoS1 messages a second from a
device and drops the rest unseen while still answering PUBACK (reference §4.9), so a backlog
sent at the module's speed after an outage would be acknowledged and lost. 8 leaves room for
the jitter between the device's clock and the platform's counting. Every QoS1 uplink goes
through here (replies of requests, OTA reports), so this is the whole device's rate; the pace
is the outbox's, kept across reconnects (the platform counts per device, not per connection).
QoS0 publishes (30 a second on the platform) take turns in ``pace``.
"""

import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from atmodem import Ring

_PACE_N = const(8)  # QoS1 messages per _PACE_MS at most (the platform's limit is 10/s)
_PACE_MS = const(1000)
_QOS0_SPACING_MS = const(37)  # between two QoS0 publishes: 27 a second (the limit is 30/s)


class Outbox(Ring):
    def __init__(self, size: int = 32):
        super().__init__(size)
        self._sent = [long_ago()] * _PACE_N  # the last sends, a ring
        self._turn = 0

    def put(self, item, payload=None) -> bool:
        """Queue ``(topic, payload)`` (``item`` is the topic); False if the oldest message not
        yet sent had to be dropped to make room."""
        return super().put((item, payload))

    def pace_ms(self) -> int:
        """How long the next message must wait: 0 unless ``_PACE_N`` went in the last second."""
        wait = _PACE_MS - ticks_diff(ticks_ms(), self._sent[self._turn])
        return wait if 0 < wait <= _PACE_MS else 0  # an entry from days ago reads as wrapped

    def sending(self) -> None:
        """A message goes to the module now (counted against the pace)."""
        self._sent[self._turn] = ticks_ms()
        self._turn = (self._turn + 1) % _PACE_N


def long_ago():
    """Ticks a pace window ago: a send then makes no publish wait (``pace``, ``pace_ms``)."""
    return ticks_add(ticks_ms(), -_PACE_MS)


async def pace(session) -> None:
    """Wait for a QoS0 publish's turn; the turn is taken before the wait, so concurrent
    publishers go one spacing apart."""
    now = ticks_ms()
    wait = _QOS0_SPACING_MS - ticks_diff(now, session.qos0_at)
    if not 0 < wait <= _PACE_MS:  # none due, or a turn from days ago that reads as wrapped
        wait = 0
    session.qos0_at = ticks_add(now, wait)
    if wait:
        await asyncio.sleep_ms(wait)


async def pump(session) -> None:
    """Publish ``session.outbox`` in order, one QoS1 message at a time (§7.1: PUBACK first),
    then its ``readings`` (``aliyun.readings``); a fault goes to ``session._link_failed``."""
    mqtt, outbox, readings = session.modem.mqtt, session.outbox, session.readings
    wake = session._wake_outbox
    while True:
        pause = outbox.pace_ms()  # before the peek: a put may drop the oldest while we wait
        if pause:
            await asyncio.sleep_ms(pause)
        message = outbox.peek()
        if message is None and readings is not None:
            try:
                message = readings.message(session)
            except Exception as exc:  # MemoryError building a batch: recover, retry
                session._link_failed(exc)
                return
        if message is None:
            wake.clear()
            if readings is not None and readings.records:
                await readings.idle(session)  # they wait for the clock
            else:
                await wake.wait()
            continue
        stored = len(message) == 3  # (topic, payload, the store's token)
        outbox.held = not stored
        outbox.sending()
        try:
            await mqtt.publish(message[0], message[1], 1)
        except Exception as exc:
            outbox.held = False
            session._link_failed(exc)
            return  # stays in the outbox (or the store): sent again after recovery
        if stored:
            readings.ack(message[2])  # pyright: ignore[reportOptionalMemberAccess]
        else:
            outbox.pop()
        session.published += 1
        # Let a waiting QoS0 publish (a set_reply, the NTP request) take the channel before
        # the next QoS1 message: the channel's lock is not first-come-first-served.
        await asyncio.sleep(0)
