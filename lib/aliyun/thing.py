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
  ``/sys/…/rrpc/response/<messageId>`` within ``SYNC_DEADLINE_MS``;
- ``/ext/ntp/…/response`` sets the clock offset;
- everything else goes to the callbacks whose MQTT filter matches (reference §4).

A reply payload may be a coroutine (the service's callback is one): awaited, it gives the
payload. A sync service is answered within ``SYNC_DEADLINE_MS``: the platform waits at most 8 s
for a synchronous call (InvokeThingService, Aliyun doc 69584: 同步调用服务，最大超时时间为8秒; the
RRpc API's Timeout is 1000-8000 ms, reference §4.7), less a second for the reply's way through
the module and the network. The serving code (``aliyun.services``) is imported on first use.

A malformed request is answered 460 (its id cited when it can be read), never dropped silently.
"""

import asyncio

from micropython import const

from aliyun import alink, unload
from aliyun.alink import CODE_OK, AlinkError

_ID_MAX = const(4294967295)  # §4.2: ids are decimal strings in 0..2^32-1
SYNC_DEADLINE_MS = const(7000)
_ASYNC_DEADLINE_MS = const(60000)  # an async service has no platform limit; ours is bounded
_CODE_FAILED = const(500)


def topic_matches(levels: "list | str", topic: str) -> bool:
    """True if the MQTT filter (``+`` one level, ``#`` the rest) matches ``topic``; given split
    into its ``levels``, compared with the topic in place: no allocation."""
    if type(levels) is str:
        levels = levels.split("/")
    i = 0
    n = len(topic)
    for level in levels:
        if level == "#":
            return True
        if i > n:  # the topic has fewer levels
            return False
        j = topic.find("/", i)
        if j < 0:
            j = n
        if level != "+" and (j - i != len(level) or not topic.startswith(level, i)):
            return False
        i = j + 1
    return i == n + 1


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
        # Subscriptions, callback(topic, payload): by exact topic (a dict of lists), and the
        # filters with a wildcard, split once: (levels, filter, callback).
        self._exact = {}
        self._wild = []
        self.clock = None
        self._log = log
        self._now_ms = now_ms
        self._next_id = 1
        self.services = {}  # identifier ("property/set" included) -> callback(params) -> data
        self.model = None  # aliyun.tsl.Model of ``_table`` while loaded (get_model)
        self.held = 0  # coroutine replies under way (aliyun.services): they use that code
        self._table = None
        self.sync_deadline_ms = SYNC_DEADLINE_MS  # RRPC answers are due by then
        self._waiters = {}

    def log(self, level: str, message: str) -> None:
        self._log(level, message)

    def ids(self) -> str:
        """The next uplink message id: a decimal string, unique per device per day (§4.2)."""
        value = self._next_id
        self._next_id = value + 1 if value < _ID_MAX else 1
        return str(value)

    # -- registration (application side) --

    def use_model(self, table) -> None:
        """Check sets, service calls and posts against the thing-model ``table``: the name of
        the module ``tools.tsl_table`` made, or the module itself. The checks (``aliyun.tsl``,
        the table) and the serving code (``aliyun.services``) are imported for each use and
        released after it: about 11 KB of RAM that stays free between requests and posts."""
        self._table = table
        self.model = None

    def get_model(self):
        """The ``aliyun.tsl.Model`` of the table (None without one), loaded on first use."""
        if self.model is None and self._table is not None:
            from aliyun.tsl import Model

            table = self._table
            self.model = Model(__import__(table) if isinstance(table, str) else table)
        return self.model

    def release_model(self) -> None:
        """Free the checks and the serving code (imported again when needed); not while a
        coroutine reply runs (``held``): the next request would import a second copy."""
        if self.held:
            return
        self.model = None
        names = ["aliyun.services", "aliyun.tsl"]
        if isinstance(self._table, str):
            names.append(self._table)
        unload(names)

    def on_property_set(self, schema, callback) -> None:
        """``schema``: None to use the thing model, or a dict (``alink.check_properties``)."""

        def apply(params):
            model = self.get_model() if schema is None else None
            if model is not None:
                accepted = model.check_set(params)
            elif schema is None:
                raise AlinkError(_CODE_FAILED, "no thing model")
            else:
                accepted = alink.check_properties(params, schema)
            callback(accepted)

        self.services["property/set"] = apply

    def on_service(self, identifier: str, callback) -> None:
        """``callback(params) -> data``, or an ``async def`` (awaited within the deadline)."""
        self.services[identifier] = callback

    # -- checks of what the application posts --

    def check_post(self, params: dict) -> dict:
        """``params`` checked (``AlinkError`` 460 naming the field and the rule)."""
        model = self.get_model()
        try:
            return params if model is None else model.check_post(params)
        finally:
            self.release_model()

    def check_event(self, identifier: str, values: dict) -> dict:
        model = self.get_model()
        try:
            return values if model is None else model.check_event(identifier, values)
        finally:
            self.release_model()

    def subscribe(self, topic_filter: str, callback) -> bool:
        """Add a subscription; True if the filter is new (the broker must be told)."""
        new = topic_filter not in self._exact
        for known in self._wild:
            new = new and known[1] != topic_filter
        if "+" in topic_filter or "#" in topic_filter:
            self._wild.append((topic_filter.split("/"), topic_filter, callback))
        else:
            self._exact.setdefault(topic_filter, []).append(callback)
        return new

    def filters(self) -> list:
        """Every filter to subscribe after a (re)connect, each once."""
        result = list(self.topics.downlinks())
        for topic_filter in list(self._exact) + [known[1] for known in self._wild]:
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
            if topic.endswith("_reply") and topic not in self._exact:
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
                    return topic + "_reply", self._serve(name, payload, _ASYNC_DEADLINE_MS)
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
        # The topic's own subscriptions from the dict, then each wildcard filter compared with
        # the topic in place: nothing is allocated per subscription.
        delivered = False
        for callback in self._exact.get(topic, ()):
            delivered = self._deliver(callback, topic, topic, payload)
        for known in self._wild:
            if topic_matches(known[0], topic):
                delivered = self._deliver(known[2], known[1], topic, payload)
        if not delivered:
            log("warning", "unexpected topic " + topic)
        return None

    def _deliver(self, callback, topic_filter, topic, payload) -> bool:
        try:
            callback(topic, payload)
        except Exception as exc:  # one faulty callback must not stop the others
            self._log("error", "callback for %s failed: %r" % (topic_filter, exc))
        return True

    def _rrpc(self, topic: str, payload):
        """A sync service call (§4.7): answered on ``rrpc/response/<messageId>``."""
        message_id = topic[len(self.topics.rrpc_request) :]
        if not message_id or "/" in message_id:
            self._log("warning", "bad RRPC topic " + topic)
            return None
        reply_topic = self.topics.rrpc_response + message_id
        try:
            _id, method, _params = alink.decode_request(payload)
            if not method.startswith("thing.service."):
                raise AlinkError(alink.CODE_PARAM_ERROR, "method " + method + " is no service")
            name = method[14:].replace(".", "/")  # thing.service.property.set: property/set
        except AlinkError as exc:
            return reply_topic, alink.encode_reply(
                alink.request_id(payload), exc.code, message=exc.message
            )
        return reply_topic, self._serve(name, payload, self.sync_deadline_ms)

    def _serve(self, name: str, payload, deadline_ms: int):
        from aliyun.services import serve

        try:
            return serve(self, name, payload, deadline_ms)
        finally:
            self.release_model()  # a coroutine's reply loads what it needs again
