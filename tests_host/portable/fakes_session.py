"""Test doubles for the application layer (CPython and MicroPython): a session and a board.

``FakeSession`` implements the public contract of ``aliyun.session.Session`` without a modem:
tests drive it (``set_state``, ``learn_name``, ``deliver``, ``property_set``) and read what the
application did (``posts``, ``published``). Its ``property_set`` answers exactly as the session
does: the values are checked against the thing model (``use_model``, the real ``aliyun.tsl``) or
the registered schema first (460 naming the field, nothing applied), then the callback applies
them (an ``AlinkError`` it raises gives its own code). Posts are checked against the model as the
session checks them (``AlinkError`` before anything is recorded); ``call_service`` runs a
registered service the way the session does (input checked, a coroutine awaited).
``FakeBoard`` records the board calls.
"""

import asyncio

from aliyun.alink import AlinkError, Topics, check_properties
from aliyun.thing import topic_matches
from aliyun.tsl import Model


def wait_ms(aw, ms):
    return asyncio.wait_for_ms(aw, ms)


PRODUCT_KEY = "a1B2c3D4e5F"
DEVICE_NAME = "dev-001"


class Recorder:
    """A list of items with an event per append, so tests await the n-th item."""

    def __init__(self):
        self.items = []
        self._event = asyncio.Event()

    def append(self, item):
        self.items.append(item)
        self._event.set()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    async def wait(self, n=1, timeout_ms=2000):
        """Wait until at least ``n`` items are recorded; return the n-th."""

        async def reached():
            while len(self.items) < n:
                self._event.clear()
                await self._event.wait()

        await wait_ms(reached(), timeout_ms)
        return self.items[n - 1]


class FakeSession:
    def __init__(self, device_name=DEVICE_NAME, product_key=PRODUCT_KEY):
        self.product_key = product_key
        self.state = "sync"
        self.online = False
        self.device_name = device_name
        self.topics = Topics(product_key, device_name) if device_name else None
        self.post_reply = 200  # what post_properties answers (None: timeout)
        self.posts = Recorder()  # params of each post_properties
        self.posted_offline = 0  # post_properties calls made while not online
        self.reply_timeouts = []  # timeout_ms of each post_properties call
        self.published = Recorder()  # (topic, payload, qos) accepted by publish
        self.events = Recorder()  # (identifier, params) of post_event
        self.subscriptions = []  # (filter, callback)
        self.property_handlers = []  # (schema, callback)
        self.services = {}
        self.model = None  # aliyun.tsl.Model given by use_model
        self.clock_ms = None  # what time_ms() answers (None: NTP has not answered)
        self.stats = {
            "online_since_ms": 0,
            "time_to_online_ms": 0,
            "reconnects": 0,
            "published": 0,
            "received": 0,
            "dropped": 0,
            "state_changes": 0,
        }
        self._state_callbacks = []
        self._stop = asyncio.Event()

    # -- the contract --

    def on_state(self, callback):
        self._state_callbacks.append(callback)

    def subscribe(self, topic_filter, callback):
        self.subscriptions.append((topic_filter, callback))

    async def publish(self, topic, payload, qos=0):
        if not self.online and qos == 0:
            self.stats["dropped"] += 1
            return False
        self.stats["published"] += 1
        self.published.append((topic, bytes(payload), qos))
        return True

    async def post_properties(self, params, timeout_ms=10000):
        if self.model is not None:
            params = self.model.check_post(params)  # AlinkError: refused before it leaves
        self.reply_timeouts.append(timeout_ms)
        if not self.online:
            self.posted_offline += 1
        self.posts.append(dict(params))
        reply = self.post_reply
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def use_model(self, table):
        self.model = Model(__import__(table) if isinstance(table, str) else table)

    def time_ms(self):
        return self.clock_ms

    def on_property_set(self, schema, callback):
        self.property_handlers.append((schema, callback))

    def on_service(self, identifier, callback):
        self.services[identifier] = callback

    async def post_event(self, identifier, values, timeout_ms=10000):
        if self.model is not None:
            values = self.model.check_event(identifier, values)
        self.events.append((identifier, values))
        return self.post_reply

    async def run(self):
        await self._stop.wait()

    # -- test drivers --

    def set_state(self, state):
        self.state = state
        self.online = state == "online"
        self.stats["state_changes"] += 1
        for callback in self._state_callbacks:
            callback(state)

    def learn_name(self, device_name):
        """The device name becomes known (the IMEI after bring-up)."""
        self.device_name = device_name
        self.topics = Topics(self.product_key, device_name)

    def deliver(self, topic, payload):
        """A downlink message: every matching subscription's callback; returns their count."""
        self.stats["received"] += 1
        hits = 0
        for topic_filter, callback in self.subscriptions:
            if topic_matches(topic_filter, topic):
                callback(topic, payload)
                hits += 1
        return hits

    def property_set(self, params):
        """thing.service.property.set as the session serves it: (code, message)."""
        for schema, callback in self.property_handlers:
            try:
                if schema is None:
                    accepted = self.model.check_set(params)
                else:
                    accepted = check_properties(params, schema)
                callback(accepted)
            except AlinkError as exc:
                return exc.code, exc.message
        return 200, ""

    async def call_service(self, identifier, params):
        """A service call as the session serves it: the callback's data (``AlinkError`` 460
        when the model refuses the input)."""
        if self.model is not None:
            params = self.model.check_input(identifier, params)
        result = self.services[identifier](params)
        if hasattr(result, "send"):
            result = await result
        return result


class FakeBoard:
    name = "fake"
    reset_delay_ms = 0

    def __init__(self, config=None, log=None, heap=50000):
        self.config = config
        self.leds = []  # patterns shown
        self.led_on = True
        self.watchdogs = []
        self.feeds = 0
        self.resets = 0
        self.heap = heap

    async def open_uart(self):
        raise OSError("no UART on the fake board")

    def close_uart(self):
        pass

    async def power_cycle(self):
        return False

    def led(self, pattern):
        self.leds.append(pattern)

    def led_enable(self, on):
        self.led_on = on

    def watchdog(self, timeout_ms):
        self.watchdogs.append(timeout_ms)

    def feed(self):
        self.feeds += 1

    def free_heap(self):
        return self.heap

    def reset(self):
        self.resets += 1


class LogLines:
    """A ``log(level, message)`` that keeps ``(level, message)`` pairs."""

    def __init__(self):
        self.lines = []

    def __call__(self, level, message):
        self.lines.append((level, message))

    def find(self, text, level=None):
        return [m for lv, m in self.lines if text in m and (level is None or lv == level)]
