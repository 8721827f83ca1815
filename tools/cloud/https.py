"""A small asyncio HTTP/1.1 server and the iot-auth endpoints (reference §2, §3.1).

``POST /auth/devicename``       HTTPS device auth → iotId/iotToken (valid 7 days)
``POST /auth/register/device``  dynamic registration (pre-registration) → deviceSecret

Replies are JSON with the platform's ``code`` (HTTP status 200 for every decided request; the
status of iot-auth errors is not documented, SDKs read the JSON code). Error bodies are
``{"code": <int>, "message": "…"}`` (shape INFERRED, §2). Codes: 401 sign mismatch, 460 missing
or malformed field, 5001 unknown product/device, 6200 auth type not allowed (product without
dynamic registration, device already activated, device without a DeviceSecret), 6204 device
disabled (device error code, §4.4), 429 throttled (§4.4): after 5 sign mismatches (401) of one
device within 60 s every request of that device is answered 429 until the oldest failure is
60 s old (numbers: choice, see ``limits``), 500 unexpected server error.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import urllib.parse

from tools import aliyun_sign as _sign
from tools.cloud import registry as reg
from tools.cloud.limits import SlidingWindow

log = logging.getLogger("aliyun-local.https")

MAX_HEADER_LINES = 64
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 30
FORM_TYPE = "application/x-www-form-urlencoded"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
REASONS.update({405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large"})
REASONS.update(
    {500: "Internal Server Error", 206: "Partial Content", 416: "Range Not Satisfiable"}
)


_GONE = (EOFError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError)


class Request:
    def __init__(self, method, target, headers, body, peer):
        self.method = method
        url = urllib.parse.urlsplit(target)
        self.path = url.path
        self.query = dict(urllib.parse.parse_qsl(url.query))
        self.headers = headers
        self.body = body
        self.peer = peer

    def json(self):
        return json.loads(self.body or b"{}")


class Response:
    """A reply; ``stream`` (an async callable taking the writer) sends an open-ended body."""

    def __init__(
        self, status=200, body=b"", content_type="application/json", stream=None, headers=()
    ):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.stream = stream
        self.headers = headers  # more (name, value) pairs


def json_response(obj, status=200) -> Response:
    return Response(status, json.dumps(obj, ensure_ascii=False).encode())


class HTTPError(Exception):
    def __init__(self, status):
        super().__init__(REASONS.get(status, str(status)))
        self.status = status


async def read_request(reader, peer) -> Request:
    line = await reader.readline()
    if not line:
        raise EOFError
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError:
        raise HTTPError(400) from None
    if not version.startswith("HTTP/1."):
        raise HTTPError(400)
    headers = {}
    for _ in range(MAX_HEADER_LINES):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise HTTPError(400)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HTTPError(411)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HTTPError(400) from None
    if length < 0 or length > MAX_BODY:
        raise HTTPError(413)
    body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), target, headers, body, peer)


class HTTPServer:
    """Serves ``routes`` ({(method, path): async handler(request) -> Response}); one request
    per connection (``Connection: close``)."""

    def __init__(self, routes, ssl_context=None, name="http"):
        self.routes = routes
        self.ssl_context = ssl_context
        self.name = name
        self.server = None
        self._tasks = set()

    async def start(self, host, port):
        self.server = await asyncio.start_server(self._serve, host, port, ssl=self.ssl_context)
        return self.port

    @property
    def port(self):
        return self.server.sockets[0].getsockname()[1]

    async def close(self):
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                request = await asyncio.wait_for(read_request(reader, peer), READ_TIMEOUT_S)
                response = await self._dispatch(request)
            except HTTPError as err:
                response = json_response({"code": err.status, "message": str(err)}, err.status)
            except _GONE:
                raise
            except Exception:  # a bug answers 500: it neither drops the client nor the server
                log.exception("%s: request failed", self.name)
                response = json_response({"code": 500, "message": REASONS[500]}, 500)
            await self._write(writer, response)
        except _GONE:
            pass
        except Exception:
            log.exception("%s: reply failed", self.name)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, request) -> Response:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            known = any(path == request.path for _, path in self.routes)
            raise HTTPError(405 if known else 404)
        return await handler(request)

    async def _write(self, writer, response):
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: close\r\n" % (
            response.status,
            REASONS.get(response.status, "Status"),
            response.content_type,
        )
        head += "".join("%s: %s\r\n" % pair for pair in response.headers)
        if response.stream is None:
            head += "Content-Length: %d\r\n" % len(response.body)
        writer.write(head.encode() + b"\r\n" + response.body)
        await writer.drain()
        if response.stream is not None:
            await response.stream(writer)


# iot-auth -----------------------------------------------------------------------------------

CODE_OK = 200
AUTH_ERRORS = {
    401: "request auth error",
    429: "too many requests",
    460: "param error",
    500: "unknow error",  # sic, as the platform spells it (§2)
    5001: "meta device not found",
    6200: "auth type mismatch",
    6204: "device disabled",
}


class AuthError(Exception):
    def __init__(self, code, detail=""):
        super().__init__(detail or AUTH_ERRORS[code])
        self.code = code
        self.detail = detail


def _form(request) -> dict:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise AuthError(460, "Content-Type must be " + FORM_TYPE)
    try:
        pairs = urllib.parse.parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise AuthError(460, "form is not UTF-8") from None
    return dict(pairs)


def _required(form, *names):
    for name in names:
        if not form.get(name):
            raise AuthError(460, "missing " + name)


def _same_hex(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.lower(), expected)  # hex case-insensitive (§1.4)


class AuthAPI:
    """The iot-auth routes; ``cloud`` provides the registry, region and MQTT endpoint."""

    def __init__(self, cloud):
        self.cloud = cloud
        limits = cloud.limits
        self.failures = SlidingWindow(limits.auth_failures, limits.auth_window_s)

    def routes(self):
        return {
            ("POST", "/auth/devicename"): self.devicename,
            ("POST", "/auth/register/device"): self.register_device,
        }

    async def devicename(self, request) -> Response:
        return self._answer(request, self._devicename)

    async def register_device(self, request) -> Response:
        return self._answer(request, self._register)

    def _answer(self, request, handler) -> Response:
        form, logged = {}, {}
        pk = dn = None
        try:
            form = _form(request)
            pk, dn = form.get("productKey"), form.get("deviceName")
            logged = reg.redact(form)
            if self.failures.blocked((pk, dn)):
                raise AuthError(
                    429,
                    "more than %d failed requests in %g s"
                    % (self.failures.limit, self.failures.window),
                )
            data = handler(form)
            body = {"code": CODE_OK, "data": data, "message": "success"}
        except AuthError as err:
            body = {"code": err.code, "message": AUTH_ERRORS[err.code]}
            logged["error"] = err.detail or AUTH_ERRORS[err.code]
            if err.code == 401:
                self.failures.add((pk, dn))
        except Exception:
            log.exception("iot-auth request failed")
            body = {"code": 500, "message": AUTH_ERRORS[500]}
        self.cloud.registry.log(reg.API, pk, dn, request.path, logged, body["code"])
        return json_response(body)

    def _devicename(self, form) -> dict:
        """HTTPS device auth (§2): sign over every field but version, sign, resources,
        signmethod; signmethod defaults to hmacmd5."""
        _required(form, "productKey", "deviceName", "clientId", "sign")
        method = form.get("signmethod") or "hmacmd5"
        if method not in _sign.SIGN_METHODS:
            raise AuthError(460, "unknown signmethod " + method)
        if len(form["clientId"]) > 64:
            raise AuthError(460, "clientId longer than 64 characters")
        pk, dn = form["productKey"], form["deviceName"]
        device = self._device(pk, dn)
        if not device["deviceSecret"]:
            raise AuthError(
                6200, "device has no DeviceSecret (registered without pre-registration)"
            )
        params = {k: form.get(k) for k in ("clientId", "deviceName", "productKey", "timestamp")}
        params["timestamp"] = params["timestamp"] or None
        try:
            expected = _sign.sign(params, device["deviceSecret"], method)
        except _sign.SignError as exc:
            raise AuthError(460, str(exc)) from None
        if not _same_hex(form["sign"], expected):
            raise AuthError(401, "sign does not match the device secret")
        if not device["enabled"]:
            raise AuthError(6204)
        iot_id, token = self.cloud.registry.issue_token(pk, dn)
        data = {"iotId": iot_id, "iotToken": token}
        if "mqtt" in form.get("resources", "").split(","):
            data["resources"] = {"mqtt": self.cloud.mqtt_resource(pk)}
        return data

    def _register(self, form) -> dict:
        """Dynamic registration over HTTPS, pre-registered devices only (§3.1)."""
        _required(form, "productKey", "deviceName", "random", "sign")
        method = (form.get("signMethod") or form.get("signmethod") or "hmacmd5").lower()
        if method not in _sign.SIGN_METHODS:  # SDKs send hmacsha256 and HmacMD5 (§3.1)
            raise AuthError(460, "unknown signMethod")
        pk, dn = form["productKey"], form["deviceName"]
        product = self.cloud.registry.product(pk)
        if product is None:
            raise AuthError(5001, "no product " + pk)
        try:
            content = _sign.sign_content(
                {"deviceName": dn, "productKey": pk, "random": form["random"]},
                ("deviceName", "productKey", "random"),
            )
            expected = _sign.hmac_sign(content, product["productSecret"], method)
        except _sign.SignError as exc:
            raise AuthError(460, str(exc)) from None
        if not _same_hex(form["sign"], expected):
            raise AuthError(401, "sign does not match the product secret")
        if not product["dynamicRegister"]:
            raise AuthError(6200, "dynamic registration is off for product " + pk)
        device = self._device(pk, dn)
        if not device["enabled"]:
            raise AuthError(6204)
        if device["activated"] or not device["deviceSecret"]:
            raise AuthError(6200, "device already activated")
        return {"productKey": pk, "deviceName": dn, "deviceSecret": device["deviceSecret"]}

    def _device(self, pk, dn):
        device = self.cloud.registry.device(pk, dn)
        if device is None:
            raise AuthError(5001, "no device %s/%s" % (pk, dn))
        return device
