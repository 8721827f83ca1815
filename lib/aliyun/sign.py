"""Device signing for Aliyun IoT: the HMAC sign and direct MQTT CONNECT credentials.

Sign content (aliyun-iot.md §1.4): the parameters actually sent, as ``name + value`` pairs in
ASCII order of the names, no separators. The server reads the hex digest case-insensitively;
this module emits lower case. Only what the device logs in with lives here; the host tools'
full API (timestamps, securemode choice, region and keep-alive checks, registration over MQTT)
is tools/aliyun_sign.py, built on this module.
"""

from collections import namedtuple

from aliyun import digest

SIGN_METHODS = ("hmacmd5", "hmacsha1", "hmacsha256")

# Everything the module's MQTT client needs for CONNECT: a tuple, also readable by field name.
MQTTCredentials = namedtuple(
    "MQTTCredentials", ("client_id", "username", "password", "host", "port", "tls", "keepalive")
)


def mqtt_host(product_key: str, region: str = "cn-shanghai") -> str:
    """Legacy public-instance MQTT host ``${pk}.iot-as-mqtt.${region}.aliyuncs.com`` (§1.1)."""
    return product_key + ".iot-as-mqtt." + region + ".aliyuncs.com"


class SignError(ValueError):
    """Bad signing input; ``field`` names the offending parameter."""

    permanent = True  # the same input fails the same way: retrying cannot help

    def __init__(self, field: str, message: str):
        super().__init__(field + ": " + message)
        self.field = field


def check_text(field: str, value, max_len: int = 0) -> str:
    """Return ``value`` if it is a non-empty printable-ASCII string without spaces."""
    if not isinstance(value, str) or not value:
        raise SignError(field, "must be a non-empty string")
    for ch in value:
        if not "!" <= ch <= "~":
            raise SignError(field, "must be printable ASCII without spaces")
    if max_len and len(value) > max_len:
        raise SignError(field, "longer than %d characters" % max_len)
    return value


def sign(params: dict, secret: str, signmethod: str = "hmacsha256", field: str = "secret") -> str:
    """Lower-case hex HMAC of the sign content of ``params`` under ``secret``.

    ``params`` maps the parameter names sent to their string values (None: not sent); ``field``
    names the secret in errors. Raises SignError naming the bad field.
    """
    if signmethod not in SIGN_METHODS:
        raise SignError(
            "signmethod", "unknown %r (use %s)" % (signmethod, ", ".join(SIGN_METHODS))
        )
    content = ""
    for name in sorted(params):
        value = params[name]
        if value is not None:
            content += name + check_text(name, value)
    cid = params.get("clientId")
    if cid and (len(cid) > 64 or "|" in cid):  # §1.2; a "|" would end it before the |…| block
        raise SignError("clientId", "over 64 characters or contains '|'")
    check_text(field, secret)
    return digest.hmac_hex(signmethod[4:], secret.encode(), content.encode())


def mqtt_credentials(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: "str | None" = None,
    signmethod: str = "hmacsha256",
    tls: bool = True,
    host: "str | None" = None,
    port: int = 1883,
    keepalive: int = 300,
) -> MQTTCredentials:
    """Direct MQTT CONNECT credentials (aliyun-iot.md §1.2, §1.4), no timestamp.

    client_id defaults to device_name; securemode is 2 over TLS, 3 over plain TCP (§1.3);
    ``host`` (an instance endpoint) defaults to the product's cn-shanghai host.
    """
    cid = client_id or device_name
    params = {"clientId": cid, "deviceName": device_name, "productKey": product_key}
    password = sign(params, device_secret, signmethod, "deviceSecret")
    if port == 8883 and not tls:  # 8883 serves TLS only (§1.1)
        raise SignError("port", "8883 is TLS only; use 1883 for TCP")
    ext = "|securemode=%d,signmethod=%s|" % (2 if tls else 3, signmethod)
    return MQTTCredentials(
        cid + ext,
        device_name + "&" + product_key,
        password,
        host or mqtt_host(product_key),
        port,
        tls,
        keepalive,
    )
