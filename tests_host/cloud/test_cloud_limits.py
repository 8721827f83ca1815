"""The platform's limits (tools.cloud.limits; reference §1.5, §4.1, §4.9), each tried with an
independent client: paho for what a client library sends, raw sockets for what it will not."""

import socket

import pytest

from tools.cloud.limits import Limits
from tools.cloud.server import CloudThread

from .helpers import (
    WAIT,
    Cloud,
    Device,
    credentials,
    packet,
    raw_connect,
    raw_socket,
    read_until_closed,
)

FAILURE = 0x80
CONNACK_UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"


# CONNECT rate ---------------------------------------------------------------------------------


def connect_once(cloud, clients, device, password=None) -> int:
    client_id, username, signed = credentials(device)
    dev = clients(cloud, client_id, username, password or signed)
    rc = dev.connect()
    dev.close()
    return rc


def test_sixth_connect_of_a_minute_is_refused_with_connack_3(cloud, clients):
    device, other = cloud.device(), cloud.device()
    mark = cloud.watcher.mark()
    assert [connect_once(cloud, clients, device) for _ in range(5)] == [0] * 5
    assert connect_once(cloud, clients, device) == 3  # server unavailable, then closed
    row = cloud.watcher.wait(lambda r: r["status"].startswith("rc=3"), mark)
    assert "more than 5 CONNECTs" in row["content"] and row["deviceName"] == device["deviceName"]
    assert connect_once(cloud, clients, other) == 0  # per device: others are not affected


def test_refused_connects_count_towards_the_rate(cloud, clients):
    """A device retrying with a wrong password uses up its minute like any CONNECT."""
    device = cloud.device()
    wrong = [connect_once(cloud, clients, device, password="0" * 64) for _ in range(5)]
    assert wrong == [4] * 5
    assert connect_once(cloud, clients, device) == 3  # right password, but over the rate


# SUBSCRIBE ------------------------------------------------------------------------------------


def own_filters(device, count, start=0):
    pk, dn = device["productKey"], device["deviceName"]
    return ["/sys/%s/%s/thing/service/s%d" % (pk, dn, i) for i in range(start, start + count)]


def test_at_most_8_filters_per_subscribe(cloud, online):
    device = cloud.device()
    dev = online(device)
    codes = dev.subscribe_many(own_filters(device, 10))
    assert codes == [1] * 8 + [FAILURE] * 2
    row = cloud.watcher.wait(lambda r: r["topic"] == own_filters(device, 1, 8)[0])
    assert row["status"] == "denied" and "more than 8 filters" in row["content"]


def test_at_most_100_subscriptions_per_device(cloud, online):
    device = cloud.device()
    dev = online(device)
    granted = []
    for start in range(0, 100, 8):
        granted += dev.subscribe_many(own_filters(device, min(8, 100 - start), start))
    assert granted == [1] * 100
    assert dev.subscribe(own_filters(device, 1, 100)[0]) == FAILURE  # the 101st
    assert dev.subscribe(own_filters(device, 1, 0)[0]) == 1  # held already: not a new one
    dev.unsubscribe(own_filters(device, 1, 0)[0])
    assert dev.subscribe(own_filters(device, 1, 100)[0]) == 1  # room again after UNSUBSCRIBE
    assert not dev.disconnected.is_set()


# first packet and protocol level --------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_cloud(tmp_path_factory):
    """A server with a 1 s CONNECT timeout, so a test waits for it without waiting 10 s."""
    state_dir = tmp_path_factory.mktemp("aliyun-local-quick")
    with CloudThread(state_dir, limits=Limits(connect_timeout_s=1.0)) as thread:
        handle = Cloud(thread, state_dir)
        yield handle
        handle.registry.close()


def test_silent_connections_are_closed_after_the_connect_timeout(quick_cloud):
    socks = [raw_socket(quick_cloud) for _ in range(20)]
    try:
        assert [read_until_closed(s) for s in socks] == [b""] * 20  # closed, no answer
    finally:
        for sock in socks:
            sock.close()
    row = quick_cloud.watcher.wait(lambda r: r["status"] == "closed")
    assert "no CONNECT within 1 s" in row["content"]


def test_silent_tls_connections_are_closed_too(quick_cloud):
    """No ClientHello within the CONNECT timeout: the TLS listener hangs up as well."""
    socks = [socket.create_connection(("127.0.0.1", quick_cloud.port("mqtts")), WAIT)]
    socks += [raw_socket(quick_cloud, tls=True)]  # handshake done, then silent
    try:
        assert [read_until_closed(s) for s in socks] == [b""] * 2
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    "first",
    [
        packet(0x30, b"\x00\x03a/b" + b"hello"),  # PUBLISH
        packet(0x82, b"\x00\x01\x00\x03a/b\x01"),  # SUBSCRIBE
        packet(0xC0, b""),  # PINGREQ
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # garbage
        raw_connect("c", name="MQTX"),  # CONNECT of an unknown protocol
    ],
    ids=["publish", "subscribe", "pingreq", "http", "unknown-protocol"],
)
def test_anything_but_connect_first_is_closed_at_once(cloud, first):
    """MQTT-3.1.0-1: the first packet must be CONNECT. The server closes without waiting for
    the CONNECT timeout (the socket timeout of this test is shorter than it)."""
    mark = cloud.watcher.mark()
    with raw_socket(cloud) as sock:
        sock.settimeout(5)
        sock.sendall(first)
        assert read_until_closed(sock) == b""
    cloud.watcher.wait(lambda r: r["status"] == "closed", mark)


@pytest.mark.parametrize(
    "name, level", [("MQIsdp", 3), ("MQTT", 5), ("MQTT", 3), ("MQTT", 6)], ids=str
)
def test_unsupported_protocol_levels_get_connack_1_and_a_close(cloud, name, level):
    device = cloud.device()
    client_id, username, password = credentials(device)
    with raw_socket(cloud) as sock:
        sock.sendall(raw_connect(client_id, username, password, name=name, level=level))
        assert read_until_closed(sock) == CONNACK_UNACCEPTABLE_PROTOCOL
    assert cloud.registry.device(device["productKey"], device["deviceName"])["state"] != "online"


def test_paho_mqtt_3_1_gets_return_code_1(cloud):
    import paho.mqtt.client as mqtt

    device = cloud.device()
    client_id, username, password = credentials(device)
    dev = Device(cloud, client_id, username, password)
    dev.client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv31
    )
    dev.client.username_pw_set(username, password)
    dev.client.on_connect = dev._on_connect
    try:
        assert dev.connect() == 1
    finally:
        dev.close()


def test_a_valid_raw_connect_still_works(cloud):
    """The pre-read CONNECT reaches amqtt intact: CONNACK 0, then a PINGREQ is answered."""
    device = cloud.device()
    client_id, username, password = credentials(device)
    with raw_socket(cloud) as sock:
        sock.sendall(raw_connect(client_id, username, password))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        sock.sendall(packet(0xC0, b""))
        assert sock.recv(2) == b"\xd0\x00"


# uplink rate and payload size -----------------------------------------------------------------


def test_qos0_over_30_per_second_is_dropped_and_logged(cloud, online):
    device = cloud.device()
    topic = "/%s/%s/user/update" % (device["productKey"], device["deviceName"])
    dev = online(device)
    mark = cloud.watcher.mark()
    for i in range(100):
        dev.publish(topic, "m%d" % i, 0)
    rows = cloud.watcher.count(lambda r: r["type"] == "up" and r["topic"] == topic, 100, mark)
    accepted = [r for r in rows if r["status"] == "200"]
    throttled = [r for r in rows if r["status"] == "throttled"]
    assert len(accepted) + len(throttled) == 100
    assert len(accepted) >= 30  # the first 30 of any second pass
    assert throttled and "over 30 QoS 0 messages/s" in throttled[0]["content"]
    assert [r["content"] for r in accepted[:30]] == ["m%d" % i for i in range(30)]
    assert not dev.disconnected.is_set()  # no feedback over MQTT: the connection stays


def test_qos1_over_10_per_second_is_acknowledged_but_dropped(cloud, online):
    device = cloud.device()
    topic = "/%s/%s/user/update" % (device["productKey"], device["deviceName"])
    dev = online(device)
    mark = cloud.watcher.mark()
    infos = [dev.client.publish(topic, "q%d" % i, 1) for i in range(40)]
    for info in infos:
        info.wait_for_publish(WAIT)
        assert info.is_published()  # PUBACK for every one (MQTT 3.1.1 has no negative one)
    rows = cloud.watcher.count(lambda r: r["type"] == "up" and r["topic"] == topic, 40, mark)
    accepted = [r for r in rows if r["status"] == "200"]
    assert 10 <= len(accepted) < 40
    assert sum(r["status"] == "throttled" for r in rows) == 40 - len(accepted)


def test_serve_test_knob_relaxes_only_the_connect_rate(tmp_path, clients):
    """``--test-connects-per-minute`` (for fault-injection stress harnesses) moves that one
    limit; the default stays the platform's 5."""
    import json
    import signal
    import subprocess

    from tools.cloud.registry import DB_NAME, Registry

    from .helpers import Endpoint
    from .test_cloud_cli import EXE, Lines

    state = tmp_path / "state"
    registry = Registry(state / DB_NAME)
    device = registry.add_device(registry.add_product("knob")["productKey"], "knob0001")
    registry.close()
    serve = subprocess.Popen(
        [EXE, "serve", "--quiet", "--state-dir", str(state), "--test-connects-per-minute", "7"]
        + ["--mqtt-port", "0", "--mqtts-port", "0", "--https-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = Endpoint(json.loads(Lines(serve).next()))
        codes = [connect_once(endpoint, clients, device) for _ in range(8)]
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(WAIT) == 0
        serve.stdout.close()
    assert codes == [0] * 7 + [3]
