"""The session's thing-model API without a modem: refused subscriptions, checked posts, events
with their time, batch post, desired properties after a connect (aliyun.online, .services)."""

import asyncio
import json
from time import ticks_diff, ticks_ms

import tsl_all_types_table as table
from fakes_session import DEVICE_NAME, PRODUCT_KEY, FakeBoard, LogLines
from ptest import raises

from aliyun.alink import AlinkError
from aliyun.online import SubscribeError
from aliyun.services import apply_desired
from aliyun.session import Session
from atmodem.errors import CommandError


class MqttStub:
    """``subscribe`` fails like a refused SUBACK (``ERROR`` after the OK) for ``refuse``."""

    def __init__(self, refuse=()):
        self.refuse = refuse
        self.subscribed = []
        self.published = []

    async def subscribe(self, topic, qos=0, timeout_ms=10000):
        if topic in self.refuse:
            raise CommandError("ERROR", b"ERROR")
        self.subscribed.append(topic)

    async def publish(self, topic, payload, qos=0):
        self.published.append((topic, bytes(payload), qos))


class ModemStub:
    def __init__(self, mqtt):
        self.mqtt = mqtt


def make(refuse=()):
    log = LogLines()
    config = {"device_name": DEVICE_NAME, "product_key": PRODUCT_KEY}
    session = Session(FakeBoard(), config, log=log)
    session.modem = ModemStub(MqttStub(refuse))
    session.use_model(table)
    return session, log


async def test_a_refused_subscription_is_a_typed_error_naming_the_topic():
    wildcard = "/sys/%s/%s/thing/#" % (PRODUCT_KEY, DEVICE_NAME)
    session, log = make(refuse=(wildcard,))
    with raises(SubscribeError, match=wildcard) as caught:
        await session.subscribe_one(wildcard)
    assert caught.value.topic == wildcard and session.refused == [wildcard]
    assert log.find("subscribe refused (SUBACK 0x80): " + wildcard, "error")
    for topic_filter in session.thing.filters():  # the SDKs' filters: none refused here
        await session.subscribe_one(topic_filter)
    assert session.modem.mqtt.subscribed == session.thing.filters()
    assert wildcard not in session.thing.filters()


async def test_posts_that_break_the_model_never_leave():
    session, _ = make()
    with raises(AlinkError, match="Count: out of range 0..100") as caught:
        await session.post_properties({"Count": 500})
    assert caught.value.code == 460
    with raises(AlinkError, match="Temp: out of range"):
        await session.post_event("Overheat", {"Temp": 500.0})
    with raises(AlinkError, match="Flood: no such event"):
        await session.post_event("Flood", {})
    with raises(AlinkError, match="Levels[0]"):
        await session.post_batch({"Levels": [{"value": [10], "time": 1}]}, {})
    assert session.outbox.peek() is None  # nothing queued


async def test_event_carries_its_time_and_batch_post_its_items():
    session, _ = make()
    assert (
        await session.post_event("Overheat", {"Temp": 1, "Level": 0}, 0, at=1700000000000) is None
    )
    topic, payload = session.outbox.peek()
    session.outbox.pop()
    body = json.loads(payload)
    assert topic.endswith("/thing/event/Overheat/post")
    assert body["method"] == "thing.event.Overheat.post"
    assert body["params"] == {"value": {"Temp": 1.0, "Level": 0}, "time": 1700000000000}
    props = {"Count": [{"value": 1, "time": 10}, {"value": 2, "time": 20}]}
    events = {"Overheat": [{"value": {"Temp": 2.0}, "time": 15}]}
    await session.post_batch(props, events, 0)
    topic, payload = session.outbox.peek()
    body = json.loads(payload)
    assert topic.endswith("/thing/event/property/batch/post")
    assert body["method"] == "thing.event.property.batch.post"
    assert body["params"] == {"properties": props, "events": events}


async def test_desired_values_are_applied_then_deleted_with_their_versions():
    session, log = make()
    thing = session.thing
    applied = []
    thing.on_property_set(None, applied.append)
    asked = []

    async def ask(topic, method, params, timeout_ms):
        asked.append((topic, method, params))
        if method.endswith("get"):
            data = {"Count": {"value": 7, "version": 3}, "Mode": {"value": 1, "version": 1}}
            return 200, data
        return 200, {}

    await apply_desired(thing, ask, session.topics)
    assert applied == [{"Count": 7, "Mode": 1}]
    get, delete = asked
    assert get[0] == session.topics.desired_get and "Serial" not in get[2] and "Count" in get[2]
    assert delete[0] == session.topics.desired_delete
    assert delete[2] == {"Count": {"version": 3}, "Mode": {"version": 1}}
    assert log.find("desired values applied: Count, Mode", "info")


async def test_desired_values_the_model_refuses_are_kept_in_the_cloud():
    session, log = make()
    session.thing.on_property_set(None, lambda accepted: None)
    asked = []

    async def ask(topic, method, params, timeout_ms):
        asked.append(method)
        return 200, {"Count": {"value": 700, "version": 2}}

    await apply_desired(session.thing, ask, session.topics)
    assert asked == ["thing.property.desired.get"]  # no delete
    assert log.find("desired values not applied: Count: out of range", "warning")

    async def nothing(topic, method, params, timeout_ms):
        asked.append(method)
        return None, None  # no reply in time

    await apply_desired(session.thing, nothing, session.topics)
    assert asked[-1] == "thing.property.desired.get"


async def test_a_desired_request_that_fails_is_logged_and_the_session_task_ends_cleanly():
    session, log = make()

    async def no_memory(topic, method, params, timeout_ms):
        raise MemoryError("memory allocation failed, allocating 112 bytes")

    session._ask = no_memory  # the session's own request path runs out of RAM
    await session._desired()  # the session's task: logs, never raises
    assert log.find("desired values: MemoryError: memory allocation failed", "warning")


async def test_the_checks_are_loaded_for_each_use_and_released_after_it():
    import sys

    session, _ = make()
    session.thing.use_model("tsl_all_types_table")  # by name: imported when needed
    session.thing.release_model()
    assert "aliyun.tsl" not in sys.modules and "tsl_all_types_table" not in sys.modules
    await session.post_properties({"Count": 1}, 0)  # checked, then released
    assert "aliyun.tsl" not in sys.modules and session.outbox.peek() is not None
    with raises(AlinkError, match="Count"):
        await session.post_properties({"Count": -1}, 0)
    assert "aliyun.tsl" not in sys.modules and "tsl_all_types_table" not in sys.modules
    set_topic = session.topics.thing_prefix + "service/property/set"
    session.thing.on_property_set(None, lambda accepted: None)
    request = b'{"id":"1","version":"1.0","params":{"Count":200}}'
    _, reply = session.thing.dispatch(set_topic, request)
    assert json.loads(reply)["code"] == 460
    assert "aliyun.services" not in sys.modules and "aliyun.tsl" not in sys.modules


class TimedMqtt(MqttStub):
    """Records when each publish starts."""

    async def publish(self, topic, payload, qos=0):
        self.published.append((ticks_ms(), qos))
        await asyncio.sleep(0)


def _gaps(published, qos):
    times = [t for t, q in published if q == qos]
    return [ticks_diff(b, a) for a, b in zip(times, times[1:])]


async def test_qos0_publishes_keep_within_the_platforms_rate():
    # 30 QoS0 messages a second per device (reference §4.9): over it the broker drops them
    # silently. Four offered at once take turns. (The QoS1 pace: ptest_recovery.)
    session, _ = make()
    session.modem = ModemStub(TimedMqtt())
    session.online = True
    topic = "/%s/%s/user/up" % (PRODUCT_KEY, DEVICE_NAME)
    tasks = [asyncio.create_task(session.publish(topic, "q0-%d" % n, 0)) for n in range(4)]
    for task in tasks:
        assert await task is True
    gaps = _gaps(session.modem.mqtt.published, 0)
    assert len(gaps) == 3 and sum(gaps) >= 3 * 37, gaps  # 27 a second on average


async def test_a_coroutine_reply_keeps_the_serving_code_loaded_until_it_is_done():
    import sys

    session, _ = make()
    thing = session.thing
    thing.use_model("tsl_all_types_table")
    release = asyncio.Event()

    async def calibrate(params):
        await release.wait()
        return {"Applied": 1}

    thing.on_service("Calibrate", calibrate)
    thing.on_property_set(None, lambda accepted: None)
    base = session.topics.thing_prefix + "service/"
    call = b'{"id":"1","version":"1.0","params":{"Offset":2.5},"method":"thing.service.Calibrate"}'
    _, reply = thing.dispatch(base + "Calibrate", call)
    assert hasattr(reply, "send") and thing.held == 1
    serving = sys.modules["aliyun.services"]  # still loaded: the reply runs its code
    await session.post_properties({"Count": 1}, 0)  # a check meanwhile releases nothing
    request = b'{"id":"2","version":"1.0","params":{"Count":200}}'
    _, refused = thing.dispatch(base + "property/set", request)
    assert json.loads(refused)["code"] == 460
    assert sys.modules["aliyun.services"] is serving  # no second copy of the serving code
    release.set()
    assert json.loads(await reply) == {"id": "1", "code": 200, "data": {"Applied": 1}}
    assert thing.held == 0
    assert "aliyun.services" not in sys.modules and "aliyun.tsl" not in sys.modules
    assert "tsl_all_types_table" not in sys.modules


async def test_a_qos0_turn_from_days_ago_never_delays_a_publish():
    # ticks wrap (2**30 ms on a board): a last turn 6.2 days old reads as one far ahead.
    from time import ticks_add

    from atmodem import wait_ms

    session, _ = make()
    session.modem = ModemStub(TimedMqtt())
    session.online = True
    session.qos0_at = ticks_add(ticks_ms(), 2**29 - 1)
    topic = "/%s/%s/user/up" % (PRODUCT_KEY, DEVICE_NAME)
    assert await wait_ms(session.publish(topic, "after a week", 0), 2000) is True


class LiveMqtt(TimedMqtt):
    """Says the link is up (``AT+MQTTSTATU``: 1)."""

    async def status(self, timeout_ms=2000):
        return 1


async def test_the_ntp_clock_is_asked_again_after_half_a_day_online():
    # A post's time counts from the NTP answer's ticks, and ticks span only 6.2 days on a board:
    # a week online on one answer would date posts days off, and the cloud refuses those.
    from time import ticks_add

    session, _ = make()
    session.modem = ModemStub(LiveMqtt())
    session.online = True
    now = ticks_ms()
    session._heard = now  # downlinks keep coming: no probe for a half-open link
    session.thing.clock = (1700000000000, ticks_add(now, -11 * 3600 * 1000))
    await session._health()
    await asyncio.sleep_ms(50)
    assert session.modem.mqtt.published == []  # 11 h old: still good
    session.thing.clock = (1700000000000, ticks_add(now, -13 * 3600 * 1000))
    await session._health()
    await asyncio.sleep_ms(50)
    assert [qos for _t, qos in session.modem.mqtt.published] == [0]  # the NTP request
