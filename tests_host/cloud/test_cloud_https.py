"""iot-auth over HTTPS (reference §2, §3.1) and the MQTT login with its token."""

import http.client
import json
import urllib.parse

import pytest

from tools import aliyun_sign as sign
from tools.cloud import registry as reg

from .helpers import WAIT

FORM = "application/x-www-form-urlencoded"
WEEK_MS = 7 * 24 * 3600 * 1000


def post(cloud, path, fields, content_type=FORM, host="127.0.0.1"):
    body = fields if isinstance(fields, str) else urllib.parse.urlencode(fields)
    conn = http.client.HTTPSConnection(
        host, cloud.port("https"), context=cloud.ssl_context(), timeout=WAIT
    )
    try:
        conn.request("POST", path, body.encode(), {"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def auth_fields(device, method=None, timestamp=None, client_id=None, **extra):
    cid = client_id or device["deviceName"]
    params = {
        "clientId": cid,
        "deviceName": device["deviceName"],
        "productKey": device["productKey"],
        "timestamp": timestamp,
    }
    fields = {
        "productKey": device["productKey"],
        "deviceName": device["deviceName"],
        "clientId": cid,
        "sign": sign.sign(params, device["deviceSecret"], method or "hmacmd5"),
    }
    if method:
        fields["signmethod"] = method
    if timestamp:
        fields["timestamp"] = timestamp
    fields.update(extra)
    return fields


def test_seed_request_body_authenticates(cloud):
    """The seed's exact form (md5 by default, no timestamp) with the openLuat spelling of the
    secret gets the documented success JSON."""
    product = cloud.registry.add_product("seed", product_key="b0FMK1Ga5cp")
    cloud.registry.add_device(
        product["productKey"], "862991419835241", "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"
    )
    body = (
        "productKey=b0FMK1Ga5cp&sign=1eb96463ad2345b6c261e2f7cc78a7a0"
        "&clientId=862991419835241&deviceName=862991419835241"
    )
    assert len(body) == 112  # the seed's AT+HTTPDATA=112
    status, reply = post(cloud, "/auth/devicename", body)
    assert status == 200
    assert set(reply) == {"code", "data", "message"}
    assert reply["code"] == 200 and reply["message"] == "success"
    assert set(reply["data"]) == {"iotId", "iotToken"}
    # the seed text's mistyped secret (I/l swapped) gives a sign the server rejects
    wrong = body.replace("1eb96463ad2345b6c261e2f7cc78a7a0", "93a4430caf5304c3442061eee892329b")
    assert post(cloud, "/auth/devicename", wrong)[1] == {
        "code": 401,
        "message": "request auth error",
    }


def test_token_login_over_tls(cloud, clients):
    device = cloud.device()
    fields = auth_fields(
        device, "hmacsha256", timestamp="2524608000000", resources="mqtt", version="default"
    )
    status, reply = post(cloud, "/auth/devicename", fields, host="localhost")
    assert status == 200 and reply["code"] == 200
    data = reply["data"]
    host = "%s.iot-as-mqtt.cn-shanghai.aliyuncs.com" % device["productKey"]
    assert data["resources"] == {"mqtt": {"host": host, "port": 1883}}
    row = cloud.registry.db.execute(
        "SELECT expires_ms FROM tokens WHERE iot_token = ?", (data["iotToken"],)
    ).fetchone()
    assert abs(row["expires_ms"] - reg.now_ms() - WEEK_MS) < 60_000  # valid 7 days
    # username = iotId, password = iotToken, any clientId, over TLS (§2)
    dev = clients(cloud, device["deviceName"], data["iotId"], data["iotToken"], tls=True)
    assert dev.connect() == 0
    c_sdk = "%s.%s|securemode=-1,signmethod=hmacsha256|" % (device["productKey"], "x")
    assert clients(cloud, c_sdk, data["iotId"], data["iotToken"], tls=True).connect() == 0
    # over plain TCP the token login is refused; a wrong token gets CONNACK 3
    assert clients(cloud, "sn", data["iotId"], data["iotToken"]).connect() == 5
    assert clients(cloud, "sn", data["iotId"], "0" * 32, tls=True).connect() == 3


def test_expired_token_is_refused(cloud, clients):
    device = cloud.device()
    iot_id, token = cloud.registry.issue_token(device["productKey"], device["deviceName"], -1)
    assert clients(cloud, "sn", iot_id, token, tls=True).connect() == 3


@pytest.mark.parametrize(
    "case,code",
    [
        ("wrong-sign", 401),
        ("upper-hex", 200),
        ("missing-clientId", 460),
        ("missing-sign", 460),
        ("bad-signmethod", 460),
        ("long-clientId", 460),
        ("bad-content-type", 460),
        ("unknown-device", 5001),
        ("unknown-product", 5001),
        ("disabled", 6204),
        ("no-secret", 6200),
    ],
)
def test_auth_errors(cloud, case, code):
    device = cloud.device()
    fields = auth_fields(device, "hmacsha1")
    content_type = FORM
    if case == "wrong-sign":
        fields["sign"] = "0" * 40
    elif case == "upper-hex":
        fields["sign"] = fields["sign"].upper()
    elif case == "missing-clientId":
        del fields["clientId"]
    elif case == "missing-sign":
        del fields["sign"]
    elif case == "bad-signmethod":
        fields["signmethod"] = "hmacsha512"
    elif case == "long-clientId":
        fields["clientId"] = "c" * 65
    elif case == "bad-content-type":
        content_type = "application/json"
    elif case == "unknown-device":
        fields["deviceName"] = "nosuchdevice"
    elif case == "unknown-product":
        fields["productKey"] = "nosuchproduct"
    elif case == "disabled":
        cloud.registry.set_enabled(device["productKey"], device["deviceName"], False)
    elif case == "no-secret":
        cloud.registry.db.execute(
            "UPDATE devices SET device_secret = NULL WHERE device_name = ?",
            (device["deviceName"],),
        )
    status, reply = post(cloud, "/auth/devicename", fields, content_type)
    assert status == 200
    assert reply["code"] == code
    if code != 200:
        assert set(reply) == {"code", "message"} and reply["message"]


def test_unexpected_failure_is_500(cloud, monkeypatch):
    device = cloud.device()

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cloud.thread.cloud.registry, "issue_token", broken)
    status, reply = post(cloud, "/auth/devicename", auth_fields(device))
    assert (status, reply) == (200, {"code": 500, "message": "unknow error"})


def test_unknown_path_and_method(cloud):
    status, reply = post(cloud, "/auth/nothing", {})
    assert status == 404
    conn = http.client.HTTPSConnection(
        "127.0.0.1", cloud.port("https"), context=cloud.ssl_context(), timeout=WAIT
    )
    conn.request("GET", "/auth/devicename")
    assert conn.getresponse().status == 405
    conn.close()


def register_fields(product, dn, method="hmacsha256", random="8Ygb7ULYh53B6OA"):
    content = sign.sign_content(
        {"deviceName": dn, "productKey": product["productKey"], "random": random},
        ("deviceName", "productKey", "random"),
    )
    return {
        "productKey": product["productKey"],
        "deviceName": dn,
        "random": random,
        "sign": sign.hmac_sign(content, product["productSecret"], method.lower()),
        "signMethod": method,
    }


@pytest.mark.parametrize("method", ["hmacsha256", "HmacMD5", "hmacsha1"])
def test_https_dynamic_registration(cloud, clients, method):
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    status, reply = post(
        cloud, "/auth/register/device", register_fields(product, device["deviceName"], method)
    )
    assert status == 200 and reply["code"] == 200 and reply["message"] == "success"
    assert reply["data"] == {
        "productKey": product["productKey"],
        "deviceName": device["deviceName"],
        "deviceSecret": device["deviceSecret"],
    }
    # the log has the request but not the secret
    row = cloud.watcher.wait(
        lambda r: r["topic"] == "/auth/register/device" and r["deviceName"] == device["deviceName"]
    )
    assert device["deviceSecret"] not in row["content"] and row["status"] == "200"


def test_https_dynamic_registration_errors(cloud, online):
    closed = cloud.product(dynamic_register=False)
    device = cloud.device(closed)
    path = "/auth/register/device"
    assert post(cloud, path, register_fields(closed, device["deviceName"]))[1]["code"] == 6200
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    dn = device["deviceName"]
    bad = dict(register_fields(product, dn), sign="00" * 32)
    assert post(cloud, path, bad)[1]["code"] == 401
    assert post(cloud, path, register_fields(product, "notcreated"))[1]["code"] == 5001
    missing = register_fields(product, dn)
    del missing["random"]
    assert post(cloud, path, missing)[1]["code"] == 460
    online(device)  # activated: registering again needs a reset on the platform (§3)
    cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "online")
    assert post(cloud, path, register_fields(product, dn))[1]["code"] == 6200
