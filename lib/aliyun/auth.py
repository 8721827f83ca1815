"""HTTPS device authentication (``/auth/devicename``): form body and reply parsing.

The device POSTs a url-encoded form to ``https://iot-auth.${region}.aliyuncs.com/auth/devicename``
and gets ``iotId``/``iotToken`` (MQTT username/password, valid 7 days) and optionally the MQTT
host and port (aliyun-iot.md §2). The form and reply helpers are shared with aliyun.dynreg.
"""

import json

from micropython import const

from aliyun import sign as _sign

AUTH_PATH = "/auth/devicename"
CONTENT_TYPE = "application/x-www-form-urlencoded"
_OK = const(200)

# Reply codes of iot-auth (aliyun-iot.md §2). Retrying with the same inputs cannot fix these.
ERROR_CODES = {
    401: "request auth error: the sign does not match (check the device secret)",
    460: "param error: a field is missing or malformed",
    500: "unknown server error",
    5001: "meta device not found: no such productKey/deviceName",
    6200: "auth type mismatch: the product does not allow this authentication",
}
_PERMANENT = (401, 460, 5001, 6200)


class AuthError(Exception):
    """The server refused: ``code`` is the Aliyun code (or HTTP status), ``message`` its text."""

    def __init__(self, code: "int | None", message: str = ""):
        self.code = code
        self.message = message
        text = "code %s" % code
        if message:
            text += ": " + message
        if code in ERROR_CODES:
            text += " (" + ERROR_CODES[code] + ")"
        super().__init__(text)

    @property
    def permanent(self) -> bool:
        """True when retrying with the same inputs cannot succeed."""
        return self.code in _PERMANENT


class ReplyError(AuthError):
    """The reply is not the JSON the protocol defines; ``code`` is None."""

    def __init__(self, message: str):
        super().__init__(None, message)


def auth_host(region: str = _sign.DEFAULT_REGION) -> str:
    """The iot-auth host of ``region``."""
    return "iot-auth." + _sign.check_region(region) + ".aliyuncs.com"


def url(host: str, path: str = AUTH_PATH) -> str:
    """``https://host/path``."""
    return "https://" + _sign.check_text("host", host) + path


_SAFE = b"-._*"  # kept as is by application/x-www-form-urlencoded, like letters and digits


def urlencode(fields: list) -> str:
    """Form-encode ``[(name, value), ...]`` in the given order (UTF-8, space as ``+``)."""
    out = []
    for name, value in fields:
        out.append(_quote(name) + "=" + _quote(value))
    return "&".join(out)


def _quote(text: str) -> str:
    out = []
    for b in text.encode():
        if 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in _SAFE:
            out.append(chr(b))
        elif b == 32:
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def auth_form(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: "str | None" = None,
    timestamp: "int | str | None" = None,
    signmethod: str = _sign.DEFAULT_SIGN_METHOD,
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
    sig = _sign.sign(params, device_secret, signmethod)
    if not send_signmethod and signmethod != "hmacmd5":
        raise _sign.SignError("signmethod", "the server assumes hmacmd5 when it is not sent")
    fields = [("productKey", product_key), ("deviceName", device_name), ("clientId", cid)]
    if timestamp is not None:
        fields.append(("timestamp", str(timestamp)))
    if send_signmethod:
        fields.append(("signmethod", signmethod))
    fields.append(("sign", sig))
    for name, value in (("resources", resources), ("version", version)):
        if value is not None:
            fields.append((name, _sign.check_text(name, value)))
    return urlencode(fields)


def parse_reply(body: "bytes | str", status: int = _OK) -> dict:
    """The ``data`` object of an iot-auth JSON reply; AuthError unless code is 200.

    ``body`` is bytes or str; ``status`` is the HTTP status, used when the body is not JSON.
    """
    try:
        # json.loads takes either; the stubs' AnyStr rejects the union.
        reply = json.loads(body)  # pyright: ignore[reportArgumentType]
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        if status != _OK:
            raise AuthError(status, "HTTP status without a JSON reply")
        raise ReplyError("reply is not a JSON object")
    code = reply.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int):
        raise ReplyError("reply has no numeric code")
    if code != _OK:
        message = reply.get("message")
        raise AuthError(code, message if isinstance(message, str) else "")
    data = reply.get("data")
    if not isinstance(data, dict):
        raise ReplyError("reply has no data object")
    return data


def require_str(data: dict, name: str) -> str:
    """``data[name]`` if it is a non-empty string, else ReplyError."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ReplyError("reply lacks data." + name)
    return value


class AuthToken:
    """A successful device auth: MQTT username ``iot_id``, password ``iot_token``.

    ``host``/``port`` are the MQTT endpoint when the server sent one (resources=mqtt), else None.
    """

    def __init__(
        self, iot_id: str, iot_token: str, host: "str | None" = None, port: "int | None" = None
    ):
        self.iot_id = iot_id
        self.iot_token = iot_token
        self.host = host
        self.port = port


def parse_auth_reply(body: "bytes | str", status: int = _OK) -> AuthToken:
    """Parse the ``/auth/devicename`` reply into an AuthToken; AuthError/ReplyError otherwise."""
    data = parse_reply(body, status)
    host = port = None
    mqtt = data.get("resources")
    mqtt = mqtt.get("mqtt") if isinstance(mqtt, dict) else None
    if isinstance(mqtt, dict):
        host = mqtt.get("host")
        port = mqtt.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if not isinstance(host, str) or not host or not isinstance(port, int):
            raise ReplyError("reply has a malformed data.resources.mqtt")
    return AuthToken(require_str(data, "iotId"), require_str(data, "iotToken"), host, port)
