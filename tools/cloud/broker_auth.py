"""Aliyun's MQTT CONNECT rules (reference §1, §2, §3.2) and the amqtt authentication plugin.

``check_connect`` turns the CONNECT fields into an ``Identity`` or raises ``RefusedError`` with the
CONNACK return code to send. The flow is chosen by the clientId extension block ``|k=v,…|``:

=========================  =========  ======================================================
clientId extension         transport  password
=========================  =========  ======================================================
securemode=2               TLS        HMAC over the parameters sent (§1.2, §1.4)
securemode=3               TCP        same
none, securemode=-1        TLS        iotToken from ``/auth/devicename``; username = iotId (§2)
securemode=0               TCP        same (C SDK "guider" without TLS, §1.3)
authType=register/regnwl   TLS        HMAC(productSecret, deviceName…productKey…random…) (§3.2)
authType=connwl            TLS        deviceToken from ``/ext/regnwl`` (§3.2)
=========================  =========  ======================================================

CONNACK codes (§1.6; where the reference leaves the code open, the choice is marked):
2 identifier rejected — malformed clientId or extension (bad securemode/signmethod/timestamp,
  missing random, clientId longer than 64); 3 server unavailable — invalid/expired
  iotId/iotToken [S2]; 4 bad username or password — wrong username form, unknown product or
  device, wrong password; 5 not authorized — disabled device, TLS/TCP not matching securemode,
  keep-alive outside 30–1200 s, dynamic registration off or device already activated (choices).
"""

import hmac
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin

from tools import aliyun_sign as _sign

ACCEPTED = 0
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5
CONNACK_TEXT = {
    ACCEPTED: "accepted",
    1: "unacceptable protocol version",
    IDENTIFIER_REJECTED: "identifier rejected",
    SERVER_UNAVAILABLE: "server unavailable",
    BAD_CREDENTIALS: "bad user name or password",
    NOT_AUTHORIZED: "not authorized",
}

KEEPALIVE_MIN, KEEPALIVE_MAX = 30, 1200  # §1.5
CLIENT_ID_MAX = 64  # §1.2
DEFAULT_SIGN_METHOD = "hmacmd5"  # §1.2: default when signmethod is not sent
DYNREG_FIELDS = ("deviceName", "productKey", "random")  # §3 sign content
AMQTT_EMPTY_ID_PREFIX = "amqtt/"  # amqtt's stand-in for an empty clientId

# securemode → (flow, needs TLS) for flows without authType (§1.3).
SECUREMODES = {
    "2": ("sign", True),
    "3": ("sign", False),
    "-1": ("token", True),
    "0": ("token", False),
}


class RefusedError(Exception):
    """CONNECT refused with CONNACK return code ``rc``; ``reason`` says why (for the log)."""

    def __init__(self, rc: int, reason: str):
        super().__init__(reason)
        self.rc = rc
        self.reason = reason


@dataclass
class ConnectInfo:
    client_id: str
    username: str | None
    password: str | None
    keepalive: int
    tls: bool
    remote: str = ""


@dataclass
class Identity:
    """Who an accepted connection is.

    ``kind`` is ``device`` for a normal session, or ``register``/``regnwl`` for a dynamic
    registration session, which only receives its ``/ext/register`` (``/ext/regnwl``) push.
    """

    kind: str
    product_key: str
    device_name: str
    client_id: str
    flow: str
    tls: bool
    keepalive: int
    auto_subscribe: bool = False
    random: str = ""

    @property
    def key(self) -> str:
        """The broker session key: one session per device, whatever its clientId (§1.5)."""
        base = self.product_key + "&" + self.device_name
        return base if self.kind == "device" else "%s:%s:%s" % (self.kind, base, self.random)

    def describe(self) -> dict:
        return {
            "clientId": self.client_id,
            "auth": self.flow,
            "transport": "TLS" if self.tls else "TCP",
            "keepalive": self.keepalive,
        }


def parse_client_id(raw: str) -> tuple:
    """Split ``clientId|k=v,k=v|`` into ``(clientId, {k: v})``; ``(raw, None)`` without ``|``."""
    if raw.startswith(AMQTT_EMPTY_ID_PREFIX) and "|" not in raw:
        raise RefusedError(IDENTIFIER_REJECTED, "empty clientId")
    bar = raw.find("|")
    if bar < 0:
        return raw, None
    prefix, block = raw[:bar], raw[bar + 1 :]
    if not block.endswith("|") or "|" in block[:-1]:
        raise RefusedError(IDENTIFIER_REJECTED, "clientId extension must be |k=v,…| at the end")
    ext = {}
    for item in block[:-1].split(","):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise RefusedError(IDENTIFIER_REJECTED, "clientId extension item %r is not k=v" % item)
        if name in ext:
            raise RefusedError(IDENTIFIER_REJECTED, "clientId extension repeats %s" % name)
        ext[name] = value
    return prefix, ext


def _check_prefix(prefix: str):
    if not prefix:
        raise RefusedError(IDENTIFIER_REJECTED, "empty clientId before |…|")
    if len(prefix) > CLIENT_ID_MAX:
        raise RefusedError(
            IDENTIFIER_REJECTED, "clientId longer than %d characters" % CLIENT_ID_MAX
        )


def _check_keepalive(keepalive: int):
    if not KEEPALIVE_MIN <= keepalive <= KEEPALIVE_MAX:  # §1.5 "拒绝连接"; code: our choice
        raise RefusedError(
            NOT_AUTHORIZED,
            "keep-alive %d s outside %d..%d" % (keepalive, KEEPALIVE_MIN, KEEPALIVE_MAX),
        )


def _check_transport(needs_tls: bool, tls: bool, what: str):
    if needs_tls and not tls:
        raise RefusedError(NOT_AUTHORIZED, "%s needs TLS; this connection is plain TCP" % what)
    if tls and not needs_tls:
        raise RefusedError(NOT_AUTHORIZED, "%s is plain TCP; this connection is TLS" % what)


def _signmethod(ext: dict) -> str:
    method = ext.get("signmethod", DEFAULT_SIGN_METHOD)
    if method not in _sign.SIGN_METHODS:  # §1.2: sent lower case by every SDK
        raise RefusedError(IDENTIFIER_REJECTED, "unknown signmethod %r" % method)
    return method


def _split_username(username) -> tuple:
    """``deviceName&productKey`` → (dn, pk) (§1.2, note the order)."""
    if not username or username.count("&") != 1:
        raise RefusedError(BAD_CREDENTIALS, "username must be deviceName&productKey")
    dn, pk = username.split("&")
    if not dn or not pk:
        raise RefusedError(BAD_CREDENTIALS, "username must be deviceName&productKey")
    return dn, pk


def _same_hex(password, expected: str) -> bool:
    """Constant-time comparison of hex digests, either case (§1.4 "大小写不敏感")."""
    return isinstance(password, str) and hmac.compare_digest(password.lower(), expected)


def check_connect(info: ConnectInfo, registry) -> Identity:
    """Apply the CONNECT rules; return the Identity or raise RefusedError."""
    prefix, ext = parse_client_id(info.client_id)
    auth_type = ext.get("authType") if ext else None
    if auth_type in ("register", "regnwl"):
        return _dynamic_register(info, prefix, ext, auth_type, registry)
    if auth_type == "connwl":
        return _connwl(info, prefix, ext, registry)
    if auth_type is not None:
        raise RefusedError(IDENTIFIER_REJECTED, "unknown authType %r" % auth_type)
    mode = ext.get("securemode") if ext else None
    if ext is not None and mode is None:
        raise RefusedError(IDENTIFIER_REJECTED, "clientId extension lacks securemode")
    if mode is not None and mode not in SECUREMODES:
        raise RefusedError(IDENTIFIER_REJECTED, "securemode %s is not supported" % mode)
    _check_prefix(prefix)
    _check_keepalive(info.keepalive)
    flow, needs_tls = SECUREMODES[mode or "-1"]
    if flow == "sign":
        _check_transport(needs_tls, info.tls, "securemode=" + mode)
        return _signed(info, prefix, ext, registry)
    if ext is None and info.username and "&" in info.username:
        raise RefusedError(
            IDENTIFIER_REJECTED,
            "clientId lacks |securemode=…,signmethod=…|; username=iotId only after HTTPS auth",
        )
    _check_transport(needs_tls, info.tls, "token login (securemode=%s)" % (mode or "-1"))
    return _token(info, prefix, registry)


def _signed(info, prefix, ext, registry) -> Identity:
    """Direct login: password = HMAC(deviceSecret, content of the parameters sent) (§1.4)."""
    method = _signmethod(ext)
    timestamp = ext.get("timestamp")  # optional, only salt: never window-checked (§1.2)
    dn, pk = _split_username(info.username)
    device = registry.device(pk, dn)
    if device is None:
        raise RefusedError(BAD_CREDENTIALS, "no device %s/%s" % (pk, dn))
    if not device["deviceSecret"]:
        raise RefusedError(BAD_CREDENTIALS, "device %s/%s has no DeviceSecret (regnwl)" % (pk, dn))
    params = {"clientId": prefix, "deviceName": dn, "productKey": pk, "timestamp": timestamp}
    try:
        # clientId is optional in the content (§1.4); the timestamp is in it iff it was sent.
        expected = [
            _sign.sign(params, device["deviceSecret"], method),
            _sign.sign(dict(params, clientId=None), device["deviceSecret"], method),
        ]
    except _sign.SignError as exc:
        raise RefusedError(IDENTIFIER_REJECTED, "clientId extension: %s" % exc) from None
    if not any(_same_hex(info.password, e) for e in expected):
        raise RefusedError(BAD_CREDENTIALS, "password does not match the device secret")
    _check_enabled(device)
    return Identity(
        "device",
        pk,
        dn,
        prefix,
        "sign/" + method,
        info.tls,
        info.keepalive,
        auto_subscribe=ext.get("_ss") == "1",
    )


def _token(info, prefix, registry) -> Identity:
    """Login after HTTPS auth: username = iotId, password = iotToken (§2)."""
    device = registry.token_device(info.username or "", info.password or "")
    if device is None:
        raise RefusedError(SERVER_UNAVAILABLE, "invalid or expired iotId/iotToken")  # [S2]
    _check_enabled(device)
    return Identity(
        "device",
        device["productKey"],
        device["deviceName"],
        prefix,
        "iotToken",
        info.tls,
        info.keepalive,
    )


def _dynamic_register(info, prefix, ext, auth_type, registry) -> Identity:
    """Dynamic registration CONNECT (§3.2): keep-alive not checked, TLS only."""
    if ext.get("securemode") not in ("2", "-2"):
        raise RefusedError(IDENTIFIER_REJECTED, "dynamic registration needs securemode=2 or -2")
    _check_transport(True, info.tls, "dynamic registration")
    method = _signmethod(ext)
    random = ext.get("random")
    if not random:
        raise RefusedError(IDENTIFIER_REJECTED, "dynamic registration needs random=…")
    dn, pk = _split_username(info.username)
    product = registry.product(pk)
    if product is None:
        raise RefusedError(BAD_CREDENTIALS, "no product %s" % pk)
    try:
        content = _sign.sign_content(
            {"deviceName": dn, "productKey": pk, "random": random}, DYNREG_FIELDS
        )
        expected = _sign.hmac_sign(content, product["productSecret"], method)
    except _sign.SignError as exc:
        raise RefusedError(IDENTIFIER_REJECTED, "registration parameters: %s" % exc) from None
    if not _same_hex(info.password, expected):
        raise RefusedError(BAD_CREDENTIALS, "password does not match the product secret")
    if not product["dynamicRegister"]:
        raise RefusedError(NOT_AUTHORIZED, "dynamic registration is off for product %s" % pk)
    device = registry.device(pk, dn)
    if device is None and auth_type == "register":
        raise RefusedError(BAD_CREDENTIALS, "device %s/%s is not pre-registered" % (pk, dn))
    if device is not None:
        _check_enabled(device)
        if device["activated"]:  # §3: after activation only ResetThing allows it again
            raise RefusedError(NOT_AUTHORIZED, "device %s/%s is already activated" % (pk, dn))
    return Identity(auth_type, pk, dn, prefix, auth_type, True, info.keepalive, random=random)


def _connwl(info, prefix, ext, registry) -> Identity:
    """Login with the deviceToken of a pre-registration-free registration (§3.2)."""
    if ext.get("securemode") != "-2":
        raise RefusedError(IDENTIFIER_REJECTED, "authType=connwl needs securemode=-2")
    _check_transport(True, info.tls, "authType=connwl")
    _check_keepalive(info.keepalive)
    dn, pk = _split_username(info.username)
    device = registry.device(pk, dn)
    if device is None or not device["deviceToken"]:
        raise RefusedError(BAD_CREDENTIALS, "no registered device %s/%s" % (pk, dn))
    token_ok = isinstance(info.password, str) and hmac.compare_digest(
        info.password, device["deviceToken"]
    )
    if not token_ok or prefix != device["nwlClientId"]:
        raise RefusedError(BAD_CREDENTIALS, "clientId/deviceToken do not match the registration")
    _check_enabled(device)
    return Identity(
        "device",
        pk,
        dn,
        prefix,
        "deviceToken",
        True,
        info.keepalive,
        auto_subscribe=ext.get("_ss") == "1",
    )


def _check_enabled(device):
    if not device["enabled"]:
        raise RefusedError(
            NOT_AUTHORIZED,
            "device %s/%s is disabled" % (device["productKey"], device["deviceName"]),
        )


@dataclass
class Verdict:
    rc: int
    reason: str
    identity: Identity | None = None


VERDICT = "aliyun.verdict"  # key in amqtt's Session.attributes


@dataclass
class _CloudConfig:
    cloud: Any = None


class AliyunAuthPlugin(BaseAuthPlugin):
    """amqtt authentication by Aliyun's CONNECT rules; the verdict (with its CONNACK code) is
    left in ``session.attributes[VERDICT]`` for the broker."""

    Config = _CloudConfig

    async def authenticate(self, *, session) -> bool:
        cloud = self.config.cloud
        info = ConnectInfo(
            client_id=session.client_id or "",
            username=session.username,
            password=session.password,
            keepalive=session.keep_alive,
            tls=session.ssl_object is not None,
            remote="%s:%s" % (session.remote_address, session.remote_port),
        )
        try:
            cloud.check_connect_rate(info)
            identity = check_connect(info, cloud.registry)
        except RefusedError as refused:
            session.attributes[VERDICT] = Verdict(refused.rc, refused.reason)
            cloud.log_refused(info, refused)
            return False
        session.attributes[VERDICT] = Verdict(ACCEPTED, "accepted", identity)
        return True
