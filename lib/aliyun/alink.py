"""Alink topics and JSON for one device (Aliyun IoT reference §4).

``Topics`` builds the topics of a device once, so the publish and dispatch paths only compare
strings. The functions below encode uplink requests, decode downlink requests and replies, and
check property values against a small schema, turning every malformed downlink into an
``AlinkError`` whose ``code`` is the Alink reply code to send back (460: parameter error, §4.4).
"""

import json

from micropython import const

CODE_OK = const(200)
CODE_PARAM_ERROR = const(460)


class AlinkError(ValueError):
    """A downlink that cannot be served; ``code`` is the Alink reply code to answer with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Topics:
    """The topics of one device (reference §4.1, §4.3, §4.5).

    ``thing_prefix`` starts every thing-model topic: ``thing/event/<id>/post`` and
    ``thing/service/<id>`` (``property/set`` included), each answered on ``…_reply``.
    """

    def __init__(self, product_key: str, device_name: str):
        pk_dn = product_key + "/" + device_name
        self.user_prefix = "/" + pk_dn + "/user/"
        self.thing_prefix = "/sys/" + pk_dn + "/thing/"
        self.property_post = self.event_post("property")
        self.ntp_request = "/ext/ntp/" + pk_dn + "/request"
        self.ntp_response = "/ext/ntp/" + pk_dn + "/response"
        self.batch_post = self.thing_prefix + "event/property/batch/post"
        self.desired_get = self.thing_prefix + "property/desired/get"
        self.desired_delete = self.thing_prefix + "property/desired/delete"
        self.rrpc_request = "/sys/" + pk_dn + "/rrpc/request/"  # + <messageId> (§4.7)
        self.rrpc_response = "/sys/" + pk_dn + "/rrpc/response/"

    def downlinks(self) -> tuple:
        """The filters the official SDKs subscribe (reference §4.3, §4.5, §4.7): property set,
        service calls, the replies the device waits for, RRPC requests and the NTP response.
        ``thing/#`` is not among them: no source says the platform grants it."""
        t = self.thing_prefix
        return (
            t + "service/property/set",
            t + "service/+",
            t + "event/+/post_reply",
            self.batch_post + "_reply",
            self.desired_get + "_reply",
            self.desired_delete + "_reply",
            self.rrpc_request + "+",
            self.ntp_response,
        )

    def user(self, name: str) -> str:
        """A custom topic ``/pk/dn/user/<name>`` (``name`` may hold further levels)."""
        return self.user_prefix + name

    def event_post(self, identifier: str) -> str:
        return self.thing_prefix + "event/" + identifier + "/post"


def encode_request(msg_id: str, method: str, params, ack: bool = True) -> bytes:
    """An Alink request: ``{"id","version":"1.0","sys":{"ack"},"params","method"}``."""
    body = {
        "id": msg_id,
        "version": "1.0",
        "sys": {"ack": 1 if ack else 0},
        "params": params,
        "method": method,
    }
    return json.dumps(body).encode()


def encode_reply(msg_id: str, code: int = CODE_OK, data=None, message: str = "") -> bytes:
    """A device reply to a downlink request (§4.2); ``message`` only for errors."""
    body = {"id": msg_id, "code": code, "data": {} if data is None else data}
    if message:
        body["message"] = message
    return json.dumps(body).encode()


def _load_object(payload: bytes) -> dict:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeError):
        body = None
    if not isinstance(body, dict):
        raise AlinkError(CODE_PARAM_ERROR, "JSON object expected")
    return body


def decode_request(payload: bytes) -> tuple:
    """Decode a downlink request into ``(id, method, params)``; ``AlinkError`` (460) if malformed.

    The id is returned as a string even when the sender used a number, so replies echo it in the
    envelope's own form; a request without an id cannot be answered and is rejected with id "".
    """
    body = _load_object(payload)
    msg_id = body.get("id")
    if isinstance(msg_id, int) and not isinstance(msg_id, bool):
        msg_id = str(msg_id)
    params = body.get("params", {})
    method = body.get("method", "")
    if not isinstance(msg_id, str) or not msg_id:
        raise AlinkError(CODE_PARAM_ERROR, "missing id")
    if not isinstance(params, dict) or not isinstance(method, str):
        raise AlinkError(CODE_PARAM_ERROR, "bad params or method")
    return msg_id, method, params


def request_id(payload: bytes) -> str:
    """Best-effort id of a request that failed to decode, so the error reply can cite it."""
    try:
        msg_id = json.loads(payload).get("id", "")
    except (ValueError, UnicodeError, AttributeError):
        return ""
    return str(msg_id) if isinstance(msg_id, (str, int)) else ""


def decode_reply(payload: bytes) -> tuple:
    """Decode a cloud reply (``…_reply`` topics) into ``(id, code, data, message)``."""
    body = _load_object(payload)
    code = body.get("code")
    if not isinstance(code, int):
        raise AlinkError(CODE_PARAM_ERROR, "reply without code")
    return str(body.get("id", "")), code, body.get("data"), body.get("message", "")


def check_properties(params: dict, schema: dict) -> dict:
    """Check downlink property values against ``schema``; return the accepted values.

    ``schema`` maps a property identifier to ``(type, low, high)`` where ``type`` is ``int``,
    ``float``, ``bool`` or ``str`` and the bounds (inclusive; None = open) apply to numbers and to
    string lengths. Unknown identifiers and wrong types raise ``AlinkError`` 460 naming the key, so
    nothing is half-applied.
    """
    accepted = {}
    for key in params:
        spec = schema.get(key)
        if spec is None:
            raise AlinkError(CODE_PARAM_ERROR, "unknown property " + key)
        kind, low, high = spec
        value = params[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise AlinkError(CODE_PARAM_ERROR, key + ": " + kind.__name__ + " expected")
        size = len(value) if isinstance(value, str) else value
        if (low is not None and size < low) or (high is not None and size > high):
            raise AlinkError(CODE_PARAM_ERROR, key + ": out of range")
        accepted[key] = value
    return accepted


def ntp_request(device_send_ms) -> bytes:
    """NTP request body (§4.5): the device's send time in ms."""
    return json.dumps({"deviceSendTime": str(device_send_ms)}).encode()


def ntp_time_ms(payload: bytes, device_recv_ms: int) -> int:
    """Accurate time in ms from an NTP response (§4.5):
    (serverRecvTime + serverSendTime + deviceRecvTime - deviceSendTime) / 2."""
    body = _load_object(payload)
    try:
        sent = int(body["deviceSendTime"])
        server_recv = int(body["serverRecvTime"])
        server_send = int(body["serverSendTime"])
    except (KeyError, ValueError, TypeError):
        raise AlinkError(CODE_PARAM_ERROR, "incomplete NTP response") from None
    return (server_recv + server_send + device_recv_ms - sent) // 2
