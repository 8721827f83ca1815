"""HTTPS device authentication (``/auth/devicename``): form body and reply parsing.

The device POSTs a url-encoded form to ``https://iot-auth.${region}.aliyuncs.com/auth/devicename``
and gets ``iotId``/``iotToken`` (MQTT username/password, valid 7 days) and optionally the MQTT
host and port (aliyun-iot.md §2). The form and reply helpers are shared with aliyun.dynreg.
"""

import json

from aliyun.sign import sign

AUTH_PATH = "/auth/devicename"
CONTENT_TYPE = "application/x-www-form-urlencoded"

# Reply codes of iot-auth (aliyun-iot.md §2) that retrying with the same inputs cannot fix:
# 401 sign mismatch, 460 missing or malformed field, 5001 no such device, 6200 auth type not
# allowed for the product.
PERMANENT_CODES = (401, 460, 5001, 6200)


class AuthError(Exception):
    """The server refused: ``code`` is the Aliyun code (or HTTP status), ``message`` its text;
    ``permanent`` when retrying with the same inputs cannot succeed."""

    def __init__(self, code: "int | None", message: str = ""):
        text = "code %s" % code
        if message:
            text += ": " + message
        if code == 401:
            text += " (check the device secret)"
        super().__init__(text)
        self.code = code
        self.message = message
        self.permanent = code in PERMANENT_CODES


class ReplyError(AuthError):
    """The reply is not the JSON the protocol defines: ``ReplyError(None, message)``."""


def auth_host(region: str = "cn-shanghai") -> str:
    """The iot-auth host of ``region``."""
    return "iot-auth." + region + ".aliyuncs.com"


def urlencode(fields: list) -> str:
    """Form-encode ``[(name, value), ...]`` in the given order (UTF-8, space as ``+``)."""
    out = []
    for pair in fields:
        sep = "="
        for text in pair:
            for b in text.encode():
                # Letters, digits and -._* stay as they are (application/x-www-form-urlencoded).
                if 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in b"-._*":
                    out.append(chr(b))
                else:
                    out.append("+" if b == 32 else "%%%02X" % b)
            out.append(sep)
            sep = "&"
    return "".join(out[:-1])


def auth_form(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: "str | None" = None,
    signmethod: str = "hmacsha256",
    resources: "str | None" = "mqtt",
    send_signmethod: bool = True,
) -> str:
    """The form body for ``/auth/devicename``; its byte length is ``len(body)`` (ASCII).

    clientId defaults to deviceName. The sign covers clientId, deviceName and productKey;
    resources and signmethod are not signed (§2). ``resources="mqtt"`` asks the server for the
    MQTT host and port. The server assumes hmacmd5 when the signmethod is not sent.
    """
    fields = [("productKey", product_key), ("deviceName", device_name)]
    fields.append(("clientId", client_id or device_name))
    sig = sign(dict(fields), device_secret, signmethod)
    if send_signmethod:
        fields.append(("signmethod", signmethod))
    fields.append(("sign", sig))
    if resources:
        fields.append(("resources", resources))
    return urlencode(fields)


def parse_reply(body: "bytes | str", status: int = 200) -> dict:
    """The ``data`` object of an iot-auth JSON reply; AuthError unless code is 200.

    ``body`` is bytes or str; ``status`` is the HTTP status, used when the body is not JSON.
    """
    try:
        # json.loads takes either; the stubs' AnyStr rejects the union.
        reply = json.loads(body)  # pyright: ignore[reportArgumentType]
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        if status != 200:
            raise AuthError(status, "HTTP status without a JSON reply")
        raise ReplyError(None, "reply is not a JSON object")
    code = reply.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int):
        raise ReplyError(None, "reply has no numeric code")
    if code != 200:
        message = reply.get("message")
        raise AuthError(code, message if isinstance(message, str) else "")
    data = reply.get("data")
    if not isinstance(data, dict):
        raise ReplyError(None, "reply has no data object")
    return data


def require_str(data: dict, name: str) -> str:
    """``data[name]`` if it is a non-empty string, else ReplyError."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ReplyError(None, "reply lacks data." + name)
    return value


def parse_auth_reply(body: "bytes | str", status: int = 200) -> tuple:
    """``(iotId, iotToken, host, port)`` from the ``/auth/devicename`` reply; host and port are
    the MQTT endpoint when the server sent one (resources=mqtt), else None."""
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
            raise ReplyError(None, "reply has a malformed data.resources.mqtt")
    return require_str(data, "iotId"), require_str(data, "iotToken"), host, port
