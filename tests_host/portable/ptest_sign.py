"""aliyun.digest (HMAC, MD5 fallback) and aliyun.sign (the device's sign and MQTT credentials).

The host API around them (tools/aliyun_sign.py) is tested in tests_host/test_aliyun_sign.py.
"""

import hashlib

from ptest import fresh_import, raises

import aliyun
from aliyun import digest, md5, sign
from aliyun.sign import SignError, mqtt_credentials

SEED_PARAMS = {
    "clientId": "862991419835241",
    "deviceName": "862991419835241",
    "productKey": "b0FMK1Ga5cp",
}
SEED_SECRET = "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"  # as spelled by openLuat (BRIEF §6)
SEED_SIGN = "1eb96463ad2345b6c261e2f7cc78a7a0"
HI = b"Hi There"
LONG_MSG = b"Test Using Larger Than Block-Size Key - Hash Key First"


def test_hmac_rfc2202_and_rfc4231_cases():
    cases = (
        ("md5", b"\x0b" * 16, HI, "9294727a3638bb1c13f48ef8158bfc9d"),
        ("md5", b"\xaa" * 80, LONG_MSG, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"),
        ("sha1", b"\x0b" * 20, HI, "b617318655057264e28bc0b6fb378c8ef146be00"),
        ("sha1", b"\xaa" * 80, LONG_MSG, "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
        (
            "sha256",
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            "sha256",
            b"\xaa" * 131,
            LONG_MSG,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    )
    for algorithm, key, msg, expected in cases:
        assert digest.hmac_hex(algorithm, key, msg) == expected, algorithm
    assert len(digest.hmac_hex("sha256", b"k", b"m")) == 64


def test_pure_md5_rfc1321_and_block_boundaries():
    assert md5.MD5().digest() == bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")
    assert md5.MD5(b"abc").digest() == bytes.fromhex("900150983cd24fb0d6963f7d28e17f72")
    digits = b"1234567890" * 8
    assert md5.MD5(digits).digest() == bytes.fromhex("57edf4a22be3c955ac49da2e2107b67a")
    data = bytes(range(256))
    for n in (1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200):
        assert md5.MD5(data[:n]).digest() == hashlib.md5(data[:n]).digest(), n
    split = md5.MD5(data[:10])
    split.update(data[10:150])
    assert split.digest() == hashlib.md5(data[:150]).digest()


class _HashlibWithoutMD5:
    """Stand-in for a port whose hashlib has no md5."""

    sha1 = hashlib.sha1
    sha256 = hashlib.sha256


def test_hmacmd5_falls_back_to_pure_md5_when_hashlib_lacks_it():
    bare = fresh_import("aliyun.digest", {"hashlib": _HashlibWithoutMD5})
    assert bare is not digest and aliyun.digest is digest
    assert bare.hmac_hex("md5", b"\x0b" * 16, HI) == "9294727a3638bb1c13f48ef8158bfc9d"
    assert bare.hmac_hex("sha1", b"\x0b" * 20, HI) == "b617318655057264e28bc0b6fb378c8ef146be00"
    sign.digest = bare  # sign() itself, with md5 hidden
    try:
        assert sign.sign(SEED_PARAMS, SEED_SECRET, "hmacmd5") == SEED_SIGN
    finally:
        sign.digest = digest


def test_missing_sha_is_a_value_error():
    class NoSHA1:
        sha256 = hashlib.sha256

    bare = fresh_import("aliyun.digest", {"hashlib": NoSHA1})
    with raises(ValueError, match="sha1"):
        bare.hmac_hex("sha1", b"k", b"m")
    with raises(ValueError, match="sha512"):
        bare.hmac_hex("sha512", b"k", b"m")


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
    content = "clientId862991419835241deviceName862991419835241productKeyb0FMK1Ga5cp"
    assert sign.sign(SEED_PARAMS, SEED_SECRET) == digest.hmac_hex(
        "sha256", SEED_SECRET.encode(), content.encode()
    )
    # Any parameter set: the registration sign (aliyun-iot.md §3) is the same HMAC.
    reg = {"deviceName": "example1", "productKey": "a1X2bEnP82z", "random": "8Ygb7ULYh53B6OA"}
    assert sign.sign(reg, "EvOafYuTx7hWwV5E") == (
        "dd67b3048673f3f5959c5a755707028fe17917f5e41cdb9fcceb33c341cbf164"
    )


def _field(call):
    with raises(SignError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert caught.value.permanent
    return caught.value.field


def test_sign_rejects_bad_input_naming_the_field():
    p = SEED_PARAMS
    assert _field(lambda: sign.sign(p, "")) == "secret"
    assert _field(lambda: sign.sign(p, "s\u00e9cret")) == "secret"
    assert _field(lambda: sign.sign(p, "secret ")) == "secret"
    assert _field(lambda: sign.sign(p, "", "hmacsha1", "productSecret")) == "productSecret"
    assert _field(lambda: sign.sign(p, "s", "hmacsha512")) == "signmethod"
    assert _field(lambda: sign.sign(p, "s", "HmacMD5")) == "signmethod"
    assert _field(lambda: sign.sign(dict(p, deviceName="d\u00e9v"), "s")) == "deviceName"
    assert _field(lambda: sign.sign(dict(p, productKey=""), "s")) == "productKey"
    assert _field(lambda: sign.sign(dict(p, timestamp=789), "s")) == "timestamp"
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
    c = mqtt_credentials("pk", "device", "secret", "12345", "hmacsha1", False, "h", 1884, 60)
    assert c.client_id == "12345|securemode=3,signmethod=hmacsha1|"
    assert c.password == sign.sign(
        {"clientId": "12345", "deviceName": "device", "productKey": "pk"}, "secret", "hmacsha1"
    )
    assert (c.host, c.port, c.tls, c.keepalive) == ("h", 1884, False, 60)
    assert sign.mqtt_host("pk", "ap-southeast-1") == "pk.iot-as-mqtt.ap-southeast-1.aliyuncs.com"


def test_mqtt_credentials_reject_bad_input():
    assert _field(lambda: mqtt_credentials("pk", "dev", "")) == "deviceSecret"
    assert _field(lambda: mqtt_credentials("", "dev", "s")) == "productKey"
    assert _field(lambda: mqtt_credentials("pk", "dev", "s", signmethod="md5")) == "signmethod"
    assert _field(lambda: mqtt_credentials("pk", "dev", "s", "x" * 65)) == "clientId"
    assert _field(lambda: mqtt_credentials("pk", "dev", "s", tls=False, port=8883)) == "port"
