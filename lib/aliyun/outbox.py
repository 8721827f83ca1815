"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring (``atmodem.Ring``) of ``size`` slots allocated once. When full, ``put`` drops the
oldest message not yet sent and counts it in ``dropped``: a device offline for days keeps its
newest data and says how much it lost. A message leaves only when ``pop`` confirms it was
published (PUBACK received; ``peek`` reads it before, ``held`` marks it handed to the module),
so a link lost mid-publish sends it again after recovery (at-least-once, as QoS1 promises).
The message in flight is never the one dropped: it may well be delivered, and its ``pop`` must
remove it, not the next one.

``pump`` is the online task that empties it, then the session's readings on flash (if any).
Every publish keeps within the platform's uplink rate: the pump waits after each QoS1 publish,
QoS0 publishes take their turn in ``pace``.
"""

import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from atmodem import Ring

# The platform's uplink limits per device (reference aliyun-iot.md §4.9): 30 QoS0 and 10 QoS1
# messages a second; over them the broker drops messages without a word (QoS1 still gets its
# PUBACK). A publish starts at least this long after the previous one of its QoS (10 % margin).
_QOS0_SPACING_MS = const(37)
_QOS1_SPACING_MS = const(110)


def long_ago():
    """Ticks to start ``session.qos0_at`` with: no QoS0 publish waits for it."""
    return ticks_add(ticks_ms(), -1000)


async def pace(session) -> None:
    """Wait for a QoS0 publish's turn; the turn is taken before the wait, so concurrent
    publishers go one spacing apart."""
    now = ticks_ms()
    wait = max(0, _QOS0_SPACING_MS - ticks_diff(now, session.qos0_at))
    session.qos0_at = ticks_add(now, wait)
    if wait:
        await asyncio.sleep_ms(wait)


class Outbox(Ring):
    def put(self, item, payload=None) -> bool:
        """Queue ``(topic, payload)`` (``item`` is the topic); False if the oldest message not
        yet sent had to be dropped to make room."""
        return super().put((item, payload))


async def pump(session) -> None:
    """Publish ``session.outbox`` in order, one QoS1 message at a time (§7.1: PUBACK first),
    then its ``readings`` (``aliyun.readings``); a fault goes to ``session._link_failed``."""
    mqtt, outbox, readings = session.modem.mqtt, session.outbox, session.readings
    wake = session._wake_outbox
    while True:
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
        started = ticks_ms()
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
        # The next QoS1 message within the platform's rate; meanwhile (and at least for one
        # turn) a waiting QoS0 publish (a set_reply, the NTP request) takes the channel.
        await asyncio.sleep_ms(max(0, _QOS1_SPACING_MS - ticks_diff(ticks_ms(), started)))
