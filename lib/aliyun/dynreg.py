"""Dynamic registration (一型一密, aliyun-iot.md §3): a device holding the product secret obtains
its device secret (pre-registration) or a device token (pre-registration-free, MQTT only).

Sign (§3): ``HMAC(productSecret, "deviceName" + dn + "productKey" + pk + "random" + random)``.
Import this module only when the device registers; the steady state needs aliyun.sign alone.
"""

import json

from aliyun import sign as _sign
from aliyun.auth import ReplyError, parse_reply, require_str, urlencode

REGISTER_PATH = "/auth/register/device"  # HTTPS, pre-registration only (§3.1)
AUTH_TYPES = ("register", "regnwl")  # MQTT: pre-registration / pre-registration-free (§3.2)
REPLY_TOPICS = {"/ext/register": "register", "/ext/regnwl": "regnwl"}
_FIELDS = ("deviceName", "productKey", "random")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_random(length: int = 15) -> str:
    """A random alphanumeric string for the ``random`` field (any string is accepted, §3.1)."""
    try:
        import os

        raw = os.urandom(length)
    except (ImportError, AttributeError):
        import random

        raw = bytes(random.getrandbits(8) for _ in range(length))
    return "".join(_ALNUM[b % 62] for b in raw)


def register_sign(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    signmethod: str = _sign.DEFAULT_SIGN_METHOD,
) -> str:
    """Lower-case hex registration sign."""
    params = {"deviceName": device_name, "productKey": product_key, "random": random}
    content = _sign.sign_content(params, _FIELDS)
    return _sign.hmac_sign(content, product_secret, signmethod, "productSecret")


def register_form(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    signmethod: str = _sign.DEFAULT_SIGN_METHOD,
) -> str:
    """The form body for ``POST https://iot-auth.${region}.aliyuncs.com/auth/register/device``.

    Note the field is ``signMethod`` here (camel case), unlike ``signmethod`` in device auth.
    """
    sig = register_sign(product_key, device_name, product_secret, random, signmethod)
    return urlencode(
        [
            ("productKey", product_key),
            ("deviceName", device_name),
            ("random", random),
            ("sign", sig),
            ("signMethod", signmethod),
        ]
    )


class Registration:
    """What the platform handed out: ``device_secret`` (register) or ``client_id`` and
    ``device_token`` (regnwl)."""

    def __init__(
        self,
        product_key: "str | None",
        device_name: "str | None",
        device_secret: "str | None" = None,
        client_id: "str | None" = None,
        token: "str | None" = None,
    ):
        self.product_key = product_key
        self.device_name = device_name
        self.device_secret = device_secret
        self.client_id = client_id
        self.device_token = token


def parse_register_reply(body: "bytes | str", status: int = 200) -> Registration:
    """Parse the HTTPS ``/auth/register/device`` reply; AuthError/ReplyError on failure."""
    data = parse_reply(body, status)
    return Registration(
        data.get("productKey"), data.get("deviceName"), require_str(data, "deviceSecret")
    )


def parse_register_message(topic: str, payload: bytes) -> Registration:
    """Parse the message pushed on ``/ext/register`` or ``/ext/regnwl`` after CONNACK (§3.2)."""
    kind = REPLY_TOPICS.get(topic)
    if kind is None:
        raise ReplyError("not a registration topic: " + str(topic))
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ReplyError("registration message is not a JSON object")
    pk, dn = data.get("productKey"), data.get("deviceName")
    if kind == "register":
        return Registration(pk, dn, require_str(data, "deviceSecret"))
    return Registration(
        pk, dn, None, require_str(data, "clientId"), require_str(data, "deviceToken")
    )


def instance_host(instance_id: str) -> str:
    """MQTT endpoint of a new public / Enterprise instance (§1.1)."""
    return _sign.check_text("instanceId", instance_id) + ".mqtt.iothub.aliyuncs.com"


def register_mqtt_credentials(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    auth_type: str = "register",
    signmethod: str = _sign.DEFAULT_SIGN_METHOD,
    instance_id: "str | None" = None,
    securemode: "int | None" = None,
    host: "str | None" = None,
    region: str = _sign.DEFAULT_REGION,
    port: int = _sign.PORT_PLAIN_OR_TLS,
    client_id: "str | None" = None,
) -> _sign.MQTTCredentials:
    """CONNECT credentials for registration over MQTT (TLS only, §3.2).

    securemode defaults to the documented rule: -2 with an instanceId (new instances), else 2;
    some SDKs send 2 in both cases. The client id defaults to ``dn.pk``.
    """
    if auth_type not in AUTH_TYPES:
        raise _sign.SignError("authType", "must be register or regnwl")
    if securemode is None:
        securemode = -2 if instance_id else _sign.SECUREMODE_TLS
    if securemode not in (-2, _sign.SECUREMODE_TLS):
        raise _sign.SignError("securemode", "registration is TLS only: use 2 or -2")
    sig = register_sign(product_key, device_name, product_secret, random, signmethod)
    cid = device_name + "." + product_key if client_id is None else client_id
    ext = "|securemode=%d,authType=%s,random=%s,signmethod=%s" % (
        securemode,
        auth_type,
        random,
        signmethod,
    )
    if instance_id:
        ext += ",instanceId=" + _sign.check_text("instanceId", instance_id)
    if host is None:
        host = instance_host(instance_id) if instance_id else _sign.mqtt_host(product_key, region)
    return _sign.MQTTCredentials(
        _sign.check_client_id(cid) + ext + "|",
        device_name + "&" + product_key,
        sig,
        _sign.check_text("host", host),
        _sign.check_port(port),
        True,
        _sign.DEFAULT_KEEPALIVE,  # not checked while registering (§3.2)
    )


def connwl_credentials(
    reg: Registration,
    host: str,
    port: int = _sign.PORT_PLAIN_OR_TLS,
    keepalive: int = _sign.DEFAULT_KEEPALIVE,
) -> _sign.MQTTCredentials:
    """CONNECT credentials after pre-registration-free registration: the token is the password,
    sent as is (§3.2)."""
    if not reg.client_id or not reg.device_token:
        raise _sign.SignError("deviceToken", "registration has no clientId/deviceToken")
    return _sign.MQTTCredentials(
        _sign.check_client_id(reg.client_id) + "|securemode=-2,authType=connwl|",
        _sign.check_text("deviceName", reg.device_name)
        + "&"
        + _sign.check_text("productKey", reg.product_key),
        reg.device_token,
        _sign.check_text("host", host),
        _sign.check_port(port),
        True,
        _sign.check_keepalive(keepalive),
    )
