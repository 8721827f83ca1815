"""The session while online: the application's API and the tasks that serve the link.

``Online`` is the half of ``aliyun.session.Session`` that the application talks to (publish,
thing-model requests, subscriptions, handlers, counters) and that runs while the MQTT link is
up: the outbox pump (QoS1 in order, each after its PUBACK), the downlink dispatch, one health
check per minute. A fault is only noted (``_link_failed``); the supervisor acts on it.
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from air724.text import check_publish
from aliyun import alink
from aliyun.outbox import Outbox
from aliyun.thing import Thing
from atmodem import wait_ms
from atmodem.errors import ATTimeoutError

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from air724 import Air724
    from aliyun.alink import Topics

_HEALTH_MS = const(60000)  # online: one AT+MQTTSTATU per minute (no busy polling)


class LinkLostError(Exception):
    """The link went down (event name in ``args[0]``)."""


class Online:
    """``board`` (fed while healthy), ``config`` (config.json), ``log(level, message)``."""

    def __init__(self, board, config: dict, log=None):
        self.board = board
        self.config = config
        self.log = log or _no_log
        self.online = False
        self.device_name = config["device_name"]
        # Set by name_known() (config.json or the IMEI) before any message goes out.
        self.topics: "Topics" = None  # pyright: ignore[reportAttributeAccessIssue]
        self.outbox = Outbox()
        # Its topics are set by name_known(), before any message can arrive or leave.
        self.thing = Thing(None, self.log, ticks_ms)  # pyright: ignore[reportArgumentType]
        # Counters behind ``stats``.
        self.published = 0
        self.received = 0
        self.reconnects = 0
        self.state_changes = 0
        self.qos0_dropped = 0
        self._online_since = None
        self._time_to_online = None
        self.modem: "Air724" = None  # pyright: ignore[reportAttributeAccessIssue] - Session
        self._lost = asyncio.Event()
        self._lost_reason = None
        self._wake_outbox = asyncio.Event()
        if self.device_name:
            self.name_known(self.device_name)

    # -- application API --

    @property
    def stats(self) -> dict:
        """Counters for logs and summaries (``dropped``: outbox overflow, QoS0 while offline,
        downlinks lost to a full queue)."""
        inbox_dropped = self.modem.inbox.dropped if self.modem is not None else 0
        return {
            "online_since_ms": self._online_since,
            "time_to_online_ms": self._time_to_online,
            "reconnects": self.reconnects,
            "published": self.published,
            "received": self.received,
            "dropped": self.outbox.dropped + self.qos0_dropped + inbox_dropped,
            "state_changes": self.state_changes,
        }

    def subscribe(self, topic_filter: str, callback) -> None:
        """Deliver messages matching ``topic_filter`` to ``callback(topic, payload)``; the
        subscription is renewed after every reconnect."""
        if self.thing.subscribe(topic_filter, callback) and self.online:
            asyncio.create_task(self._subscribe_now(topic_filter))

    def on_property_set(self, schema: dict, callback) -> None:
        """Property sets are checked against ``schema`` (see ``alink.check_properties``) and
        answered by the session; ``callback(accepted: dict)`` applies them."""
        self.thing.on_property_set(schema, callback)

    def on_service(self, identifier: str, callback) -> None:
        """``callback(params: dict) -> dict``: the data of the service reply."""
        self.thing.on_service(identifier, callback)

    async def publish(self, topic: str, payload, qos: int = 0) -> bool:
        """QoS1: accepted into the outbox (even offline) and sent in order, each after the
        previous PUBACK; True unless the outbox had to drop its oldest message. QoS0: sent now
        if online, else dropped (False, counted). A topic or payload the module cannot carry
        raises ``atmodem.ArgumentError`` at once."""
        check_publish(topic, payload)  # a bad topic or payload fails here, not in the outbox
        if qos == 1:
            kept = self.outbox.put(topic, payload)
            if not kept:
                self.log("warning", "outbox full: oldest message dropped")
            self._wake_outbox.set()
            return kept
        if not self.online:
            self.qos0_dropped += 1
            return False
        try:
            await self.modem.mqtt.publish(topic, payload, 0)
        except Exception as exc:  # the link failed under us: recovery takes over
            self._link_failed(exc)
            return False
        self.published += 1
        return True

    async def post_properties(self, params: dict, timeout_ms: int = 10000):
        """Post thing-model properties (QoS1); the ``post_reply`` code, or None on timeout."""
        return await self._request(
            self.topics.property_post, "thing.event.property.post", params, timeout_ms
        )

    async def post_event(self, identifier: str, params: dict, timeout_ms: int = 10000):
        """Post a thing-model event (QoS1); the reply code, or None on timeout."""
        method = "thing.event." + identifier + ".post"
        return await self._request(self.topics.event_post(identifier), method, params, timeout_ms)

    def time_ms(self):
        """Epoch milliseconds once NTP over /ext/ntp answered (after each connect), else None."""
        clock = self.thing.clock
        return None if clock is None else clock[0] + ticks_diff(ticks_ms(), clock[1])

    # -- online tasks --

    async def _serve(self) -> None:
        """Online: publish the outbox, dispatch downlinks, check health; until the link fails."""
        pump = asyncio.create_task(self._pump())
        inbox = asyncio.create_task(self._dispatch())
        self._sync_clock()
        try:
            while True:
                try:
                    await wait_ms(self._lost.wait(), _HEALTH_MS)
                except ATTimeoutError:
                    self.board.feed()
                    await self._health()
                    continue
                raise LinkLostError(self._lost_reason)
        finally:
            pump.cancel()
            inbox.cancel()

    async def _subscribe_now(self, topic_filter: str) -> None:
        try:
            await self.modem.mqtt.subscribe(topic_filter, 1)
        except Exception as exc:
            self._link_failed(exc)

    async def _pump(self) -> None:
        """Publish the outbox in order, one QoS1 message at a time (§7.1: PUBACK first)."""
        mqtt = self.modem.mqtt
        while True:
            message = self.outbox.peek()
            if message is None:
                self._wake_outbox.clear()
                await self._wake_outbox.wait()
                continue
            try:
                await mqtt.publish(message[0], message[1], 1)
            except Exception as exc:
                self._link_failed(exc)
                return  # stays in the outbox: sent again after recovery
            self.outbox.pop()
            self.published += 1
            # Let a waiting QoS0 publish (a set_reply, the NTP request) take the channel before
            # the next QoS1 message: the channel's lock is not first-come-first-served.
            await asyncio.sleep(0)

    async def _dispatch(self) -> None:
        mqtt = self.modem.mqtt
        while True:
            try:
                topic, payload = await mqtt.message(_HEALTH_MS)
            except ATTimeoutError:  # no message within the period: wait again
                continue
            self.received += 1
            reply = self.thing.dispatch(topic, payload)
            if reply is not None:
                await self.publish(reply[0], reply[1], 0)

    async def _health(self) -> None:
        if await self.modem.mqtt.status() != 1:
            self._link_failed("mqtt status")

    def _sync_clock(self) -> None:
        payload = alink.ntp_request(ticks_ms())
        asyncio.create_task(self.publish(self.topics.ntp_request, payload, 0))

    # -- helpers --

    async def _request(self, topic: str, method: str, params: dict, timeout_ms: int):
        msg_id = self.thing.ids()
        waiter = self.thing.expect_reply(msg_id)
        try:
            await self.publish(topic, alink.encode_request(msg_id, method, params), 1)
            await wait_ms(waiter.event.wait(), timeout_ms)
            return waiter.code
        except ATTimeoutError:
            return None
        finally:
            self.thing.forget(msg_id)

    def name_known(self, device_name: str) -> None:
        """The device name is known (config.json, else the IMEI): the topics follow from it."""
        self.device_name = device_name
        product_key = self.config["product_key"]
        self.topics = self.thing.topics = alink.Topics(product_key, device_name)

    def _link_failed(self, why) -> None:
        if not self._lost.is_set():
            self._lost_reason = why if type(why) is str else describe(why)
            self._lost.set()


def _no_log(level, message):
    pass


def describe(exc) -> str:
    """``Name: message`` of an exception, for the log."""
    text = str(exc)
    return type(exc).__name__ + (": " + text if text else "")
