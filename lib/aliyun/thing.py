"""Downlink dispatch: cloud replies, thing-model requests and the application's subscriptions.

``Thing.dispatch(topic, payload)`` routes one incoming message and returns the reply to publish,
``(topic, payload)``, or None:

- ``…/thing/event/…/post_reply`` and other replies resolve the waiter of their request id;
- ``…/thing/service/property/set`` is checked against the application's schema, applied by its
  callback and answered on ``set_reply`` (200; 460 naming the field; an ``AlinkError`` raised by
  the callback gives its own code);
- ``…/thing/service/<id>`` calls the service's callback and answers ``<id>_reply``;
- ``/ext/ntp/…/response`` sets the clock offset;
- everything else goes to the callbacks whose MQTT filter matches (reference §4).

A malformed request is answered 460 (its id cited when it can be read), never dropped silently.
"""

import asyncio

from micropython import const

from aliyun import alink
from aliyun.alink import CODE_OK, CODE_PARAM_ERROR, AlinkError

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
        self._services = {}  # identifier ("property/set" included) -> callback(params) -> data
        self._waiters = {}

    def ids(self) -> str:
        """The next uplink message id: a decimal string, unique per device per day (§4.2)."""
        value = self._next_id
        self._next_id = value + 1 if value < _ID_MAX else 1
        return str(value)

    # -- registration (application side) --

    def on_property_set(self, schema: dict, callback) -> None:
        def apply(params):
            callback(alink.check_properties(params, schema))

        self._services["property/set"] = apply

    def on_service(self, identifier: str, callback) -> None:
        self._services[identifier] = callback

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
        result = [self.topics.thing_prefix + "#", self.topics.ntp_response]
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
            # A reply goes to the waiting request, unless the application subscribed to its
            # topic itself (e.g. OTA's ota/firmware/get_reply, which carries the job).
            if topic.endswith("_reply") and not self._subscribed(topic):
                try:
                    msg_id, code, _data, message = alink.decode_reply(payload)
                except AlinkError as exc:
                    log("warning", "bad reply: " + exc.message)
                    return None
                waiter = self._waiters.pop(msg_id, None)
                if waiter is not None:
                    waiter.code = code
                    waiter.event.set()
                if code != CODE_OK:
                    log("warning", "reply %s: code %d %s" % (msg_id, code, message))
                return None
            name = topic[len(prefix) :]
            if name.startswith("service/"):
                name = name[8:]
                if name == "property/set" or name and "/" not in name:
                    return topic + "_reply", self._serve(name, payload)
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

    def _subscribed(self, topic: str) -> bool:
        for topic_filter, _ in self.subscriptions:
            if topic_filter == topic:
                return True
        return False

    def _serve(self, name: str, payload) -> bytes:
        """Run service ``name`` for a request; encode its reply or its error."""
        try:
            msg_id, _method, params = alink.decode_request(payload)
        except AlinkError as exc:
            return alink.encode_reply(alink.request_id(payload), exc.code, message=exc.message)
        try:
            callback = self._services.get(name)
            if callback is None:
                raise AlinkError(CODE_PARAM_ERROR, "unknown service " + name)
            return alink.encode_reply(msg_id, CODE_OK, callback(params) or {})
        except AlinkError as exc:
            self._log("warning", "request %s refused: %s" % (msg_id, exc.message))
            return alink.encode_reply(msg_id, exc.code, message=exc.message)
