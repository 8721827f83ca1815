"""aliyun.auth (HTTPS device auth) and aliyun.dynreg (dynamic registration over HTTPS).

The host API (timestamps, version, registration over MQTT: tools/aliyun_sign.py) is tested in
tests_host/test_aliyun_sign.py.
"""

from ptest import raises

from aliyun import auth, dynreg, sign
from aliyun.auth import AuthError, ReplyError
from aliyun.sign import SignError

PK, DN, DS = "b0FMK1Ga5cp", "862991419835241", "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"
SEED_REPLY = (
    b'{"code":200,"data":{"iotId":"jlvFGfQ11FIGOEJ4RoZU001013ba00",'
    b'"iotToken":"613d9cb0946741df98db1c50255a9dd0"},"message":"success"}'
)


def _fields(body):
    return [pair.split("=", 1) for pair in body.split("&")]


def test_auth_form_seed_fields_and_length():
    body = auth.auth_form(PK, DN, DS, signmethod="hmacmd5", resources=None, send_signmethod=False)
    assert sorted(_fields(body)) == sorted(
        [
            ["productKey", PK],
            ["deviceName", DN],
            ["clientId", DN],
            ["sign", "1eb96463ad2345b6c261e2f7cc78a7a0"],
        ]
    )
    assert len(body.encode()) == len(body) == 112  # the seed's AT+HTTPDATA=112


def test_auth_form_defaults_send_signmethod_and_resources():
    body = auth.auth_form(PK, DN, DS, client_id="cid-1")
    fields = dict(_fields(body))
    assert fields["signmethod"] == "hmacsha256" and fields["resources"] == "mqtt"
    assert fields["clientId"] == "cid-1"
    params = {"clientId": "cid-1", "deviceName": DN, "productKey": PK}
    assert fields["sign"] == sign.sign(params, DS)
    assert [f[0] for f in _fields(body)] == [
        "productKey",
        "deviceName",
        "clientId",
        "signmethod",
        "sign",
        "resources",
    ]


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
        auth.auth_form(PK, DN, "")
    assert caught.value.field == "secret"
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, DS, client_id="x" * 65)
    assert caught.value.field == "clientId"
    with raises(SignError) as caught:
        auth.auth_form(PK, DN, DS, signmethod="hmacsha384")
    assert caught.value.field == "signmethod"


def test_auth_urls():
    assert auth.auth_host() == "iot-auth.cn-shanghai.aliyuncs.com"
    assert auth.auth_host("us-west-1") == "iot-auth.us-west-1.aliyuncs.com"
    assert auth.AUTH_PATH == "/auth/devicename"
    assert dynreg.REGISTER_PATH == "/auth/register/device"
    assert auth.CONTENT_TYPE == "application/x-www-form-urlencoded"


def test_parse_auth_reply_seed_and_resources():
    token = auth.parse_auth_reply(SEED_REPLY)
    assert token == (
        "jlvFGfQ11FIGOEJ4RoZU001013ba00",
        "613d9cb0946741df98db1c50255a9dd0",
        None,
        None,
    )
    with_host = (
        '{"code":200,"data":{"iotId":"i","iotToken":"t","resources":{"mqtt":'
        '{"host":"pk.iot-as-mqtt.cn-shanghai.aliyuncs.com","port":1883}}},"message":"success"}'
    )
    token = auth.parse_auth_reply(with_host)
    assert token[2:] == ("pk.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883)
    string_port = with_host.replace("1883", '"1883"')
    assert auth.parse_auth_reply(string_port)[3] == 1883


def _auth_error(body, status=200):
    with raises(AuthError) as caught:
        auth.parse_auth_reply(body, status)
    return caught.value


def test_parse_auth_reply_error_codes():
    for code, permanent in ((401, True), (460, True), (500, False), (5001, True), (6200, True)):
        err = _auth_error('{"code":%d,"message":"m%d"}' % (code, code))
        assert (err.code, err.message, err.permanent) == (code, "m%d" % code, permanent)
        assert str(err).startswith("code %d: m%d" % (code, code))
        assert not isinstance(err, ReplyError)
    other = _auth_error('{"code":403,"message":"request forbidden"}')
    assert (other.code, other.permanent) == (403, False)
    assert str(other) == "code 403: request forbidden"
    assert "check the device secret" in str(_auth_error('{"code":401,"message":"m"}'))
    assert _auth_error('{"code":"401","message":"request auth error"}').code == 401
    assert _auth_error(b"<html>Bad Gateway</html>", 502).code == 502


def test_parse_auth_reply_malformed_is_reply_error():
    bodies = (
        b"",
        b"not json",
        b"[1, 2]",
        b'{"data":{}}',
        b'{"code":200}',
        b'{"code":200,"data":{"iotId":"i"}}',
        b'{"code":200,"data":{"iotId":"","iotToken":"t"}}',
        b'{"code":200,"data":{"iotId":"i","iotToken":"t","resources":{"mqtt":{"host":"h"}}}}',
    )
    for body in bodies:
        err = _auth_error(body)
        assert isinstance(err, ReplyError) and err.code is None, body
        assert not err.permanent


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
    assert dynreg.parse_register_reply(reply) == "s3cr3t"
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


def test_make_random():
    a, b = dynreg.make_random(), dynreg.make_random(20)
    assert len(a) == 15 and len(b) == 20 and a != b[:15]
    for ch in a + b:
        assert "0" <= ch <= "9" or "A" <= ch <= "Z" or "a" <= ch <= "z"
