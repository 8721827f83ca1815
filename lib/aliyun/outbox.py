"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring (``atmodem.Ring``) of ``size`` slots allocated once. When full, ``put`` drops the
oldest message not yet sent and counts it in ``dropped``: a device offline for days keeps its
newest data and says how much it lost. A message leaves only when ``pop`` confirms it was
published (PUBACK received; ``peek`` reads it before, ``held`` marks it handed to the module),
so a link lost mid-publish sends it again after recovery (at-least-once, as QoS1 promises).
The message in flight is never the one dropped: it may well be delivered, and its ``pop`` must
remove it, not the next one.

``pump`` is the online task that empties it, then the session's readings on flash (if any).
"""

import asyncio

from atmodem import Ring


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
