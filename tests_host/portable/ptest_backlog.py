"""Readings on flash through the session (lib/aliyun/backlog.py, Session.post_properties with
a store): dated by NTP, normal posts within the 24 h window, history posts batched beyond it,
acknowledged only once published, surviving a restart."""

import asyncio
import json
import os
import sys
from binascii import hexlify
from time import ticks_diff, ticks_ms

from fakes_session import DEVICE_NAME, PRODUCT_KEY, FakeBoard
from ptest import raises

from aliyun.backlog import HISTORY_AFTER_MS, Backlog
from aliyun.session import Session

HOUR = 3600 * 1000
NOW = 1764600000000  # epoch ms "now" of these tests


def _dir():
    return "ptest_backlog_" + hexlify(os.urandom(4)).decode()


def _rmtree(root):
    for name in os.listdir(root):
        os.remove(root + "/" + name)
    os.rmdir(root)


def _fields(raw):
    """A stored record: (id, epoch ms, boot, ticks, params)."""
    msg_id, t, boot, ticks, params = raw.split(b" ", 4)
    return msg_id.decode(), int(t), int(boot), int(ticks), json.loads(params)


def _backlog(root):
    return Backlog(root, 16384, PRODUCT_KEY, DEVICE_NAME, ticks_diff)


TOPIC = "/sys/%s/%s/thing/event/property/post" % (PRODUCT_KEY, DEVICE_NAME)


def test_normal_post_carries_the_measurement_time_of_each_property():
    root = _dir()
    try:
        log = _backlog(root)
        log.add("7", {"Temp": 21.5, "Hum": 40}, NOW - HOUR, 0)
        topic, payload, token = log.next((NOW, 0), NOW, TOPIC)
        body = json.loads(payload)
        assert topic == TOPIC and body["id"] == "7"
        assert body["method"] == "thing.event.property.post"
        assert body["params"] == {
            "Temp": {"value": 21.5, "time": NOW - HOUR},
            "Hum": {"value": 40, "time": NOW - HOUR},
        }
        assert log.next((NOW, 0), NOW, TOPIC)[2] == token  # not acknowledged: the same again
        log.store.ack(token)
        assert log.next((NOW, 0), NOW, TOPIC) is None
    finally:
        _rmtree(root)


def test_a_reading_taken_before_ntp_waits_for_the_clock_then_is_dated_by_ticks():
    root = _dir()
    try:
        log = _backlog(root)
        taken = ticks_ms()
        log.add("1", {"Temp": 1}, None, taken)  # no clock yet
        assert log.next(None, 0, TOPIC) is None  # wait for NTP
        clock = (NOW, taken + 5000)  # NTP answered 5 s after the reading
        body = json.loads(log.next(clock, NOW + 5000, TOPIC)[1])
        assert body["params"]["Temp"] == {"value": 1, "time": NOW - 5000}
        state = log.state(clock, NOW + 5000)
        assert state["records"] == 1 and state["oldest_age_ms"] == 10000
        assert state["dropped"] == {"full": 0, "torn": 0, "error": 0} and state["bytes"] > 0
        # after a restart the ticks mean nothing: sent without a time (the cloud's receipt)
        again = _backlog(root)
        body = json.loads(again.next(None, 0, TOPIC)[1])
        assert body["params"] == {"Temp": 1}
    finally:
        _rmtree(root)


def test_readings_older_than_the_window_go_batched_in_history_posts_in_order():
    root = _dir()
    try:
        log = _backlog(root)
        for i in range(5):
            log.add(str(10 + i), {"Seq": i}, NOW - 30 * HOUR + i * 1000, 0)
        log.add("99", {"Seq": 5}, NOW - HOUR, 0)
        topic, payload, token = log.next((NOW, 0), NOW, TOPIC)
        body = json.loads(payload)
        assert topic.endswith("/thing/event/property/history/post")
        assert body["method"] == "thing.event.property.history.post" and body["id"] == "10"
        entry = body["params"][0]
        assert entry["identity"] == {"productKey": PRODUCT_KEY, "deviceName": DEVICE_NAME}
        assert entry["properties"] == [
            {"Seq": {"value": i, "time": NOW - 30 * HOUR + i * 1000}} for i in range(5)
        ]
        log.store.ack(token)
        body = json.loads(log.next((NOW, 0), NOW, TOPIC)[1])  # the recent one: a normal post
        assert body["id"] == "99" and body["params"]["Seq"]["time"] == NOW - HOUR
        assert HISTORY_AFTER_MS < 24 * HOUR  # a margin for clock skew
    finally:
        _rmtree(root)


def test_history_batches_stay_within_the_value_and_size_limits():
    root = _dir()
    try:
        log = Backlog(root, 65536, PRODUCT_KEY, DEVICE_NAME, ticks_diff)
        wide = {"P%02d" % k: k for k in range(10)}  # 10 values a reading
        for i in range(12):
            log.add(str(i + 1), wide, NOW - 48 * HOUR + i, 0)
        sizes = []
        while True:
            message = log.next((NOW, 0), NOW, TOPIC)
            if message is None:
                break
            props = json.loads(message[1])["params"][0]["properties"]
            assert len(message[1]) <= 2000 and sum(len(p) for p in props) <= 200
            sizes.append(len(props))
            log.store.ack(message[2])
        assert sum(sizes) == 12 and len(sizes) >= 2
        with raises(ValueError):  # could never be sent in one message: refused, not stored
            log.add("99", {"P%03d" % k: "x" * 20 for k in range(40)}, NOW, 0)
        assert log.store.records == 0
    finally:
        _rmtree(root)


class Publisher:
    """The MQTT client as the pump sees it: records each QoS1 publish; ``fail_at`` raises."""

    def __init__(self, fail_at=-1):
        self.sent = []
        self.fail_at = fail_at

    async def publish(self, topic, payload, qos):
        if len(self.sent) == self.fail_at:
            self.fail_at = -1
            raise OSError("link lost")
        await asyncio.sleep(0)
        self.sent.append((topic, json.loads(payload)))  # PUBACK: the pump acknowledges next


class Inbox:
    dropped = 0


class Modem:
    def __init__(self, mqtt):
        self.mqtt = mqtt
        self.inbox = Inbox()


def _session(root, segment_bytes=False):
    config = {
        "device_name": DEVICE_NAME,
        "product_key": PRODUCT_KEY,
        "store": {"enabled": True, "max_bytes": 16384},
    }
    session = Session(FakeBoard(), config, store_dir=root)
    if segment_bytes:  # small segments: a few readings each
        session.readings.backlog.store.segment_bytes = 512
    return session


async def _pump_until(session, count, timeout_ms=3000):
    task = asyncio.create_task(session._pump())
    start = ticks_ms()
    while len(session.modem.mqtt.sent) < count and not session._lost.is_set():
        assert ticks_diff(ticks_ms(), start) < timeout_ms, session.modem.mqtt.sent
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0)


async def test_session_stores_offline_readings_and_sends_them_in_order_after_ntp():
    root = _dir()
    try:
        session = _session(root)
        for i in range(2):
            assert await session.post_properties({"Seq": i}) is None  # offline: stored
        session = _session(root)  # a reset: the readings are still there
        for i in range(2, 5):
            await session.post_properties({"Seq": i})
        assert session.stats["store"]["records"] == 5
        session.modem = Modem(Publisher(fail_at=3))
        session._clock_at_online = session.thing.clock = (NOW, ticks_ms())  # the old clock
        await _pump_until(session, 2)
        await asyncio.sleep(0.05)
        sent = session.modem.mqtt.sent
        assert [body["params"] for _t, body in sent] == [{"Seq": 0}, {"Seq": 1}]  # undatable
        session.thing.clock = (NOW, ticks_ms())  # this link's NTP answer
        await _pump_until(session, 4)  # the fourth publish fails: the link is lost first
        assert session._lost.is_set() and session.readings.backlog.store.records == 2
        session._lost.clear()
        await _pump_until(session, 5)
        seqs = [body["params"]["Seq"] for _topic, body in sent[2:]]
        assert [seq["value"] for seq in seqs] == [2, 3, 4]  # in order, the failed one again
        for _topic, body in sent[2:]:
            assert abs(body["params"]["Seq"]["time"] - NOW) < 60000  # dated by the ticks
        assert session.readings.backlog.store.records == 0 and session.published == 5
        assert session.stats["store"]["oldest_age_ms"] is None
    finally:
        _rmtree(root)


async def test_message_ids_differ_from_those_of_earlier_runs():
    root = _dir()
    try:
        first = _session(root)
        await first.post_properties({"A": 1})
        second = _session(root)
        await second.post_properties({"A": 2})
        ids = [_fields(r)[0] for r in second.readings.backlog.store.peek(2)]
        assert len(set(ids)) == 2, ids
    finally:
        _rmtree(root)


async def test_readings_taken_while_the_store_is_closed_for_a_bring_up_reach_it_in_order():
    root = _dir()
    try:
        session = _session(root, segment_bytes=True)
        await session.post_properties({"Seq": 0})
        session.readings.park(None, None)  # a bring-up: the store's code leaves RAM
        assert session.readings.backlog is None and "aliyun.store" not in sys.modules
        for i in range(1, 40):  # on flash at once, through the small resident writer
            await session.post_properties({"Seq": i})
        assert session.stats["store"]["records"] == 40
        session = _session(root)  # a power cut before the store reopened
        got = [_fields(r)[4]["Seq"] for r in session.readings.backlog.store.peek(40)]
        assert got == list(range(40))  # no clock: stored plain
        assert len([n for n in os.listdir(root) if n.endswith(".q")]) > 2  # segments rolled
        session.readings.park(None, None)
        await session.post_properties({"Seq": 40})
        session.readings.reopen(session.log)
        assert session.readings.backlog.store.records == 41
        session.readings.reopen(session.log)  # not parked: nothing happens
        assert session.readings.backlog.store.records == 41
    finally:
        _rmtree(root)


class Clocked:
    """air724.module.Module's network_clock over a scripted ``clock()``."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.asked = 0

    async def clock(self):
        self.asked += 1
        if self.seconds is None:
            raise OSError("no answer")
        return self.seconds

    async def network_clock(self):
        from air724.module import Module

        return await Module.network_clock(self)


async def test_the_module_clock_dates_readings_until_ntp_answers():
    for unset in (Clocked(946684800), Clocked(None)):  # 2000-01-01 (never set), no answer
        assert await unset.network_clock() is None and unset.asked == 1
    clock = await Clocked(NOW // 1000).network_clock()
    assert clock[0] == NOW and abs(ticks_diff(ticks_ms(), clock[1])) < 1000
    root = _dir()
    try:
        session = _session(root)
        assert session.kept.wants_clock
        session.thing.clock = clock  # as the session takes it after the bring-up
        await session.post_properties({"A": 1})
        assert abs(_fields(session.readings.backlog.store.peek(1)[0])[1] - NOW) < 5000
    finally:
        _rmtree(root)
