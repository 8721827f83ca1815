"""Host-side Aliyun IoT signing: the full, validating API around the device's aliyun modules.

The device (lib/aliyun: sign, auth, dynreg) carries only what it logs in with, to keep its RAM
low. The host tools (aliyun-sign CLI, local cloud, benchmarks) and tests also need timestamps,
the securemode choice, region/port/keep-alive checks, signs checked against the parameter set
of the flow, and dynamic registration over MQTT; they live here, built on the same HMAC, form
encoding and reply parsing as the device. References: aliyun-iot.md §1 (MQTT), §2 (HTTPS
auth), §3 (dynamic registration).
"""

import json

from micropython import const

from aliyun import auth as _auth
from aliyun import digest
from aliyun import dynreg as _dynreg
from aliyun import sign as _sign

# Re-exported: the device's own pieces, under the names the host code uses.
from aliyun.auth import AUTH_PATH as AUTH_PATH
from aliyun.auth import CONTENT_TYPE as CONTENT_TYPE
from aliyun.auth import AuthError as AuthError
from aliyun.auth import ReplyError as ReplyError
from aliyun.auth import parse_auth_reply as parse_auth_reply
from aliyun.auth import parse_reply, require_str, urlencode
from aliyun.dynreg import REGISTER_PATH as REGISTER_PATH
from aliyun.dynreg import make_random as make_random
from aliyun.sign import SIGN_METHODS, MQTTCredentials, SignError, check_text

DEFAULT_SIGN_METHOD = "hmacsha256"
SIGN_FIELDS = ("clientId", "deviceName", "productKey", "timestamp")
REGISTER_FIELDS = ("deviceName", "productKey", "random")
DEFAULT_REGION = "cn-shanghai"
# securemode (§1.3): 2 = TLS, 3 = plain TCP; other values are SDK-internal modes.
SECUREMODE_TLS = const(2)
SECUREMODE_TCP = const(3)
KEEPALIVE_MIN = const(30)  # §1.5: the broker refuses keep-alive outside 30..1200 s
KEEPALIVE_MAX = const(1200)
DEFAULT_KEEPALIVE = const(300)
CLIENT_ID_MAX = const(64)  # §1.2
PORT_PLAIN_OR_TLS = const(1883)  # TLS (GlobalSign root) or TCP
PORT_TLS_ONLY = const(8883)  # TLS with Aliyun's own root (§1.1)
AUTH_TYPES = ("register", "regnwl")  # MQTT: pre-registration / pre-registration-free (§3.2)
REPLY_TOPICS = {"/ext/register": "register", "/ext/regnwl": "regnwl"}


# --- validators -------------------------------------------------------------------------------


def check_signmethod(signmethod) -> str:
    """Return ``signmethod`` if it is one of SIGN_METHODS (exact lower case)."""
    if signmethod not in SIGN_METHODS:
        names = ", ".join(SIGN_METHODS)
        raise SignError("signmethod", "unknown %r (use %s)" % (signmethod, names))
    return signmethod


def check_keepalive(seconds) -> int:
    """Return ``seconds`` if the broker accepts it as keep-alive (30..1200, §1.5)."""
    if not isinstance(seconds, int) or not KEEPALIVE_MIN <= seconds <= KEEPALIVE_MAX:
        raise SignError("keepalive", "must be %d..%d s" % (KEEPALIVE_MIN, KEEPALIVE_MAX))
    return seconds


def check_timestamp(value) -> str:
    """The timestamp as sent: a non-negative int or a string of decimal digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    text = check_text("timestamp", value)
    if not text.isdigit():
        raise SignError("timestamp", "must be decimal digits")
    return text


def check_client_id(value) -> str:
    """Return ``value`` if it can be a clientId (≤ 64 characters, no ``|``)."""
    check_text("clientId", value, CLIENT_ID_MAX)
    if "|" in value:  # would end the clientId before the |…| extension block
        raise SignError("clientId", "must not contain '|'")
    return value


def check_region(region) -> str:
    """Return ``region`` if it looks like a region id (``cn-shanghai``, ``ap-southeast-1``)."""
    check_text("region", region)
    for ch in region:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
            raise SignError("region", "must be a region id like cn-shanghai")
    return region


def check_port(port, tls: bool = True) -> int:
    """Return ``port`` if valid; 8883 serves TLS only (§1.1)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SignError("port", "must be 1..65535")
    if port == PORT_TLS_ONLY and not tls:
        raise SignError("port", "8883 is TLS only; use 1883 for TCP (securemode=3)")
    return port


# --- sign -------------------------------------------------------------------------------------


def sign_content(params: dict, fields: tuple = SIGN_FIELDS) -> str:
    """The content string: ``name + value`` of each non-None param, names in ASCII order.

    Every name must be one of ``fields`` (the flow's parameter set).
    """
    parts = []
    for name in sorted(params):
        value = params[name]
        if value is None:
            continue
        if name not in fields:
            raise SignError(name, "not a sign parameter (expected one of %s)" % ", ".join(fields))
        if name == "timestamp":
            value = check_timestamp(value)
        elif name == "clientId":
            value = check_client_id(value)
        else:
            check_text(name, value)
        parts.append(name + value)
    return "".join(parts)


def hmac_sign(
    content: str, secret: str, signmethod: str = DEFAULT_SIGN_METHOD, field: str = "secret"
) -> str:
    """Lower-case hex ``HMAC_<signmethod>(secret, content)``; ``field`` names the secret."""
    check_signmethod(signmethod)
    check_text(field, secret)
    return digest.hmac_hex(signmethod[4:], secret.encode(), content.encode())


def sign(params: dict, secret: str, signmethod: str = DEFAULT_SIGN_METHOD) -> str:
    """Lower-case hex HMAC of the sign content of ``params`` under ``secret``.

    ``params`` keys are among SIGN_FIELDS; None values count as not sent. productKey and
    deviceName are mandatory (§1.4). Raises SignError naming the bad field.
    """
    for name in ("productKey", "deviceName"):
        if params.get(name) is None:
            raise SignError(name, "is required")
    check_signmethod(signmethod)
    return hmac_sign(sign_content(params), secret, signmethod)


def mqtt_host(product_key: str, region: str = DEFAULT_REGION) -> str:
    """Legacy public-instance MQTT host ``${pk}.iot-as-mqtt.${region}.aliyuncs.com`` (§1.1)."""
    return _sign.mqtt_host(check_text("productKey", product_key), check_region(region))


def mqtt_credentials(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: "str | None" = None,
    timestamp: "int | str | None" = None,
    signmethod: str = DEFAULT_SIGN_METHOD,
    securemode: int = SECUREMODE_TLS,
    region: str = DEFAULT_REGION,
    host: "str | None" = None,
    port: "int | None" = None,
    keepalive: int = DEFAULT_KEEPALIVE,
    sign_client_id: bool = True,
) -> MQTTCredentials:
    """Direct MQTT CONNECT credentials (§1.2, §1.4).

    client_id defaults to device_name; timestamp (digits or int) is optional and, when given,
    goes both into the clientId extension and the sign. ``host`` (an instance endpoint) overrides
    the region host. ``sign_client_id=False`` leaves clientId out of the sign content (allowed by
    §1.4, the broker then reads it only from the CONNECT clientId).
    """
    check_text("productKey", product_key)
    check_text("deviceName", device_name)
    check_text("deviceSecret", device_secret)
    check_signmethod(signmethod)
    if securemode not in (SECUREMODE_TLS, SECUREMODE_TCP) or isinstance(securemode, bool):
        raise SignError("securemode", "must be 2 (TLS) or 3 (TCP)")
    check_keepalive(keepalive)
    cid = check_client_id(device_name if client_id is None else client_id)
    ts = None if timestamp is None else check_timestamp(timestamp)
    ext = "|securemode=%d,signmethod=%s" % (securemode, signmethod)
    if ts is not None:
        ext += ",timestamp=" + ts
    params = {
        "clientId": cid if sign_client_id else None,
        "deviceName": device_name,
        "productKey": product_key,
        "timestamp": ts,
    }
    password = hmac_sign(sign_content(params), device_secret, signmethod, "deviceSecret")
    if host is None:
        host = mqtt_host(product_key, region)
    else:
        check_text("host", host)
    tls = securemode == SECUREMODE_TLS
    port = check_port(PORT_PLAIN_OR_TLS if port is None else port, tls)
    return MQTTCredentials(
        cid + ext + "|", device_name + "&" + product_key, password, host, port, tls, keepalive
    )


# --- HTTPS device auth (§2) -------------------------------------------------------------------


def auth_host(region: str = DEFAULT_REGION) -> str:
    """The iot-auth host of ``region``."""
    return _auth.auth_host(check_region(region))


def url(host: str, path: str = AUTH_PATH) -> str:
    """``https://host/path``."""
    return "https://" + check_text("host", host) + path


def auth_form(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: "str | None" = None,
    timestamp: "int | str | None" = None,
    signmethod: str = DEFAULT_SIGN_METHOD,
    resources: "str | None" = "mqtt",
    version: "str | None" = None,
    send_signmethod: bool = True,
) -> str:
    """The form body for ``/auth/devicename``; its byte length is ``len(body)`` (ASCII).

    clientId defaults to deviceName (≤ 64 characters). The sign covers clientId, deviceName,
    productKey and timestamp only; version, resources and signmethod are not signed (§2).
    ``resources="mqtt"`` asks the server to return the MQTT host and port. When the signmethod
    is not sent the server assumes hmacmd5, so ``send_signmethod=False`` requires it.
    """
    cid = device_name if client_id is None else client_id
    params: dict = {"clientId": cid, "deviceName": device_name, "productKey": product_key}
    if timestamp is not None:
        params["timestamp"] = timestamp
    sig = sign(params, device_secret, signmethod)
    if not send_signmethod and signmethod != "hmacmd5":
        raise SignError("signmethod", "the server assumes hmacmd5 when it is not sent")
    fields = [("productKey", product_key), ("deviceName", device_name), ("clientId", cid)]
    if timestamp is not None:
        fields.append(("timestamp", str(timestamp)))
    if send_signmethod:
        fields.append(("signmethod", signmethod))
    fields.append(("sign", sig))
    for name, value in (("resources", resources), ("version", version)):
        if value is not None:
            fields.append((name, check_text(name, value)))
    return urlencode(fields)


# --- dynamic registration (§3) ----------------------------------------------------------------


def register_sign(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    signmethod: str = DEFAULT_SIGN_METHOD,
) -> str:
    """Lower-case hex registration sign."""
    params = {"deviceName": device_name, "productKey": product_key, "random": random}
    content = sign_content(params, REGISTER_FIELDS)
    return hmac_sign(content, product_secret, signmethod, "productSecret")


def register_form(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    signmethod: str = DEFAULT_SIGN_METHOD,
) -> str:
    """The HTTPS registration form (the device's, after this module's checks)."""
    register_sign(product_key, device_name, product_secret, random, signmethod)
    return _dynreg.register_form(product_key, device_name, product_secret, random, signmethod)


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


def parse_register_message(topic: str, payload: "bytes | str") -> Registration:
    """Parse the message pushed on ``/ext/register`` or ``/ext/regnwl`` after CONNACK (§3.2)."""
    kind = REPLY_TOPICS.get(topic)
    if kind is None:
        raise ReplyError(None, "not a registration topic: " + str(topic))
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ReplyError(None, "registration message is not a JSON object")
    pk, dn = data.get("productKey"), data.get("deviceName")
    if kind == "register":
        return Registration(pk, dn, require_str(data, "deviceSecret"))
    return Registration(
        pk, dn, None, require_str(data, "clientId"), require_str(data, "deviceToken")
    )


def instance_host(instance_id: str) -> str:
    """MQTT endpoint of a new public / Enterprise instance (§1.1)."""
    return check_text("instanceId", instance_id) + ".mqtt.iothub.aliyuncs.com"


def register_mqtt_credentials(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    auth_type: str = "register",
    signmethod: str = DEFAULT_SIGN_METHOD,
    instance_id: "str | None" = None,
    securemode: "int | None" = None,
    host: "str | None" = None,
    region: str = DEFAULT_REGION,
    port: int = PORT_PLAIN_OR_TLS,
    client_id: "str | None" = None,
) -> MQTTCredentials:
    """CONNECT credentials for registration over MQTT (TLS only, §3.2).

    securemode defaults to the documented rule: -2 with an instanceId (new instances), else 2;
    some SDKs send 2 in both cases. The client id defaults to ``dn.pk``.
    """
    if auth_type not in AUTH_TYPES:
        raise SignError("authType", "must be register or regnwl")
    if securemode is None:
        securemode = -2 if instance_id else SECUREMODE_TLS
    if securemode not in (-2, SECUREMODE_TLS):
        raise SignError("securemode", "registration is TLS only: use 2 or -2")
    sig = register_sign(product_key, device_name, product_secret, random, signmethod)
    cid = device_name + "." + product_key if client_id is None else client_id
    ext = "|securemode=%d,authType=%s,random=%s,signmethod=%s" % (
        securemode,
        auth_type,
        random,
        signmethod,
    )
    if instance_id:
        ext += ",instanceId=" + check_text("instanceId", instance_id)
    if host is None:
        host = instance_host(instance_id) if instance_id else mqtt_host(product_key, region)
    return MQTTCredentials(
        check_client_id(cid) + ext + "|",
        device_name + "&" + product_key,
        sig,
        check_text("host", host),
        check_port(port),
        True,
        DEFAULT_KEEPALIVE,  # not checked while registering (§3.2)
    )


def connwl_credentials(
    reg: Registration,
    host: str,
    port: int = PORT_PLAIN_OR_TLS,
    keepalive: int = DEFAULT_KEEPALIVE,
) -> MQTTCredentials:
    """CONNECT credentials after pre-registration-free registration: the token is the password,
    sent as is (§3.2)."""
    if not reg.client_id or not reg.device_token:
        raise SignError("deviceToken", "registration has no clientId/deviceToken")
    return MQTTCredentials(
        check_client_id(reg.client_id) + "|securemode=-2,authType=connwl|",
        check_text("deviceName", reg.device_name)
        + "&"
        + check_text("productKey", reg.product_key),
        reg.device_token,
        check_text("host", host),
        check_port(port),
        True,
        check_keepalive(keepalive),
    )
