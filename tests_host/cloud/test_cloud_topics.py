"""Topic permissions (reference §4.1): a device uses only its own topics."""

import pytest

from tools.cloud import topics

FAILURE = 0x80  # SUBACK failure code


def own_subscribe_filters(pk, dn):
    return [
        "/%s/%s/user/get" % (pk, dn),
        "/sys/%s/%s/thing/service/property/set" % (pk, dn),
        "/sys/%s/%s/thing/service/+" % (pk, dn),
        "/sys/%s/%s/thing/event/+/post_reply" % (pk, dn),
        "/sys/%s/%s/thing/event/property/batch/post_reply" % (pk, dn),
        "/sys/%s/%s/thing/property/desired/get_reply" % (pk, dn),
        "/sys/%s/%s/thing/property/desired/delete_reply" % (pk, dn),
        "/sys/%s/%s/rrpc/request/+" % (pk, dn),
        "/ext/ntp/%s/%s/response" % (pk, dn),
        "/ota/device/upgrade/%s/%s" % (pk, dn),
        "/shadow/get/%s/%s" % (pk, dn),
        "/broadcast/%s/#" % pk,
        "/ext/rrpc/+/%s/%s/user/get" % (pk, dn),
    ]


def forbidden_subscribe_filters(pk, dn, other):
    return [
        "/%s/%s/user/update" % (pk, dn),  # publish-only class
        "/%s/%s/user/update/error" % (pk, dn),
        "/%s/%s/user/#" % (pk, dn),  # wider than any class
        "/%s/#" % pk,
        "#",
        "/sys/%s/%s/#" % (pk, dn),
        "/sys/%s/%s/thing/#" % (pk, dn),  # no documented grant: the stricter reading
        "/sys/%s/%s/thing/event/#" % (pk, dn),
        "/sys/%s/%s/thing/event/+/post" % (pk, dn),  # uplinks: publish-only
        "/%s/%s/user/get" % (pk, other),  # another device
        "/sys/%s/%s/thing/#" % (pk, other),
        "/sys/%s/+/thing/#" % pk,
        "/ext/ntp/%s/%s/request" % (pk, dn),  # publish-only
        "/ota/device/inform/%s/%s" % (pk, dn),
        "/shadow/update/%s/%s" % (pk, dn),
        "/broadcast/otherproduct/#",
        "/ext/register",
        "/%s/%s/user/custom" % (pk, dn),  # not in the registry (yet)
        "/ext/rrpc/+/%s/%s/user/update" % (pk, dn),
    ]


def test_subscribe_permissions(cloud, online):
    product = cloud.product()
    device, other = cloud.device(product), cloud.device(product)
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    for topic in own_subscribe_filters(pk, dn):
        assert dev.subscribe(topic, 1) == 1, topic
    for topic in forbidden_subscribe_filters(pk, dn, other["deviceName"]):
        assert dev.subscribe(topic, 1) == FAILURE, topic
    row = cloud.watcher.wait(lambda r: r["topic"] == "#" and r["deviceName"] == dn)
    assert row["status"] == "denied"
    assert dev.subscribe("/%s/%s/user/get" % (pk, dn), 2) == 1  # QoS 0/1 only


def test_publish_permissions(cloud, online):
    product = cloud.product()
    device, other = cloud.device(product), cloud.device(product)
    pk, dn, odn = device["productKey"], device["deviceName"], other["deviceName"]
    dev = online(device)
    allowed = [
        "/%s/%s/user/update" % (pk, dn),
        "/%s/%s/user/update/error" % (pk, dn),
        "/sys/%s/%s/thing/event/alarm/post" % (pk, dn),
        "/sys/%s/%s/thing/service/Reboot_reply" % (pk, dn),
        "/sys/%s/%s/thing/property/desired/get" % (pk, dn),
        "/sys/%s/%s/rrpc/response/42" % (pk, dn),
        "/ota/device/progress/%s/%s" % (pk, dn),
        "/shadow/update/%s/%s" % (pk, dn),
        "/ext/rrpc/7/%s/%s/user/get" % (pk, dn),
    ]
    forbidden = [
        "/%s/%s/user/get" % (pk, dn),  # subscribe-only class
        "/%s/%s/user/update" % (pk, odn),  # another device
        "/sys/%s/%s/thing/event/property/post" % (pk, odn),
        "/sys/%s/%s/thing/service/Reboot" % (pk, dn),  # a call, not a reply
        "/%s/%s/user/custom" % (pk, dn),
        "/ext/ntp/%s/%s/response" % (pk, dn),
        "/broadcast/%s/all" % pk,
        "/other/topic",
    ]
    mark = cloud.watcher.mark()
    for topic in forbidden + allowed:  # QoS 0: 14 messages stay within the 30/s budget
        dev.publish(topic, "x", 0)
    for topic in forbidden:
        row = cloud.watcher.wait(lambda r, t=topic: r["type"] == "up" and r["topic"] == t, mark)
        assert row["status"] == "denied", topic
    for topic in allowed:
        row = cloud.watcher.wait(lambda r, t=topic: r["type"] == "up" and r["topic"] == t, mark)
        assert row["status"] not in ("denied", "throttled"), topic
    assert not dev.disconnected.is_set()  # a forbidden publish is dropped, not fatal


def test_custom_topic_classes_from_registry(cloud, online):
    product = cloud.product()
    pk = product["productKey"]
    cloud.registry.add_topic_class(pk, "cmd", "sub")
    cloud.registry.add_topic_class(pk, "data", "pub")
    cloud.registry.add_topic_class(pk, "chat", "all")
    cloud.registry.add_topic_class(pk, "cfg/+", "sub")
    device = cloud.device(product)
    dn = device["deviceName"]
    dev = online(device)
    assert dev.subscribe("/%s/%s/user/cmd" % (pk, dn)) == 1
    assert dev.subscribe("/%s/%s/user/data" % (pk, dn)) == FAILURE
    assert dev.subscribe("/%s/%s/user/chat" % (pk, dn)) == 1
    assert dev.subscribe("/%s/%s/user/cfg/+" % (pk, dn)) == 1
    assert dev.subscribe("/%s/%s/user/cfg/net" % (pk, dn)) == 1
    assert dev.subscribe("/%s/%s/user/cfg/net/x" % (pk, dn)) == FAILURE
    mark = cloud.watcher.mark()
    for name in ("data", "chat", "cmd"):
        dev.publish("/%s/%s/user/%s" % (pk, dn, name), "x", 1)
    rows = [
        cloud.watcher.wait(lambda r, n=name: r["topic"].endswith("/user/" + n), mark)
        for name in ("data", "chat", "cmd")
    ]
    assert [r["status"] for r in rows] == ["200", "200", "denied"]


def test_uplinks_do_not_loop_back(cloud, online):
    """A device's own uplink is handled by the cloud, not echoed to its subscriptions."""
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    assert dev.subscribe("/sys/%s/%s/thing/event/+/post_reply" % (pk, dn)) == 1
    post = {"id": "1", "version": "1.0", "params": {"A": 1}}
    dev.publish("/sys/%s/%s/thing/event/property/post" % (pk, dn), post)
    topic, _ = dev.expect()  # the first message back is the reply, not the echo
    assert topic.endswith("/thing/event/property/post_reply")


@pytest.mark.parametrize(
    "topic,pattern,expected",
    [
        ("/a/b/c", "/a/b/c", True),
        ("/a/b/c", "/a/+/c", True),
        ("/a/b/c", "/a/#", True),
        ("/a/b", "/a/b/c", False),
        ("/a/b/c/d", "/a/+/c", False),
    ],
)
def test_matches(topic, pattern, expected):
    assert topics.matches(topic, pattern) is expected


@pytest.mark.parametrize(
    "subscription,pattern,expected",
    [
        ("/a/b/#", "/a/#", True),
        ("/a/+/c", "/a/#", True),
        ("/a/+", "/a/+", True),
        ("/a/#", "/a/+", False),
        ("/a/+", "/a/b", False),
        ("/a/#", "/a/b/#", False),
    ],
)
def test_within(subscription, pattern, expected):
    assert topics.within(subscription, pattern) is expected


def test_topic_owner():
    known = {"pk1"}
    assert topics.topic_owner("/pk1/dn/user/get", known) == ("pk1", "dn")
    assert topics.topic_owner("/sys/pk1/dn/thing/service/property/set", known) == ("pk1", "dn")
    assert topics.topic_owner("/ota/device/upgrade/pk1/dn", known) == ("pk1", "dn")
    assert topics.topic_owner("/shadow/get/pk1/dn", known) == ("pk1", "dn")
    assert topics.topic_owner("/ext/ntp/pk1/dn/response", known) == ("pk1", "dn")
    assert topics.topic_owner("/ext/rrpc/9/pk1/dn/user/get", known) == ("pk1", "dn")
    assert topics.topic_owner("/pk2/dn/user/get", known) == (None, None)


def test_product_broadcast_reaches_every_device(cloud, online):
    product = cloud.product()
    pk = product["productKey"]
    devices = [online(cloud.device(product)) for _ in range(2)]
    for dev in devices:
        assert dev.subscribe("/broadcast/%s/#" % pk) == 1
    status = cloud.thread.call(
        cloud.thread.cloud.alink.publish_down("/broadcast/%s/news" % pk, b"all", 0)
    )
    assert status == 200
    for dev in devices:
        assert dev.expect("/broadcast/%s/news" % pk)[1] == b"all"
    assert topics.topic_owner("/broadcast/%s/news" % pk, {pk}) == (pk, None)


def test_oversized_publish_is_dropped(cloud, online):
    device = cloud.device()
    topic = "/%s/%s/user/update" % (device["productKey"], device["deviceName"])
    dev = online(device)
    mark = cloud.watcher.mark()
    dev.publish(topic, b"x" * (256 * 1024 + 1), 0)  # dropped unread: a QoS 1 gets no PUBACK
    row = cloud.watcher.wait(
        lambda r: r["deviceName"] == device["deviceName"] and r["type"] == "up", mark
    )
    assert row["status"] == "denied" and "262145 bytes" in row["content"]
    dev.publish(topic, b"x" * (256 * 1024))
    row = cloud.watcher.wait(lambda r: r["topic"] == topic and r["status"] == "200", mark)
    assert len(row["content"]) == 256 * 1024
    assert not dev.disconnected.is_set()
