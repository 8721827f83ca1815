"""The session while online: the application's API and the tasks that serve the link.

``Online`` is the half of ``aliyun.session.Session`` that the application talks to (publish,
thing-model requests, subscriptions, handlers, counters) and that runs while the MQTT link is
up: the outbox pump (QoS1 in order, each after its PUBACK) and the downlink dispatch, which the
session (``aliyun.session``) runs and supervises; a fault is only noted (``_link_failed``). The
thing model (``use_model``, a ``tools.tsl_table`` table) checks every set, service call and post
(``AlinkError`` 460 naming the field and the rule). After each connect the desired values are
fetched, applied as a property set and deleted (``aliyun.services``). A refused subscription is
a ``SubscribeError``, logged, kept in ``refused``; a raising callback is logged and answered 500.
With ``store.enabled`` property posts go to flash (``aliyun.readings``: dated, kept across
resets, sent after the outbox's messages; a day old, as batched history posts).
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from air724.text import check_publish, topic_arg
from aliyun import alink
from aliyun.outbox import Outbox, long_ago, pace, pump
from aliyun.thing import Thing
from atmodem import wait_ms
from atmodem.errors import ArgumentError, ATTimeoutError, CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from air724 import Air724
    from aliyun.alink import Topics
    from aliyun.readings import Readings

_IDLE_MS = const(60000)  # the dispatch's wait for a message, per round
_CODE_APP_ERROR = const(500)  # a failed request, as aliyun.services answers it


class SubscribeError(Exception):
    """The broker refused a subscription (SUBACK 0x80); ``topic`` is its filter."""

    def __init__(self, topic: str):
        super().__init__(topic)
        self.topic = topic


class Online:
    """``board`` (fed while healthy), ``config`` (config.json), ``log(level, message)``."""

    def __init__(self, board, config: dict, log=None, store_dir: str = "store"):
        self.board = board
        self.config = config
        self.store_dir = store_dir  # readings on flash, when the config has them (has_store)
        self.has_store = bool(config.get("store", {}).get("enabled"))
        self.readings: "Readings | None" = None  # opened by name_known
        self._clock_at_online = None  # the clock when the link came up: NTP refreshes it
        self.log = log or _no_log
        self.online = False
        self.device_name = config["device_name"]
        # Set by name_known() (config.json or the IMEI) before any message goes out.
        self.topics: "Topics" = None  # pyright: ignore[reportAttributeAccessIssue]
        self.outbox = Outbox()
        self.qos0_at = long_ago()  # the last QoS0 publish's turn (aliyun.outbox.pace)
        self.refused = []  # filters the broker refused (SUBACK 0x80)
        # Its topics are set by name_known(), before any message can arrive or leave.
        self.thing = Thing(None, self.log, ticks_ms)  # pyright: ignore[reportArgumentType]
        # Counters behind ``stats``.
        self.published = 0
        self.received = 0
        self.reconnects = 0
        self.state_changes = 0
        self.qos0_dropped = 0
        self.app_errors = 0  # application callbacks that raised, replies that could not go
        self.downlinks_dropped = {}  # reason -> count (see aliyun.session)
        self._heard = 0  # when the last downlink came
        self._probed = None  # when the session's probe went out, if one is unanswered
        self._online_since = None
        self._time_to_online = None
        self.modem: "Air724" = None  # pyright: ignore[reportAttributeAccessIssue] - Session
        self._lost = asyncio.Event()
        self._lost_reason = None
        self._wake_outbox = asyncio.Event()
        if self.device_name:
            self.name_known(self.device_name)

    # -- application API --

    def subscribe(self, topic_filter: str, callback) -> None:
        """Deliver messages matching ``topic_filter`` to ``callback(topic, payload)``; the
        subscription is renewed after every reconnect. A filter the module cannot carry raises
        ``atmodem.ArgumentError`` at once, and nothing is stored."""
        topic_arg(topic_filter)
        if self.thing.subscribe(topic_filter, callback) and self.online:
            asyncio.create_task(self._subscribe_now(topic_filter))

    def use_model(self, table) -> None:
        """Check sets, calls and posts against the thing model (see ``Thing.use_model``)."""
        self.thing.use_model(table)

    def on_property_set(self, schema, callback) -> None:
        """Property sets are checked against the thing model (``schema`` None) or ``schema``
        (see ``alink.check_properties``) and answered by the session; ``callback(accepted)``
        applies them (desired values too)."""
        self.thing.on_property_set(schema, callback)

    def on_service(self, identifier: str, callback) -> None:
        """``callback(params: dict) -> dict`` (or ``async def``): the data of the reply; a
        sync service (RRPC) must answer within ``services.SYNC_DEADLINE_MS``."""
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
            await pace(self)
            await self.modem.mqtt.publish(topic, payload, 0)
        except Exception as exc:  # the link failed under us: recovery takes over
            self._link_failed(exc)
            return False
        self.published += 1
        return True

    async def post_properties(self, params: dict, timeout_ms: int = 10000, store: bool = True):
        """Post thing-model properties (QoS1); the ``post_reply`` code, or None on timeout.
        ``AlinkError`` when they break the thing model (nothing is sent). ``store``: to flash
        first (module doc), the reply awaited only while online with no older reading waiting;
        ValueError for a reading too large for one message, OSError if the filesystem refuses."""
        params = self.thing.check_post(params)
        if store and self.readings is not None:
            return await self.readings.post(self, params, timeout_ms)
        return await self._request(
            self.topics.property_post, "thing.event.property.post", params, timeout_ms
        )

    async def post_event(self, identifier: str, values: dict, timeout_ms: int = 10000, at=None):
        """Post event ``identifier``: its output ``values``, its time ``at`` (epoch ms; else the
        NTP clock); the reply code, None on timeout; ``AlinkError`` if the model refuses them."""
        params: dict = {"value": self.thing.check_event(identifier, values)}
        at = self.time_ms() if at is None else at
        if at is not None:
            params["time"] = at
        method = "thing.event." + identifier + ".post"
        return await self._request(self.topics.event_post(identifier), method, params, timeout_ms)

    async def post_batch(self, properties: dict, events: dict, timeout_ms: int = 10000):
        """Batch post: ``{id: [{"value", "time"}, …]}`` of properties and of events."""
        for name in properties:
            for item in properties[name]:
                self.thing.check_post({name: item})
        for name in events:
            for item in events[name]:
                self.thing.check_event(name, item.get("value"))
        params = {"properties": properties, "events": events}
        method = "thing.event.property.batch.post"
        return await self._request(self.topics.batch_post, method, params, timeout_ms)

    def time_ms(self):
        """Epoch milliseconds once NTP over /ext/ntp answered (after each connect), else None."""
        clock = self.thing.clock
        return None if clock is None else clock[0] + ticks_diff(ticks_ms(), clock[1])

    # -- online tasks --

    async def _subscribe_now(self, topic_filter: str) -> None:
        try:
            await self.subscribe_one(topic_filter)
        except SubscribeError:
            pass  # logged and kept in ``refused``; the link is fine
        except Exception as exc:
            self._link_failed(exc)

    async def subscribe_one(self, topic_filter: str) -> None:
        """``AT+MSUB``; ``SubscribeError`` on a refusal (``ERROR`` after its OK)."""
        try:
            await self.modem.mqtt.subscribe(topic_filter, 1)
        except CommandError:
            if topic_filter not in self.refused:
                self.refused.append(topic_filter)
            self.log("error", "subscribe refused (SUBACK 0x80): " + topic_filter)
            raise SubscribeError(topic_filter) from None

    async def _pump(self) -> None:
        """Publish the outbox, then the readings on flash (``aliyun.outbox.pump``)."""
        await pump(self)

    async def _dispatch(self) -> None:
        mqtt = self.modem.mqtt
        while True:
            try:
                topic, payload = await mqtt.message(_IDLE_MS)
            except ATTimeoutError:  # no message within the period: wait again
                continue
            if topic is None:  # "+MSUB: <slot>": cache mode is on, fetch what it holds
                await mqtt.set_push()
                await mqtt.fetch()
                continue
            self.received += 1
            self._heard = ticks_ms()
            self._probed = None
            reply = self._reply_for(topic, payload)
            if reply is None:
                continue
            if hasattr(reply[1], "send"):  # a coroutine service: answered when it is done
                asyncio.create_task(self._answer(reply[0], reply[1]))
            else:
                await self._send_reply(reply[0], reply[1])

    async def _send_reply(self, topic: str, payload) -> None:
        try:
            await self.publish(topic, payload, 0)
        except ArgumentError as exc:  # e.g. a reply topic over the module's limit
            self._app_error("reply on " + topic, exc)

    def _reply_for(self, topic: str, payload) -> "tuple | None":
        try:
            return self.thing.dispatch(topic, payload)
        except Exception as exc:  # an application callback raised: dispatch goes on
            self._app_error(topic, exc)
            if not topic.startswith(self.topics.thing_prefix + "service/"):  # no reply
                return None
            msg_id = alink.request_id(payload)
            return topic + "_reply", alink.encode_reply(msg_id, _CODE_APP_ERROR, None, str(exc))

    def _app_error(self, where: str, exc) -> None:
        self.app_errors += 1
        self.log("error", "%s: %s" % (where, describe(exc)))

    async def _answer(self, topic: str, reply) -> None:
        try:
            payload = await reply
        except Exception as exc:  # the coroutine service raised: logged and counted
            self._app_error(topic, exc)
            return
        await self._send_reply(topic, payload)

    async def _desired(self) -> None:
        from aliyun.services import apply_desired  # released again by the thing model

        try:  # the session holds this task while online: no name here may keep that code
            await apply_desired(self.thing, self._ask, self.topics)
        except Exception as exc:  # a MemoryError, say: the values wait in the cloud
            self.log("warning", "desired values: " + describe(exc))
        finally:
            del apply_desired

    def _sync_clock(self) -> None:
        payload = alink.ntp_request(ticks_ms())
        asyncio.create_task(self.publish(self.topics.ntp_request, payload, 0))

    async def _request(self, topic: str, method: str, params, timeout_ms: int):
        return (await self._ask(topic, method, params, timeout_ms))[0]

    async def _ask(self, topic: str, method: str, params, timeout_ms: int) -> tuple:
        """A request (QoS1); ``(code, data)`` of its reply, ``(None, None)`` on timeout."""
        msg_id = self.thing.ids()
        waiter = self.thing.expect_reply(msg_id)
        try:
            await self.publish(topic, alink.encode_request(msg_id, method, params), 1)
            await wait_ms(waiter.event.wait(), timeout_ms)
            return waiter.code, waiter.data
        except ATTimeoutError:
            return None, None
        finally:
            self.thing.forget(msg_id)

    def name_known(self, device_name: str) -> None:
        """The device name is known (config.json, else the IMEI): the topics follow from it."""
        self.device_name = device_name
        product_key = self.config["product_key"]
        self.topics = self.thing.topics = alink.Topics(product_key, device_name)
        if self.has_store and self.readings is None:
            from aliyun.readings import attach

            attach(self, product_key, device_name)

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
