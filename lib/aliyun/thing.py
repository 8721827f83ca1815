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

from aliyun import alink
from aliyun.alink import CODE_OK, CODE_PARAM_ERROR, AlinkError


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
    def __init__(self):
        self.event = asyncio.Event()
        self.code = None


class Thing:
    def __init__(self, topics: "alink.Topics", log, now_ms):
        self.topics = topics
        self.subscriptions = []  # (filter, callback(topic, payload))
        self.ids = alink.IdCounter()
        self.clock = None  # (epoch ms, now_ms() at that instant) once NTP answered
        self._log = log
        self._now_ms = now_ms
        self._schema = None
        self._on_set = None
        self._services = {}
        self._waiters = {}

    # -- registration (application side) --

    def on_property_set(self, schema: dict, callback) -> None:
        self._schema = schema
        self._on_set = callback

    def on_service(self, identifier: str, callback) -> None:
        self._services[identifier] = callback

    def subscribe(self, topic_filter: str, callback) -> bool:
        """Add a subscription; True if the filter is new (the broker must be told)."""
        known = any(f == topic_filter for f, _ in self.subscriptions)
        self.subscriptions.append((topic_filter, callback))
        return not known

    def filters(self) -> list:
        """Every filter to subscribe after a (re)connect, each once."""
        result = [self.topics.thing_all, self.topics.ntp_response]
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

    def _reply(self, payload) -> None:
        try:
            msg_id, code, _data, message = alink.decode_reply(payload)
        except AlinkError as exc:
            self._log("warning", "bad reply: " + exc.message)
            return
        waiter = self._waiters.pop(msg_id, None)
        if waiter is not None:
            waiter.code = code
            waiter.event.set()
        if code != CODE_OK:
            self._log("warning", "reply %s: code %d %s" % (msg_id, code, message))

    # -- dispatch --

    def dispatch(self, topic: str, payload):
        """Route one downlink; return ``(reply topic, reply payload)`` or None."""
        t = self.topics
        if topic.startswith(t.thing_prefix):
            if topic.endswith("_reply"):
                self._reply(payload)
                return None
            if topic == t.property_set:
                return t.property_set_reply, self._serve(payload, self._set_properties)
            name = t.service_name(topic)
            if name is not None:
                return t.service_reply(name), self._serve(payload, self._service(name))
        elif topic == t.ntp_response:
            self._ntp(payload)
            return None
        delivered = False
        for topic_filter, callback in self.subscriptions:
            if topic_matches(topic_filter, topic):
                delivered = True
                try:
                    callback(topic, payload)
                except Exception as exc:  # one faulty callback must not stop the others
                    self._log("error", "callback for %s failed: %r" % (topic_filter, exc))
        if not delivered:
            self._log("warning", "message on unexpected topic " + topic)
        return None

    def _serve(self, payload, handler) -> bytes:
        """Run ``handler(params) -> data`` for a request; encode its reply or its error."""
        try:
            msg_id, _method, params = alink.decode_request(payload)
        except AlinkError as exc:
            return alink.encode_reply(alink.request_id(payload), exc.code, message=exc.message)
        try:
            return alink.encode_reply(msg_id, CODE_OK, handler(params))
        except AlinkError as exc:
            self._log("warning", "request %s refused: %s" % (msg_id, exc.message))
            return alink.encode_reply(msg_id, exc.code, message=exc.message)

    def _set_properties(self, params):
        if self._on_set is None:
            raise AlinkError(CODE_PARAM_ERROR, "no settable properties")
        self._on_set(alink.check_properties(params, self._schema or {}))
        return {}

    def _service(self, name):
        callback = self._services.get(name)

        def call(params):
            if callback is None:
                raise AlinkError(CODE_PARAM_ERROR, "unknown service " + name)
            return callback(params) or {}

        return call

    def _ntp(self, payload) -> None:
        received = self._now_ms()
        try:
            self.clock = (alink.ntp_time_ms(payload, received), received)
        except AlinkError as exc:
            self._log("warning", "NTP: " + exc.message)
            return
        self._log("info", "clock set by NTP")
