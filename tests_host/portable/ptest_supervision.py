"""The session survives what the application and the module do wrong (issue "never stranded",
defects 2, 3 and 8): a bad subscription filter, a raising callback, a reply that cannot go, a
task that dies, downlinks the AT engine cannot deliver. A stub MQTT client stands for the module;
the AT engine events come from a real ``Air724`` on a fake stream."""

import asyncio
import json

from fakes import FakeStream, sleep_ms
from fakes_session import DEVICE_NAME, PRODUCT_KEY, FakeBoard
from ptest import raises

from air724 import Air724
from aliyun.session import Session
from atmodem import ArgumentError, CMEError, Ring

TOPIC = "/" + PRODUCT_KEY + "/" + DEVICE_NAME + "/user/get"
SERVICE = "/sys/" + PRODUCT_KEY + "/" + DEVICE_NAME + "/thing/service/reboot"


class StubMQTT:
    """The MQTT client's surface the online tasks use; ``refuse``: filters SUBACK refuses."""

    def __init__(self, refuse=()):
        self.inbox = Ring(8)
        self.published = []
        self.subscribed = []
        self.refuse = refuse
        self.cached = 0
        self.fetched = 0

    async def message(self, timeout_ms):
        return await self.inbox.get(timeout_ms)

    async def publish(self, topic, payload, qos=0):
        self.published.append((topic, payload, qos))

    async def subscribe(self, topic, qos=0):
        if topic in self.refuse:
            raise CMEError(b"+CME ERROR: 3", 3)
        self.subscribed.append(topic)

    async def set_push(self):
        pass

    async def fetch(self):
        self.fetched += 1

    async def status(self):
        return 1


class StubModem:
    def __init__(self, mqtt):
        self.mqtt = mqtt
        self.inbox = mqtt.inbox


def make_session(mqtt=None):
    logs = []
    session = Session(
        FakeBoard(),
        {"device_name": DEVICE_NAME, "product_key": PRODUCT_KEY, "keepalive_s": 60},
        lambda level, message: logs.append((level, message)),
    )
    session.modem = StubModem(mqtt or StubMQTT())  # pyright: ignore[reportAttributeAccessIssue]
    session.logs = logs
    return session


def test_a_filter_the_module_cannot_carry_is_refused_at_call_time_and_not_stored():
    session = make_session()
    before = list(session.thing.filters())
    for bad in ('/pk/dn/user/a"b', "/pk/dn/user/\r\n", "", "/x/" + "y" * 300):
        with raises(ArgumentError):
            session.subscribe(bad, lambda topic, payload: None)
    assert session.thing.filters() == before


async def test_a_refused_subscribe_step_skips_that_filter_and_the_session_goes_on():
    mqtt = StubMQTT(refuse=("/pk/dn/user/refused",))
    session = make_session(mqtt)
    session.subscribe("/pk/dn/user/refused", lambda topic, payload: None)
    session.subscribe(TOPIC, lambda topic, payload: None)
    mqtt.cached = 2  # cache-mode notices came before push mode was set
    await session._subscribe_all(mqtt)
    assert TOPIC in mqtt.subscribed and "/pk/dn/user/refused" not in mqtt.subscribed
    assert mqtt.fetched == 1
    assert [m for level, m in session.logs if "refused" in m and level == "error"]
    assert session.refused == ["/pk/dn/user/refused"]


async def serve_briefly(session, until):
    session.online = True  # as after _go_online: QoS0 replies go out
    task = asyncio.create_task(session._serve())
    try:
        for _ in range(200):
            if until():
                break
            await sleep_ms(5)
    finally:
        task.cancel()
        try:
            await task
        except BaseException:  # CancelledError, or the LinkLostError of a test
            pass


async def test_a_raising_callback_is_answered_logged_counted_and_dispatch_goes_on():
    mqtt = StubMQTT()
    session = make_session(mqtt)
    got = []

    def broken(params):
        raise ValueError("boom")

    session.on_service("reboot", broken)
    session.subscribe(TOPIC, lambda topic, payload: got.append(payload))
    session.subscribe("/" + PRODUCT_KEY + "/" + DEVICE_NAME + "/user/#", lambda t, p: 1 / 0)
    mqtt.inbox.put((SERVICE, b'{"id":"7","version":"1.0","params":{},"method":"x"}'))
    mqtt.inbox.put((TOPIC, b"after"))
    await serve_briefly(session, lambda: got and len(mqtt.published) >= 1)
    assert got == [b"after"]  # dispatch went on after both errors
    replies = [p for p in mqtt.published if p[0] == SERVICE + "_reply"]
    reply = json.loads(replies[0][1])
    assert reply["code"] == 500 and reply["id"] == "7"  # answered as failed, its id cited
    assert [m for level, m in session.logs if level == "error" and "boom" in m]
    assert [m for level, m in session.logs if level == "error" and "ZeroDivision" in m]
    assert not session._lost.is_set()  # still serving


async def test_a_reply_that_cannot_be_sent_is_counted_and_dispatch_goes_on():
    mqtt = StubMQTT()
    session = make_session(mqtt)
    got = []
    long_service = SERVICE[: -len("reboot")] + "s" * 260  # its _reply topic is over 256 bytes
    session.on_service("s" * 260, lambda params: {})
    session.subscribe(TOPIC, lambda topic, payload: got.append(payload))
    mqtt.inbox.put((long_service, b'{"id":"8","version":"1.0","params":{},"method":"x"}'))
    mqtt.inbox.put((TOPIC, b"after"))
    await serve_briefly(session, lambda: got)
    assert got == [b"after"] and session.app_errors == 1
    assert not session._lost.is_set()


async def test_an_online_task_that_dies_is_a_link_fault():
    class Dying(StubMQTT):
        async def message(self, timeout_ms):
            raise RuntimeError("dispatch broke")

    session = make_session(Dying())
    await serve_briefly(session, lambda: session._lost.is_set())
    assert session._lost.is_set() and "dispatch broke" in session._lost_reason


async def test_downlinks_the_engine_cannot_deliver_are_logged_and_counted_with_a_reason():
    stream = FakeStream()
    session = make_session()
    modem = Air724(stream, bufsize=64, data_max=100)
    modem.on_event = session._on_engine_event
    modem.channel.gap_ms = 30
    modem.start()
    assert modem.mqtt is not None  # created: its +MSUB rule is registered
    stream.feed(b'+MSUB: "/a/b",500 byte,' + b"x" * 50)  # over data_max: skipped
    stream.feed(b"y" * 450)
    stream.feed(b'+MSUB: "/a/b",80 byte,' + b"z" * 10)  # truncated: the bytes stop
    await sleep_ms(80)
    stream.feed(b"\r\n+CSQ: 1,1\r\n")
    await sleep_ms(20)
    drops = session.downlinks_dropped
    assert drops.get("over data_max") == 1 and drops.get("truncated") == 1, drops
    assert session.stats["downlinks_dropped"] == 2
    assert len([m for level, m in session.logs if "downlink dropped" in m]) == 2
    await modem.close()


async def test_a_cache_mode_notice_while_online_sets_push_mode_and_fetches():
    mqtt = StubMQTT()
    session = make_session(mqtt)
    mqtt.inbox.put((None, None))  # "+MSUB: 0": the module is back in cache mode
    await serve_briefly(session, lambda: mqtt.fetched)
    assert mqtt.fetched == 1 and session.received == 0
