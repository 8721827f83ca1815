"""Alink behaviour (reference §4.2–§4.6): replies, stored properties, NTP, property set."""

import json
import threading

import pytest

from tools.cloud import registry as reg
from tools.cloud.alink import CloudError

from .helpers import sys_topic


@pytest.fixture
def thing(cloud, online):
    """A connected device subscribed to its thing topics."""
    device = cloud.device()
    dev = online(device)
    for suffix in ("event/+/post_reply", "service/+", "service/property/set"):
        assert dev.subscribe(sys_topic(device, suffix)) == 1  # thing/# is refused
    return device, dev


def test_property_post_reply_and_storage(cloud, thing):
    device, dev = thing
    measured = reg.now_ms() - 3600000  # a device-supplied time must be within 24 h
    post = {
        "id": "123",
        "version": "1.0",
        "sys": {"ack": 1},
        "params": {"Power": {"value": "on", "time": measured}, "WF": 23.6},
        "method": "thing.event.property.post",
    }
    dev.publish(sys_topic(device, "event/property/post"), post)
    reply = dev.expect_json(sys_topic(device, "event/property/post_reply"))
    assert reply == {
        "code": 200,
        "data": {},
        "id": "123",
        "message": "success",
        "method": "thing.event.property.post",
        "version": "1.0",
    }
    props = cloud.registry.device(device["productKey"], device["deviceName"])["properties"]
    assert props["Power"] == {"value": "on", "time": measured}
    assert props["WF"]["value"] == 23.6
    # a later post updates only what it names
    dev.publish(sys_topic(device, "event/property/post"), {"id": "124", "params": {"WF": 24.0}})
    assert dev.expect_json(sys_topic(device, "event/property/post_reply"))["id"] == "124"
    props = cloud.registry.device(device["productKey"], device["deviceName"])["properties"]
    assert props["WF"]["value"] == 24.0 and props["Power"]["value"] == "on"


@pytest.mark.parametrize(
    "payload,msg_id",
    [
        ("{not json", ""),
        ('["a list"]', ""),
        ('{"params": {"A": 1}}', ""),
        ('{"id": "x1", "params": {"A": 1}}', ""),
        ('{"id": "5", "params": [1, 2]}', "5"),
        ('{"id": "6", "params": {}}', "6"),
        ('{"id": "7", "version": "2.0", "params": {"A": 1}}', "7"),
        ('{"id": "8", "method": "thing.event.alarm.post", "params": {"A": 1}}', "8"),
    ],
)
def test_property_post_errors_reply_460(cloud, thing, payload, msg_id):
    device, dev = thing
    dev.publish(sys_topic(device, "event/property/post"), payload)
    reply = dev.expect_json(sys_topic(device, "event/property/post_reply"))
    assert reply["code"] == 460 and reply["id"] == msg_id
    assert reply["method"] == "thing.event.property.post"
    assert cloud.registry.device(device["productKey"], device["deviceName"])["properties"] == {}


def test_ack_zero_means_no_reply(cloud, thing):
    device, dev = thing
    topic = sys_topic(device, "event/property/post")
    dev.publish(topic, {"id": "1", "sys": {"ack": 0}, "params": {"A": 1}})
    dev.publish(topic, {"id": "2", "params": {"A": 2}})
    # replies go out in order: the first reply to arrive answers the second post
    assert dev.expect_json(topic + "_reply")["id"] == "2"


def test_event_post_reply_and_log(cloud, thing):
    device, dev = thing
    topic = sys_topic(device, "event/alarm/post")
    dev.publish(topic, {"id": "9", "params": {"value": {"level": 3}, "time": 1}})
    reply = dev.expect_json(topic + "_reply")
    assert reply["code"] == 200 and reply["method"] == "thing.event.alarm.post"
    row = cloud.watcher.wait(lambda r: r["topic"] == topic)
    assert row["type"] == "up" and '"level": 3' in row["content"]


def test_ntp(cloud, online):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    assert dev.subscribe("/ext/ntp/%s/%s/response" % (pk, dn)) == 1
    before = reg.now_ms()
    dev.publish("/ext/ntp/%s/%s/request" % (pk, dn), {"deviceSendTime": "1571724098000"}, 0)
    body = dev.expect_json("/ext/ntp/%s/%s/response" % (pk, dn))
    after = reg.now_ms()
    assert body["deviceSendTime"] == "1571724098000"
    recv, send = int(body["serverRecvTime"]), int(body["serverSendTime"])
    assert before <= recv <= send <= after
    # deviceSendTime may also be a number (§4.5)
    dev.publish("/ext/ntp/%s/%s/request" % (pk, dn), {"deviceSendTime": 100}, 0)
    assert dev.expect_json("/ext/ntp/%s/%s/response" % (pk, dn))["deviceSendTime"] == "100"


def test_ota_version_report_is_stored(cloud, online):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    topic = "/ota/device/inform/%s/%s" % (pk, dn)
    dev.publish(topic, {"id": "1", "params": {"version": "1.0.1", "module": "MCU"}})
    cloud.watcher.wait(lambda r: r["topic"] == topic and r["status"] == "200")
    assert cloud.registry.device(pk, dn)["firmwareVersion"] == "1.0.1"


def answer_property_sets(dev, device, code=200):
    """Reply to every property set the device receives (as firmware does)."""
    set_topic = sys_topic(device, "service/property/set")
    seen = []

    def on_message(client, userdata, message):
        if message.topic == set_topic:
            request = json.loads(message.payload)
            seen.append(request)
            reply = {"id": request["id"], "code": code, "data": {}}
            client.publish(set_topic + "_reply", json.dumps(reply), 0)

    dev.client.on_message = on_message
    return seen


def test_set_property_waits_for_set_reply(cloud, thing):
    device, dev = thing
    seen = answer_property_sets(dev, device)
    pk, dn = device["productKey"], device["deviceName"]
    reply = cloud.thread.call(cloud.thread.cloud.alink.set_property(pk, dn, {"Power": 1}, 5))
    assert reply["code"] == 200
    assert seen[0]["method"] == "thing.service.property.set"
    assert seen[0]["params"] == {"Power": 1} and seen[0]["version"] == "1.0"
    assert reply["id"] == seen[0]["id"]
    row = cloud.watcher.wait(
        lambda r: r["topic"] == sys_topic(device, "service/property/set_reply")
    )
    assert row["type"] == "up" and row["status"] == "200"


def test_set_property_offline_and_timeout(cloud, thing):
    device, dev = thing
    pk, dn = device["productKey"], device["deviceName"]
    alink = cloud.thread.cloud.alink
    with pytest.raises(CloudError, match="no set_reply"):
        cloud.thread.call(alink.set_property(pk, dn, {"Power": 1}, 0.2))
    dev.close()
    cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "offline")
    with pytest.raises(CloudError, match="offline"):
        cloud.thread.call(alink.set_property(pk, dn, {"Power": 1}, 1))


def test_downlink_reaches_subscriber(cloud, online):
    device = cloud.device()
    topic = "/%s/%s/user/get" % (device["productKey"], device["deviceName"])
    dev = online(device)
    assert dev.subscribe(topic, 1) == 1
    got = threading.Event()
    dev.client.on_message = lambda c, u, m: got.set() if m.payload == b"hello" else None
    status = cloud.thread.call(cloud.thread.cloud.alink.publish_down(topic, b"hello", 1))
    assert status == 200
    assert got.wait(5)
