"""The 23 public signing vectors (tests_host/aliyun-sign-vectors.json) on every runtime.

Each vector is checked through the public API that produces it: the MQTT triple, the HTTPS
device-auth form, or the dynamic-registration sign, form and MQTT credentials. Forms are compared
as field sets (order is free); clientId extension blocks as key/value sets (order is free, and
SDKs add keys of their own such as ``_v`` or ``lan``).

``CHECKS`` runs on the host API (tools/aliyun_sign.py, CPython: tests_host/test_aliyun_sign.py),
which has every option the vectors use; here, on every runtime, the device's own sign and forms
(lib/aliyun) must give the same signs.
"""

import json

from aliyun import auth, dynreg
from aliyun import sign as device_sign

# The module with the full API (timestamps, securemode, registration over MQTT): set by the host
# test before it runs CHECKS.
sign = None


def _load():
    here = __file__.replace("\\", "/")
    tests_host = here[: here.rindex("/", 0, here.rindex("/"))]
    with open(tests_host + "/aliyun-sign-vectors.json") as f:
        return json.load(f)


VECTORS = _load()


def _unquote(text):
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(32 if text[i] == "+" else ord(text[i]))
            i += 1
    return out.decode()


def _form(body):
    fields = {}
    for pair in body.split("&"):
        name, value = pair.split("=", 1)
        assert name not in fields, name
        fields[_unquote(name)] = _unquote(value)
    return fields


def _client_id(text):
    """``prefix|k=v,...|`` → (prefix, {k: v})."""
    prefix, ext, end = text.split("|")
    assert end == ""
    return prefix, dict(item.split("=", 1) for item in ext.split(","))


def _check_mqtt(v, inp, exp):
    prefix, ext = _client_id(exp["mqttClientId"])
    c = sign.mqtt_credentials(
        inp["productKey"],
        inp["deviceName"],
        inp["deviceSecret"],
        prefix,
        inp["timestamp"],
        inp["signmethod"],
        inp["securemode"],
        sign_client_id=inp["clientId"] is not None,
    )
    assert c.password == exp["mqttPassword_lower"]
    assert c.password.upper() == exp["mqttPassword_upper"]
    assert c.username == exp["mqttUsername"]
    mine_prefix, mine = _client_id(c.client_id)
    assert mine_prefix == prefix
    for key, value in mine.items():  # every key we send matches; SDK extras are allowed
        assert ext[key] == value, key
    assert sorted(mine) == sorted(k for k in ("securemode", "signmethod", "timestamp") if k in ext)
    params = {k: inp[k] for k in ("clientId", "deviceName", "productKey", "timestamp")}
    assert sign.sign_content(params) == v["sign_content"]
    assert sign.sign(params, inp["deviceSecret"], inp["signmethod"]) == c.password


def _check_https_auth(v, inp, exp):
    expected = _form(exp["form_body"])
    body = sign.auth_form(
        inp["productKey"],
        inp["deviceName"],
        inp["deviceSecret"],
        inp["clientId"],
        inp["timestamp"],
        inp["signmethod"],
        resources=expected.get("resources"),
        version=expected.get("version"),
        send_signmethod=inp["signmethod_sent"],
    )
    assert _form(body) == expected
    assert len(body) == len(exp["form_body"])
    assert expected["sign"] == exp["sign_lower"]


def _check_dynreg(v, inp, exp):
    pk, dn, ps, rnd, method = (
        inp["productKey"],
        inp["deviceName"],
        inp["productSecret"],
        inp["random"],
        inp["signMethod"],
    )
    assert sign.register_sign(pk, dn, ps, rnd, method) == exp["sign_lower"]
    if "form_body" in exp:
        expected = _form(exp["form_body"])
        expected["signMethod"] = expected["signMethod"].lower()  # openLuat sends "HmacMD5"
        assert _form(sign.register_form(pk, dn, ps, rnd, method)) == expected
    if "mqttClientId" in exp:
        prefix, ext = _client_id(exp["mqttClientId"])
        c = sign.register_mqtt_credentials(
            pk,
            dn,
            ps,
            rnd,
            ext["authType"],
            ext["signmethod"],
            ext.get("instanceId"),
            int(ext["securemode"]),
            client_id=prefix,
        )
        assert _client_id(c.client_id) == (prefix, ext)
        assert (c.username, c.password, c.tls) == (
            exp["mqttUsername"],
            exp["mqttPassword_lower"],
            True,
        )
        assert sign.REPLY_TOPICS[exp["reply_topic"]] == ext["authType"]


CHECKS = {
    "mqtt_password": _check_mqtt,
    "https_auth_devicename_sign": _check_https_auth,
    "dynreg_sign": _check_dynreg,
}


def test_device_sign_matches_every_vector():
    """The device's sign of each vector's parameters (as the device sends them, no timestamp
    conversion needed: the vectors spell it as digits) and its registration form."""
    failed = []
    for v in VECTORS:
        inp, exp = v["inputs"], v["expected"]
        if v["kind"] == "dynreg_sign":
            names = ("deviceName", "productKey", "random")
            secret, method, field = inp["productSecret"], inp["signMethod"], "productSecret"
        else:
            names = ("clientId", "deviceName", "productKey", "timestamp")
            secret, method, field = inp["deviceSecret"], inp["signmethod"], "secret"
        params = {k: inp[k] for k in names}
        got = device_sign.sign(params, secret, method, field)
        want = exp.get("sign_lower") or exp["mqttPassword_lower"]
        if got != want:
            failed.append(v["id"])
        if "form_body" in exp and v["kind"] == "dynreg_sign":
            expected = _form(exp["form_body"])
            expected["signMethod"] = expected["signMethod"].lower()  # openLuat sends "HmacMD5"
            body = dynreg.register_form(
                *(params[k] for k in ("productKey", "deviceName")),
                secret,
                params["random"],
                method,
            )
            if _form(body) != expected:
                failed.append(v["id"] + " form")
    assert not failed, failed


def test_device_auth_form_matches_the_seed():
    (seed,) = [v for v in VECTORS if v["id"] == "seed-openluat-https-auth-md5"]
    inp = seed["inputs"]
    body = auth.auth_form(
        inp["productKey"],
        inp["deviceName"],
        inp["deviceSecret"],
        inp["clientId"],
        inp["signmethod"],
        None,
        inp["signmethod_sent"],
    )
    assert _form(body) == _form(seed["expected"]["form_body"])


def run_all_vectors():
    """Every vector through ``CHECKS`` (``sign`` must be set to the host API); failing ids."""
    failed = []
    for v in VECTORS:
        try:
            CHECKS[v["kind"]](v, v["inputs"], v["expected"])
        except Exception as exc:  # collect them all, report every failing id
            failed.append("%s: %r" % (v["id"], exc))
    return failed


def test_vector_kinds_are_all_covered():
    kinds = {}
    for v in VECTORS:
        kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    assert kinds == {"mqtt_password": 12, "https_auth_devicename_sign": 5, "dynreg_sign": 6}


def test_seed_text_secret_does_not_reproduce_the_published_sign():
    (typo,) = [v for v in VECTORS if v["id"] == "seed-with-seed-text-typo-key"]
    inp = typo["inputs"]
    params = {k: inp[k] for k in ("clientId", "deviceName", "productKey")}
    got = device_sign.sign(params, inp["deviceSecret"], "hmacmd5")
    assert got == typo["expected"]["sign_lower"]
    assert got != typo["published_value"]
