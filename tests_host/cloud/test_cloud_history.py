"""History posts and the 24 h rule (tools/cloud/alink.py; reference §4.2-§4.4): measurements of
the past go to ``thing/event/property/history/post``; a normal post's ``time`` must be within
24 h of the cloud's clock, which a test can move (control API ``/clock``)."""

import pytest

from tools.cloud import registry as reg
from tools.cloud.cli import control_ok
from tools.cloud.server import read_server_file

from .helpers import sys_topic

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def thing(cloud, online):
    device = cloud.device()
    dev = online(device)
    # The explicit reply topics (the cloud refuses thing/#, as the platform is taken to).
    replies = ("event/+/post_reply", "event/property/history/post_reply")
    assert dev.subscribe_many([sys_topic(device, r) for r in replies]) == [1, 1]
    yield device, dev
    cloud.thread.cloud.alink.clock_offset_ms = 0


def history(device, *times, msg_id="77"):
    identity = {"productKey": device["productKey"], "deviceName": device["deviceName"]}
    props = [{"Temperature": {"value": 20 + i, "time": t}} for i, t in enumerate(times)]
    return {
        "id": msg_id,
        "version": "1.0",
        "method": "thing.event.property.history.post",
        "params": [{"identity": identity, "properties": props}],
    }


def test_history_post_is_answered_and_logged_not_merged(cloud, thing):
    device, dev = thing
    old = reg.now_ms() - 3 * DAY_MS
    topic = sys_topic(device, "event/property/history/post")
    dev.publish(topic, history(device, old, old + 1000))
    reply = dev.expect_json(topic + "_reply")
    assert reply["code"] == 200 and reply["id"] == "77"
    assert reply["method"] == "thing.event.property.history.post"
    row = cloud.watcher.wait(lambda r: r["topic"] == topic)
    assert row["type"] == "up" and row["status"] == "200" and str(old) in row["content"]
    props = cloud.registry.device(device["productKey"], device["deviceName"])["properties"]
    assert props == {}  # the past does not overwrite the latest values


@pytest.mark.parametrize(
    "change,problem",
    [
        (lambda b: b.update(params={"not": "a list"}), "array"),
        (lambda b: b["params"][0]["identity"].update(deviceName="other"), "identity"),
        (lambda b: b["params"][0]["properties"][0]["Temperature"].pop("time"), "time"),
        (lambda b: b["params"][0]["properties"][0]["Temperature"].pop("value"), "value"),
        (lambda b: b["params"][0].update(properties=[]), "values per history post"),
        (lambda b: b["params"][0].update(properties={"A": 1}), "array"),
    ],
)
def test_history_post_errors_reply_460(cloud, thing, change, problem):
    device, dev = thing
    body = history(device, reg.now_ms() - DAY_MS * 2)
    change(body)
    topic = sys_topic(device, "event/property/history/post")
    dev.publish(topic, body)
    reply = dev.expect_json(topic + "_reply")
    assert reply["code"] == 460 and problem in reply["message"]


def test_history_post_limits(cloud, thing):
    device, dev = thing
    topic = sys_topic(device, "event/property/history/post")
    now = reg.now_ms()
    dev.publish(topic, history(device, now + DAY_MS + 60000))  # over a day ahead
    assert dev.expect_json(topic + "_reply")["code"] == 460
    dev.publish(topic, history(device, *[now - DAY_MS * 2] * 201, msg_id="78"))
    reply = dev.expect_json(topic + "_reply")
    assert reply["code"] == 460 and reply["id"] == "78"
    dev.publish(topic, history(device, *[now - DAY_MS * 2] * 200, msg_id="79"))
    assert dev.expect_json(topic + "_reply")["code"] == 200


def test_normal_post_time_must_be_within_a_day(cloud, thing):
    device, dev = thing
    topic = sys_topic(device, "event/property/post")
    now = reg.now_ms()
    for msg_id, t, code in (
        ("1", now - 3600000, 200),
        ("2", now - DAY_MS - 60000, 460),
        ("3", now + DAY_MS + 60000, 460),
        ("4", now + 60000, 200),
    ):
        dev.publish(topic, {"id": msg_id, "params": {"Temperature": {"value": 1, "time": t}}})
        reply = dev.expect_json(topic + "_reply")
        assert (reply["id"], reply["code"]) == (msg_id, code)
    row = cloud.watcher.wait(lambda r: r["topic"] == topic and '"id": "2"' in r["content"])
    assert row["status"] == "460"
    props = cloud.registry.device(device["productKey"], device["deviceName"])["properties"]
    assert props["Temperature"]["time"] == now + 60000  # the refused ones were not stored


def test_clock_offset_moves_ntp_and_the_window(cloud, thing):
    device, dev = thing
    pk, dn = device["productKey"], device["deviceName"]
    offset = DAY_MS + 3600000
    assert (
        control_ok(read_server_file(cloud.state_dir), "POST", "/clock", {"offset_ms": offset})[
            "offset_ms"
        ]
        == offset
    )
    assert dev.subscribe("/ext/ntp/%s/%s/response" % (pk, dn)) == 1
    before = reg.now_ms()
    dev.publish("/ext/ntp/%s/%s/request" % (pk, dn), {"deviceSendTime": "1"}, 0)
    body = dev.expect_json("/ext/ntp/%s/%s/response" % (pk, dn))
    assert before + offset <= int(body["serverSendTime"]) <= reg.now_ms() + offset
    topic = sys_topic(device, "event/property/post")
    measured = before - 60000  # measured a minute ago by the host's clock: 25 h old now
    dev.publish(topic, {"id": "5", "params": {"Temperature": {"value": 1, "time": measured}}})
    assert dev.expect_json(topic + "_reply")["code"] == 460
    hist = sys_topic(device, "event/property/history/post")
    dev.publish(hist, history(device, measured))
    assert dev.expect_json(hist + "_reply")["code"] == 200
