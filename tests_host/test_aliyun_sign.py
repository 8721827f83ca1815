"""tools/aliyun_sign.py: the host's full, validating signing API (CPython only).

The same checks the device's lib/aliyun had before its host-only parts moved here: timestamps,
securemode, region/port/keep-alive checks, signs checked against the flow's parameter set,
the HTTPS form with every option, and dynamic registration over MQTT; plus all 23 public
vectors through this API.
"""

import ptest_sign_vectors
from ptest import raises

from aliyun import auth as device_auth
from aliyun import digest
from aliyun import sign as device_sign
from tools import aliyun_sign as sign
from tools.aliyun_sign import AuthError, ReplyError, SignError, mqtt_credentials

auth = dynreg = sign
PK, DN, DS = "b0FMK1Ga5cp", "862991419835241", "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"
SEED_PARAMS = {
    "clientId": "862991419835241",
    "deviceName": "862991419835241",
    "productKey": "b0FMK1Ga5cp",
}
SEED_SECRET = "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"  # as spelled by openLuat (BRIEF §6)
SEED_SIGN = "1eb96463ad2345b6c261e2f7cc78a7a0"


def _fields(body):
    return [pair.split("=", 1) for pair in body.split("&")]


def test_all_23_vectors_through_the_host_api():
    ptest_sign_vectors.sign = sign
    assert ptest_sign_vectors.run_all_vectors() == []


def test_host_and_device_sign_agree():
    params = dict(SEED_PARAMS, timestamp="1700000000000")
    for method in sign.SIGN_METHODS:
        assert sign.sign(params, SEED_SECRET, method) == device_sign.sign(
            params, SEED_SECRET, method
        )
    assert sign.auth_form(PK, DN, DS) == device_auth.auth_form(PK, DN, DS)
    assert sign.register_form("pk", "dn", "ps", "r") == dynreg.register_form("pk", "dn", "ps", "r")
    assert mqtt_credentials(PK, DN, DS) == device_sign.mqtt_credentials(PK, DN, DS)


def test_sign_contract():
    assert sign.SIGN_METHODS == ("hmacmd5", "hmacsha1", "hmacsha256")
    assert sign.sign(SEED_PARAMS, SEED_SECRET, "hmacmd5") == SEED_SIGN
    # Key order in the dict is irrelevant, None counts as not sent, default is hmacsha256.
    reordered = {
        "productKey": "pk",
        "timestamp": "789",
        "deviceName": "device",
        "clientId": "12345",
    }
    assert sign.sign(reordered, "secret", "hmacsha1") == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    with_none = dict(SEED_PARAMS, timestamp=None)
    assert sign.sign(with_none, SEED_SECRET, "hmacmd5") == SEED_SIGN
    assert sign.sign(SEED_PARAMS, SEED_SECRET) == digest.hmac_hex(
        "sha256", SEED_SECRET.encode(), sign.sign_content(SEED_PARAMS).encode()
    )
    assert sign.sign_content(reordered) == "clientId12345deviceNamedeviceproductKeypktimestamp789"
    assert sign.sign(dict(reordered, timestamp=789), "secret", "hmacsha1") == sign.sign(
        reordered, "secret", "hmacsha1"
    )


def _field(call):
    with raises(SignError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    return caught.value.field


def test_sign_rejects_bad_input_naming_the_field():
    p = SEED_PARAMS
    assert _field(lambda: sign.sign(p, "")) == "secret"
    assert _field(lambda: sign.sign(p, "s\u00e9cret")) == "secret"
    assert _field(lambda: sign.sign(p, "secret ")) == "secret"
    assert _field(lambda: sign.sign(p, "s", "hmacsha512")) == "signmethod"
    assert _field(lambda: sign.sign(p, "s", "HmacMD5")) == "signmethod"
    assert _field(lambda: sign.sign(dict(p, deviceName="d\u00e9v"), "s")) == "deviceName"
    assert _field(lambda: sign.sign(dict(p, productKey=""), "s")) == "productKey"
    assert _field(lambda: sign.sign({"deviceName": "d"}, "s")) == "productKey"
    assert _field(lambda: sign.sign(dict(p, random="r"), "s")) == "random"
    assert _field(lambda: sign.sign(dict(p, timestamp="12a"), "s")) == "timestamp"
    assert _field(lambda: sign.sign(dict(p, clientId="c" * 65), "s")) == "clientId"
    assert _field(lambda: sign.sign(dict(p, clientId="a|b"), "s")) == "clientId"
    assert len(sign.sign(dict(p, clientId="c" * 64), "s")) == 64
    with raises(SignError, match="deviceName: must be printable ASCII without spaces"):
        sign.sign(dict(p, deviceName="\u8bbe\u5907"), "s")


def test_mqtt_credentials_defaults():
    c = mqtt_credentials("a1bCdEfGhIj", "dev-01", "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3t01")
    assert c.client_id == "dev-01|securemode=2,signmethod=hmacsha256|"
    assert c.username == "dev-01&a1bCdEfGhIj"
    assert c.password == "18416c8be7b0b0b409cac7a87bc7c46b31c8f04db7f34f638201a27ace904f42"
    assert c.host == "a1bCdEfGhIj.iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert (c.port, c.tls, c.keepalive) == (1883, True, 300)
    assert tuple(c) == (c.client_id, c.username, c.password, c.host, 1883, True, 300)


def test_mqtt_credentials_options():
    c = mqtt_credentials(
        "pk", "device", "secret", "12345", 789, "hmacsha1", 3, region="ap-southeast-1"
    )
    assert c.client_id == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert c.password == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert c.host == "pk.iot-as-mqtt.ap-southeast-1.aliyuncs.com"
    assert (c.port, c.tls) == (1883, False)
    inst = mqtt_credentials(
        "pk", "dev", "s", host="iot-06z00x.mqtt.iothub.aliyuncs.com", port=8883
    )
    assert (inst.host, inst.port, inst.tls) == ("iot-06z00x.mqtt.iothub.aliyuncs.com", 8883, True)
    unsigned_cid = mqtt_credentials("pk", "dev", "s", "cid", sign_client_id=False)
    assert unsigned_cid.password == sign.sign({"deviceName": "dev", "productKey": "pk"}, "s")
    assert mqtt_credentials("pk", "dev", "s", keepalive=30).keepalive == 30
    assert mqtt_credentials("pk", "dev", "s", keepalive=1200).keepalive == 1200


def test_mqtt_credentials_reject_bad_input():
    def creds(**kw):
        return lambda: mqtt_credentials("pk", "dev", "s", **kw)

    assert _field(lambda: mqtt_credentials("pk", "dev", "")) == "deviceSecret"
    assert _field(lambda: mqtt_credentials("", "dev", "s")) == "productKey"
    assert _field(creds(securemode=1)) == "securemode"
    assert _field(creds(securemode=-2)) == "securemode"
    assert _field(creds(securemode="2")) == "securemode"
    assert _field(creds(signmethod="md5")) == "signmethod"
    assert _field(creds(keepalive=29)) == "keepalive"
    assert _field(creds(keepalive=1201)) == "keepalive"
    assert _field(creds(client_id="x" * 65)) == "clientId"
    assert _field(creds(timestamp="-1")) == "timestamp"
    assert _field(creds(region="CN Shanghai")) == "region"
    assert _field(creds(region="cn_shanghai")) == "region"
    assert _field(creds(port=0)) == "port"
    assert _field(creds(securemode=3, port=8883)) == "port"
    assert _field(creds(host="")) == "host"


def test_auth_form_defaults_send_signmethod_and_resources():
    body = auth.auth_form(PK, DN, DS, client_id="cid-1", timestamp=1700000000000)
    fields = dict(_fields(body))
    assert fields["signmethod"] == "hmacsha256" and fields["resources"] == "mqtt"
    assert fields["clientId"] == "cid-1" and fields["timestamp"] == "1700000000000"
    params = {
        "clientId": "cid-1",
        "deviceName": DN,
        "productKey": PK,
        "timestamp": "1700000000000",
    }
    assert fields["sign"] == sign.sign(params, DS)
    assert "version" not in fields


def test_auth_form_url_encodes_values_but_signs_them_raw():
    body = auth.auth_form("pk", "dev_01-@.:x", "k", client_id="a&b=c", signmethod="hmacsha1")
    fields = dict(_fields(body))
    assert fields["deviceName"] == "dev_01-%40.%3Ax"
    assert fields["clientId"] == "a%26b%3Dc"
    raw = {"clientId": "a&b=c", "deviceName": "dev_01-@.:x", "productKey": "pk"}
    assert fields["sign"] == sign.sign(raw, "k", "hmacsha1")
    assert auth.urlencode([("a b", "x*y~\u00e9")]) == "a+b=x*y%7E%C3%A9"


def test_auth_form_rejects_bad_input():
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, DS, send_signmethod=False)  # server would assume hmacmd5
    assert caught.value.field == "signmethod"
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, "")
    assert caught.value.field == "secret"
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, DS, client_id="x" * 65)
    assert caught.value.field == "clientId"
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, DS, resources="")
    assert caught.value.field == "resources"


def test_auth_urls():
    assert auth.auth_host() == "iot-auth.cn-shanghai.aliyuncs.com"
    assert auth.url(auth.auth_host("us-west-1")) == (
        "https://iot-auth.us-west-1.aliyuncs.com/auth/devicename"
    )
    assert auth.url("h", dynreg.REGISTER_PATH) == "https://h/auth/register/device"
    assert auth.CONTENT_TYPE == "application/x-www-form-urlencoded"
    with raises(SignError):
        auth.auth_host("cn shanghai")


def test_register_form_and_reply():
    body = dynreg.register_form("a1X2bEnP82z", "example1", "EvOafYuTx7hWwV5E", "8Ygb7ULYh53B6OA")
    assert body == (
        "productKey=a1X2bEnP82z&deviceName=example1&random=8Ygb7ULYh53B6OA"
        "&sign=dd67b3048673f3f5959c5a755707028fe17917f5e41cdb9fcceb33c341cbf164"
        "&signMethod=hmacsha256"
    )
    reply = (
        b'{"code":200,"data":{"productKey":"a1X2bEnP82z","deviceName":"example1",'
        b'"deviceSecret":"s3cr3t"},"message":"success"}'
    )
    reg = sign.parse_register_reply(reply)
    assert (reg.product_key, reg.device_name, reg.device_secret) == (
        "a1X2bEnP82z",
        "example1",
        "s3cr3t",
    )
    with raises(AuthError) as caught:
        dynreg.parse_register_reply(b'{"code":6289,"message":"device is already active"}')
    assert caught.value.code == 6289
    with raises(ReplyError):
        dynreg.parse_register_reply(b'{"code":200,"data":{"deviceName":"example1"}}')


def test_register_rejects_bad_input():
    for args, field in (
        (("pk", "dn", "", "r"), "productSecret"),
        (("pk", "dn", "ps", ""), "random"),
        (("pk", "", "ps", "r"), "deviceName"),
    ):
        with raises(SignError) as caught:
            dynreg.register_form(*args)
        assert caught.value.field == field
    with raises(SignError) as caught:
        dynreg.register_form("pk", "dn", "ps", "r", "hmacsha384")
    assert caught.value.field == "signmethod"


def test_register_message_topics():
    reg = dynreg.parse_register_message(
        "/ext/register", b'{"productKey":"pk","deviceName":"dn","deviceSecret":"ds"}'
    )
    assert (reg.device_secret, reg.client_id, reg.device_token) == ("ds", None, None)
    reg = dynreg.parse_register_message(
        "/ext/regnwl",
        '{"clientId":"cid","productKey":"pk","deviceName":"dn","deviceToken":"tok"}',
    )
    assert (reg.client_id, reg.device_token, reg.device_secret) == ("cid", "tok", None)
    with raises(ReplyError):
        dynreg.parse_register_message("/ext/other", b"{}")
    with raises(ReplyError):
        dynreg.parse_register_message("/ext/regnwl", b'{"clientId":"cid"}')
    with raises(ReplyError):
        dynreg.parse_register_message("/ext/register", b"garbage")


def test_register_mqtt_credentials_and_connwl():
    legacy = dynreg.register_mqtt_credentials("pk", "dn", "ps", "r1")
    assert (
        legacy.client_id == "dn.pk|securemode=2,authType=register,random=r1,signmethod=hmacsha256|"
    )
    assert legacy.host == "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com" and legacy.tls
    assert legacy.password == dynreg.register_sign("pk", "dn", "ps", "r1")
    new = dynreg.register_mqtt_credentials("pk", "dn", "ps", "r1", "regnwl", instance_id="iot-1")
    assert new.client_id.startswith("dn.pk|securemode=-2,authType=regnwl,")
    assert new.client_id.endswith(",instanceId=iot-1|")
    assert new.host == "iot-1.mqtt.iothub.aliyuncs.com"
    with raises(SignError) as caught:
        dynreg.register_mqtt_credentials("pk", "dn", "ps", "r1", "connwl")
    assert caught.value.field == "authType"
    with raises(SignError) as caught:
        dynreg.register_mqtt_credentials("pk", "dn", "ps", "r1", securemode=3)
    assert caught.value.field == "securemode"
    reg = dynreg.Registration("pk", "dn", None, "cid", "tok")
    c = dynreg.connwl_credentials(reg, new.host, keepalive=600)
    assert (c.client_id, c.username, c.password) == (
        "cid|securemode=-2,authType=connwl|",
        "dn&pk",
        "tok",
    )
    assert (c.port, c.tls, c.keepalive) == (1883, True, 600)
    with raises(SignError):
        dynreg.connwl_credentials(dynreg.Registration("pk", "dn", "ds"), new.host)
