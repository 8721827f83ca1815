"""Downlink dispatch: cloud replies, thing-model requests and the application's subscriptions.

``Thing.dispatch(topic, payload)`` routes one incoming message and returns the reply to publish,
``(topic, payload)``, or None:

- ``…/thing/event/…/post_reply`` and other replies resolve the waiter of their request id
  (its ``code`` and ``data``);
- ``…/thing/service/property/set`` is checked against the thing model (``aliyun.tsl``, or the
  application's schema), applied by its callback and answered on ``set_reply`` (200; 460 naming
  the field and the rule; an ``AlinkError`` raised by the callback gives its own code);
- ``…/thing/service/<id>`` (async services) calls the service's callback, its input checked
  against the model, and answers ``<id>_reply``;
- ``/sys/…/rrpc/request/<messageId>`` (sync services, §4.7) does the same and answers
  ``/sys/…/rrpc/response/<messageId>`` within ``services.SYNC_DEADLINE_MS``;
- ``/ext/ntp/…/response`` sets the clock offset;
- everything else goes to the callbacks whose MQTT filter matches (reference §4).

A reply payload may be a ``services.Call`` (the callback is a coroutine): ``await call.reply()``.

A malformed request is answered 460 (its id cited when it can be read), never dropped silently.
"""

import asyncio

from micropython import const

from aliyun import alink, services
from aliyun.alink import CODE_OK, AlinkError

_ID_MAX = const(4294967295)  # §4.2: ids are decimal strings in 0..2^32-1


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter match with ``+`` (one level) and ``#`` (the rest)."""
    if topic_filter == topic:
        return True
    want = topic_filter.split("/")
    have = topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


class _Waiter:
    code = None  # the reply's code once ``event`` is set
    data = None  # … and its data

    def __init__(self):
        self.event = asyncio.Event()


class Thing:
    """``topics``: the device's ``alink.Topics``; ``log(level, message)``; ``now_ms()`` reads
    the local clock. ``clock`` is (epoch ms, ``now_ms()`` at that instant) once NTP answered."""

    def __init__(self, topics: "alink.Topics", log, now_ms):
        self.topics = topics
        self.subscriptions = []  # (filter, callback(topic, payload))
        self.clock = None
        self._log = log
        self._now_ms = now_ms
        self._next_id = 1
        self.services = {}  # identifier ("property/set" included) -> callback(params) -> data
        self.model = None  # aliyun.tsl.Model once the application gives its thing model
        self.sync_deadline_ms = services.SYNC_DEADLINE_MS  # RRPC answers are due by then
        self._waiters = {}

    def log(self, level: str, message: str) -> None:
        self._log(level, message)

    def ids(self) -> str:
        """The next uplink message id: a decimal string, unique per device per day (§4.2)."""
        value = self._next_id
        self._next_id = value + 1 if value < _ID_MAX else 1
        return str(value)

    # -- registration (application side) --

    def use_model(self, model) -> None:
        """Check sets, service calls and posts against ``model`` (an ``aliyun.tsl.Model``)."""
        self.model = model

    def on_property_set(self, schema, callback) -> None:
        """``schema``: None to use the thing model, or a dict (``alink.check_properties``)."""

        def apply(params):
            if schema is None and self.model is not None:
                accepted = self.model.check_set(params)
            elif schema is None:
                raise AlinkError(services.CODE_FAILED, "no thing model")
            else:
                accepted = alink.check_properties(params, schema)
            callback(accepted)

        self.services["property/set"] = apply

    def on_service(self, identifier: str, callback) -> None:
        """``callback(params) -> data``, or an ``async def`` (awaited within the deadline)."""
        self.services[identifier] = callback

    # -- checks of what the application posts --

    def check_post(self, params: dict) -> dict:
        return params if self.model is None else self.model.check_post(params)

    def check_event(self, identifier: str, values: dict) -> dict:
        return values if self.model is None else self.model.check_event(identifier, values)

    def subscribe(self, topic_filter: str, callback) -> bool:
        """Add a subscription; True if the filter is new (the broker must be told)."""
        new = True
        for known, _ in self.subscriptions:
            if known == topic_filter:
                new = False
        self.subscriptions.append((topic_filter, callback))
        return new

    def filters(self) -> list:
        """Every filter to subscribe after a (re)connect, each once."""
        result = list(self.topics.downlinks())
        for topic_filter, _ in self.subscriptions:
            if topic_filter not in result:
                result.append(topic_filter)
        return result

    # -- replies to our requests --

    def expect_reply(self, msg_id: str) -> "_Waiter":
        waiter = self._waiters[msg_id] = _Waiter()
        return waiter

    def forget(self, msg_id: str) -> None:
        self._waiters.pop(msg_id, None)

    # -- dispatch --

    def dispatch(self, topic: str, payload):
        """Route one downlink; return ``(reply topic, reply payload)`` or None."""
        log = self._log
        prefix = self.topics.thing_prefix
        if topic.startswith(prefix):
            if topic.endswith("_reply"):
                try:
                    msg_id, code, _data, message = alink.decode_reply(payload)
                except AlinkError as exc:
                    log("warning", "bad reply: " + exc.message)
                    return None
                waiter = self._waiters.pop(msg_id, None)
                if waiter is not None:
                    waiter.code = code
                    waiter.data = _data
                    waiter.event.set()
                if code != CODE_OK:
                    log("warning", "reply %s: code %d %s" % (msg_id, code, message))
                return None
            name = topic[len(prefix) :]
            if name.startswith("service/"):
                name = name[8:]
                if name == "property/set" or name and "/" not in name:
                    deadline = services.ASYNC_DEADLINE_MS
                    return topic + "_reply", services.serve(self, name, payload, deadline)
        elif topic.startswith(self.topics.rrpc_request):
            return self._rrpc(topic, payload)
        elif topic == self.topics.ntp_response:
            received = self._now_ms()
            try:
                self.clock = (alink.ntp_time_ms(payload, received), received)
            except AlinkError as exc:
                log("warning", "NTP: " + exc.message)
                return None
            log("info", "clock set by NTP")
            return None
        delivered = False
        for topic_filter, callback in self.subscriptions:
            if topic_matches(topic_filter, topic):
                delivered = True
                try:
                    callback(topic, payload)
                except Exception as exc:  # one faulty callback must not stop the others
                    log("error", "callback for %s failed: %r" % (topic_filter, exc))
        if not delivered:
            log("warning", "unexpected topic " + topic)
        return None

    def _rrpc(self, topic: str, payload):
        """A sync service call (§4.7): answered on ``rrpc/response/<messageId>``."""
        message_id = topic[len(self.topics.rrpc_request) :]
        if not message_id or "/" in message_id:
            self._log("warning", "bad RRPC topic " + topic)
            return None
        reply_topic = self.topics.rrpc_response + message_id
        try:
            _id, method, _params = alink.decode_request(payload)
            name = services.service_name(method)
        except AlinkError as exc:
            return reply_topic, alink.encode_reply(
                alink.request_id(payload), exc.code, message=exc.message
            )
        return reply_topic, services.serve(self, name, payload, self.sync_deadline_ms)
