"""The broker's CONNECT rules (reference §1) exercised with paho-mqtt clients."""

import hashlib
import hmac
import socket
import struct

import pytest

from tools import aliyun_sign as sign

from .helpers import WAIT, credentials

SIGN_METHODS = ("hmacmd5", "hmacsha1", "hmacsha256")


def signed(device, client_id, timestamp=None, method="hmacsha256", with_client_id=True):
    params = {
        "clientId": client_id if with_client_id else None,
        "deviceName": device["deviceName"],
        "productKey": device["productKey"],
        "timestamp": timestamp,
    }
    return sign.sign(params, device["deviceSecret"], method)


def username(device):
    return device["deviceName"] + "&" + device["productKey"]


@pytest.mark.parametrize("method", SIGN_METHODS)
@pytest.mark.parametrize("upper", [False, True], ids=["lower-hex", "upper-hex"])
def test_each_signmethod_and_hex_case(cloud, clients, method, upper):
    device = cloud.device()
    client_id, user, password = credentials(device, signmethod=method, timestamp=1524448722000)
    password = password.upper() if upper else password
    assert clients(cloud, client_id, user, password).connect() == 0
    row = cloud.watcher.wait(lambda r: r["deviceName"] == device["deviceName"])
    assert row["status"] == "online" and ("sign/" + method) in row["content"]


def test_signmethod_defaults_to_hmacmd5(cloud, clients):
    device = cloud.device()
    password = signed(device, "sn1", method="hmacmd5")
    dev = clients(cloud, "sn1|securemode=3|", username(device), password)
    assert dev.connect() == 0


def test_password_covers_exactly_the_parameters_sent(cloud, clients):
    device = cloud.device()
    # timestamp sent: it must be in the content
    with_ts = signed(device, "sn1", timestamp="789")
    ext = "sn1|securemode=3,signmethod=hmacsha256,timestamp=789|"
    assert clients(cloud, ext, username(device), with_ts).connect() == 0
    # timestamp not sent: a password that includes one is wrong
    bare = "sn1|securemode=3,signmethod=hmacsha256|"
    assert clients(cloud, bare, username(device), with_ts).connect() == 4
    # the timestamp value itself is only salt: any value works when signed consistently
    other = signed(device, "sn1", timestamp="1")
    ext1 = "sn1|securemode=3,signmethod=hmacsha256,timestamp=1|"
    assert clients(cloud, ext1, username(device), other).connect() == 0
    # clientId may be left out of the content (§1.4)
    no_cid = signed(device, "sn1", with_client_id=False)
    assert clients(cloud, bare, username(device), no_cid).connect() == 0
    # but a clientId in the content must be the one before |…|
    other_cid = signed(device, "sn2")
    assert clients(cloud, bare, username(device), other_cid).connect() == 4


def test_official_doc_example_vector(cloud, clients):
    """Aliyun doc 73742 worked example: its published (upper-case) password connects (§1.4)."""
    product = cloud.registry.add_product("doc", product_key="pk")
    cloud.registry.add_device(product["productKey"], "device", "secret")
    client_id = "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    password = "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"
    assert clients(cloud, client_id, "device&pk", password).connect() == 0


def test_tls_needs_securemode_2_and_tcp_securemode_3(cloud, clients):
    device = cloud.device()
    tls = credentials(device, securemode=2)
    tcp = credentials(device, securemode=3)
    assert clients(cloud, *tls, tls=True).connect() == 0
    assert clients(cloud, *tls, tls=False).connect() == 5  # securemode=2 over TCP
    assert clients(cloud, *tcp, tls=True).connect() == 5  # the seed's securemode=3 over TLS
    assert clients(cloud, *tcp, tls=False).connect() == 0


@pytest.mark.parametrize("keepalive,rc", [(29, 5), (30, 0), (1200, 0), (1201, 5), (0, 5)])
def test_keepalive_bounds(cloud, clients, keepalive, rc):
    device = cloud.device()
    dev = clients(cloud, *credentials(device), keepalive=keepalive)
    assert dev.connect() == rc


@pytest.mark.parametrize(
    "case,rc",
    [
        ("wrong-password", 4),
        ("unknown-device", 4),
        ("username-order", 4),
        ("no-extension", 2),
        ("bad-signmethod", 2),
        ("bad-securemode", 2),
        ("malformed-extension", 2),
        ("long-client-id", 2),
        ("disabled", 5),
    ],
)
def test_refusals_use_documented_codes(cloud, clients, case, rc):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    client_id, user, password = credentials(device)
    if case == "wrong-password":
        password = "0" * len(password)
    elif case == "unknown-device":
        user = "nosuchdevice&" + pk
    elif case == "username-order":
        user = pk + "&" + dn
    elif case == "no-extension":
        client_id = dn
    elif case == "bad-signmethod":
        client_id = client_id.replace("hmacsha256", "HmacSHA256")
    elif case == "bad-securemode":
        client_id = client_id.replace("securemode=3", "securemode=7")
    elif case == "malformed-extension":
        client_id = client_id[:-1]
    elif case == "long-client-id":
        long_id = "x" * 65
        client_id = long_id + "|securemode=3,signmethod=hmacsha256|"
        content = "clientId%sdeviceName%sproductKey%s" % (long_id, dn, pk)
        key = device["deviceSecret"].encode()
        password = hmac.new(key, content.encode(), hashlib.sha256).hexdigest()
    elif case == "disabled":
        cloud.registry.set_enabled(pk, dn, False)
    mark = cloud.watcher.mark()
    assert clients(cloud, client_id, user, password).connect() == rc
    row = cloud.watcher.wait(lambda r: r["status"].startswith("rc="), since=mark)
    assert row["status"].startswith("rc=%d " % rc)
    assert password not in row["content"]  # the log never holds a password


def test_refusal_code_on_the_wire(cloud):
    """A raw MQTT 3.1.1 CONNECT gets CONNACK 20 02 00 04 for a wrong password."""
    device = cloud.device()
    client_id, user, _ = credentials(device)

    def field(text):
        data = text.encode()
        return struct.pack("!H", len(data)) + data

    body = field("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
    body += field(client_id) + field(user) + field("00")
    packet = bytes([0x10, len(body)]) + body
    with socket.create_connection(("127.0.0.1", cloud.port("mqtt")), timeout=WAIT) as conn:
        conn.sendall(packet)
        assert conn.recv(4) == b"\x20\x02\x00\x04"
        assert conn.recv(1) == b""  # and the connection is closed


@pytest.mark.parametrize("same_client_id", [True, False], ids=["same-clientId", "other-clientId"])
def test_second_connection_kicks_the_first(cloud, clients, online, same_client_id):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    first = online(device)
    assert first.subscribe("/%s/%s/user/get" % (pk, dn)) == 1
    client_id = None if same_client_id else "other-sn"
    second = clients(cloud, *credentials(device, client_id=client_id))
    assert second.connect() == 0
    first.wait_disconnected()
    assert not second.disconnected.is_set()
    row = cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "kicked")
    assert "new connection" in row["content"]
    # the new connection works: it subscribes and gets a downlink
    assert second.subscribe("/%s/%s/user/get" % (pk, dn)) == 1
    cloud.thread.call(
        cloud.thread.cloud.alink.publish_down("/%s/%s/user/get" % (pk, dn), b"hi", 1)
    )
    assert second.expect("/%s/%s/user/get" % (pk, dn))[1] == b"hi"
    assert cloud.registry.device(pk, dn)["state"] == "online"


def test_persistent_session_survives_reconnect(cloud, clients):
    """clean_session=0: subscriptions persist for the device across connections."""
    device = cloud.device()
    topic = "/%s/%s/user/get" % (device["productKey"], device["deviceName"])
    first = clients(cloud, *credentials(device), clean=False)
    assert first.connect() == 0
    assert first.subscribe(topic) == 1
    second = clients(cloud, *credentials(device), clean=False)
    assert second.connect() == 0
    assert second.session_present
    first.wait_disconnected()
    cloud.thread.call(cloud.thread.cloud.alink.publish_down(topic, b"again", 1))
    assert second.expect(topic)[1] == b"again"


def test_refused_connect_leaves_the_live_session_alone(cloud, clients, online):
    device = cloud.device()
    topic = "/%s/%s/user/get" % (device["productKey"], device["deviceName"])
    live = online(device)
    assert live.subscribe(topic) == 1
    client_id, user, _ = credentials(device)
    assert clients(cloud, client_id, user, "bad").connect() == 4
    cloud.thread.call(cloud.thread.cloud.alink.publish_down(topic, b"still here", 0))
    assert live.expect(topic)[1] == b"still here"
    assert not live.disconnected.is_set()


def test_disconnect_marks_device_offline(cloud, online):
    device = cloud.device()
    dn = device["deviceName"]
    dev = online(device)
    cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "online")
    assert cloud.registry.device(device["productKey"], dn)["state"] == "online"
    dev.close()
    cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "offline")
    assert cloud.registry.device(device["productKey"], dn)["state"] == "offline"


def test_qos2_publish_closes_the_connection(cloud, online):
    device = cloud.device()
    dev = online(device)
    dev.client.publish("/%s/%s/user/update" % (device["productKey"], device["deviceName"]), "x", 2)
    dev.wait_disconnected()


def test_silent_connection_is_dropped_after_keepalive(cloud, online, monkeypatch):
    """The server closes a session silent for 1.5 × keep-alive ([S5]); here the factor is
    shrunk so a 30 s keep-alive expires after 1 s (paho pings only after 30 s)."""
    monkeypatch.setattr(cloud.thread.cloud.broker, "keepalive_factor", 1 / 30)
    device = cloud.device()
    dev = online(device, keepalive=30)
    dev.wait_disconnected(timeout=WAIT)
    row = cloud.watcher.wait(
        lambda r: r["deviceName"] == device["deviceName"] and r["status"] == "offline"
    )
    assert row["type"] == "status"
