"""Device signing for Aliyun IoT: sign content, HMAC sign, direct MQTT CONNECT credentials.

Sign content (aliyun-iot.md §1.4): the parameters actually sent, among clientId, deviceName,
productKey, timestamp, as ``name + value`` pairs in ASCII order of the names, no separators.
The server reads the hex digest case-insensitively; this module emits lower case.
"""

from micropython import const

from aliyun import digest

SIGN_METHODS = ("hmacmd5", "hmacsha1", "hmacsha256")
DEFAULT_SIGN_METHOD = "hmacsha256"
SIGN_FIELDS = ("clientId", "deviceName", "productKey", "timestamp")
DEFAULT_REGION = "cn-shanghai"
# securemode (aliyun-iot.md §1.3): 2 = TLS, 3 = plain TCP; other values are SDK-internal modes.
SECUREMODE_TLS = const(2)
SECUREMODE_TCP = const(3)
KEEPALIVE_MIN = const(30)  # §1.5: the broker refuses keep-alive outside 30..1200 s
KEEPALIVE_MAX = const(1200)
DEFAULT_KEEPALIVE = const(300)
CLIENT_ID_MAX = const(64)  # §1.2
PORT_PLAIN_OR_TLS = const(1883)  # TLS (GlobalSign root) or TCP
PORT_TLS_ONLY = const(8883)  # TLS with Aliyun's own root (§1.1)


class SignError(ValueError):
    """Bad signing input; ``field`` names the offending parameter."""

    permanent = True  # the same input fails the same way: retrying cannot help

    def __init__(self, field: str, message: str):
        super().__init__(field + ": " + message)
        self.field = field


def check_text(field: str, value, max_len: int = 0) -> str:
    """Return ``value`` if it is a non-empty printable-ASCII string without spaces."""
    if not isinstance(value, str):
        raise SignError(field, "must be a string")
    if not value:
        raise SignError(field, "is empty")
    for ch in value:
        code = ord(ch)
        if code > 126:
            raise SignError(field, "contains a non-ASCII character")
        if code < 33:
            raise SignError(field, "contains a space or control character")
    if max_len and len(value) > max_len:
        raise SignError(field, "longer than %d characters" % max_len)
    return value


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


def _check_timestamp(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    text = check_text("timestamp", value)
    for ch in text:
        if not "0" <= ch <= "9":
            raise SignError("timestamp", "must be decimal digits")
    return text


def check_client_id(value) -> str:
    """Return ``value`` if it can be a clientId (≤ 64 characters, no ``|``)."""
    check_text("clientId", value, CLIENT_ID_MAX)
    if "|" in value:  # would end the clientId before the |…| extension block
        raise SignError("clientId", "must not contain '|'")
    return value


def sign_content(params: dict, fields: tuple = SIGN_FIELDS) -> str:
    """The content string: ``name + value`` of each non-None param, names in ASCII order."""
    parts = []
    for name in sorted(params):
        value = params[name]
        if value is None:
            continue
        if name not in fields:
            raise SignError(name, "not a sign parameter (expected one of %s)" % ", ".join(fields))
        if name == "timestamp":
            value = _check_timestamp(value)
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
    check_text("productKey", product_key)
    return product_key + ".iot-as-mqtt." + check_region(region) + ".aliyuncs.com"


def check_region(region) -> str:
    """Return ``region`` if it looks like a region id (``cn-shanghai``, ``ap-southeast-1``)."""
    check_text("region", region)
    for ch in region:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
            raise SignError("region", "must be a region id like cn-shanghai")
    return region


class MQTTCredentials:
    """Everything the module's MQTT client needs for a direct (one-device-one-secret) CONNECT."""

    def __init__(
        self,
        client_id: str,
        username: str,
        password: str,
        host: str,
        port: int,
        tls: bool,
        keepalive: int,
    ):
        self.client_id = client_id
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.tls = tls
        self.keepalive = keepalive

    def as_dict(self) -> dict:
        return {
            "clientId": self.client_id,
            "username": self.username,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "keepalive": self.keepalive,
        }


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
    """Direct MQTT CONNECT credentials (aliyun-iot.md §1.2, §1.4).

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
    ts = None if timestamp is None else _check_timestamp(timestamp)
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


def check_port(port, tls: bool = True) -> int:
    """Return ``port`` if valid; 8883 serves TLS only (§1.1)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SignError("port", "must be 1..65535")
    if port == PORT_TLS_ONLY and not tls:
        raise SignError("port", "8883 is TLS only; use 1883 for TCP (securemode=3)")
    return port
