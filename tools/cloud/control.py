"""Control API of a running server (loopback HTTP, bearer token from ``server.json``).

The console's actions that need the live broker go through here: 发布消息 (``/pub``), property
set (``/set-property``), forcing a disabled device offline (``/kick``), the live log
(``/log``, JSON lines) and, for tests, an offset of the cloud's clock (``/clock``). Devices
cannot reach it: it listens on 127.0.0.1 only and wants the token that only the state dir's
owner can read.
"""

import asyncio
import base64
import hmac
import json

from tools.cloud import registry as reg
from tools.cloud import topics
from tools.cloud.alink import CloudError
from tools.cloud.https import HTTPError, Response, json_response
from tools.cloud.thingmodel import CallError


def _device_fields(body) -> tuple:
    """``(productKey, deviceName)`` of a request body; CloudError (400) unless both are text."""
    if not isinstance(body, dict):
        raise CloudError("the body must be a JSON object")
    pk, dn = body.get("productKey"), body.get("deviceName")
    if not isinstance(pk, str) or not isinstance(dn, str) or not pk or not dn:
        raise CloudError("productKey and deviceName must be non-empty strings")
    return pk, dn


class ControlAPI:
    def __init__(self, cloud, token: str):
        self.cloud = cloud
        self.token = token

    def routes(self):
        return {
            ("GET", "/status"): self._guard(self.status),
            ("POST", "/pub"): self._guard(self.pub),
            ("POST", "/set-property"): self._guard(self.set_property),
            ("POST", "/invoke-service"): self._guard(self.invoke_service),
            ("POST", "/set-desired"): self._guard(self.set_desired),
            ("POST", "/kick"): self._guard(self.kick),
            ("GET", "/log"): self._guard(self.log),
            ("POST", "/clock"): self._guard(self.clock),
        }

    def guard(self, handler):
        """``handler`` behind the token check, its errors as ``{"ok": false}`` (400)."""
        return self._guard(handler)

    def _guard(self, handler):
        expected = ("Bearer " + self.token).encode()

        async def guarded(request):
            # Header values are decoded as Latin-1, so any byte a client sent encodes back.
            given = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, expected):
                raise HTTPError(401)
            try:
                return await handler(request)
            except (
                CloudError,
                CallError,
                reg.RegistryError,
                ValueError,
                KeyError,
                TypeError,
            ) as err:
                return json_response({"ok": False, "error": str(err)}, 400)

        return guarded

    async def status(self, request):
        return json_response({"ok": True, **self.cloud.info})

    async def pub(self, request):
        """发布消息: publish to a topic a device may subscribe to (reference §4.1)."""
        body = request.json()
        topic, qos = body["topic"], int(body.get("qos", 0))
        if qos not in (0, 1):
            raise CloudError("qos must be 0 or 1")
        if "payload_b64" in body:
            payload = base64.b64decode(body["payload_b64"])
        else:
            payload = str(body.get("payload", "")).encode()
        registry = self.cloud.registry
        known = {p["productKey"] for p in registry.products()}
        if "+" in topic or "#" in topic:
            raise CloudError("a topic to publish to has no wildcards")
        pk, dn = topics.topic_owner(topic, known)
        if dn is None and pk is not None:
            pass  # /broadcast/${pk}/…: every device of the product may subscribe (§4.1)
        elif pk is None or registry.device(pk, dn) is None:
            raise CloudError("topic %s names no registered device" % topic)
        elif not topics.may_subscribe(pk, dn, topic, registry.topic_classes(pk)):
            raise CloudError("%s/%s has no subscribe permission on %s" % (pk, dn, topic))
        api = {"api": "Pub", "topic": topic, "qos": qos}
        registry.log(reg.API, pk, dn, topic, api, 200)
        status = await self.cloud.alink.publish_down(topic, payload, qos)
        return json_response({"ok": True, "topic": topic, "qos": qos, "status": str(status)})

    async def set_property(self, request):
        body = request.json()
        pk, dn = _device_fields(body)
        timeout = float(body.get("timeout", 10))
        check = bool(body.get("check", True))
        reply = await self.cloud.alink.set_property(pk, dn, body["params"], timeout, check)
        return json_response({"ok": True, "reply": reply})

    async def invoke_service(self, request):
        """InvokeThingService (async ``…_reply``, or RRPC for sync services)."""
        body = request.json()
        pk, dn = body["productKey"], body["deviceName"]
        alink = self.cloud.alink
        identifier, params = body["identifier"], body.get("params", {})
        timeout, check = float(body.get("timeout", 10)), bool(body.get("check", True))
        if body.get("sync"):
            if check:
                alink.things.check_call(pk, identifier, params)
            if not self.cloud.broker.session_connected(pk + "&" + dn):
                raise CloudError("device %s/%s is offline" % (pk, dn))
            reply = await alink.things.call_sync(pk, dn, identifier, params, timeout)
        else:
            reply = await alink.call_service(pk, dn, identifier, params, timeout, check)
        return json_response({"ok": True, "reply": reply})

    async def set_desired(self, request):
        body = request.json()
        result = await self.cloud.alink.things.set_desired(
            body["productKey"], body["deviceName"], body["params"]
        )
        return json_response({"ok": True, **result})

    async def kick(self, request):
        body = request.json()
        pk, dn = _device_fields(body)
        reason = body.get("reason", "kicked by the console")
        if not isinstance(reason, str):
            raise CloudError("reason must be a string")
        kicked = await self.cloud.broker.kick(pk + "&" + dn, reason)
        return json_response({"ok": True, "kicked": kicked})

    async def clock(self, request):
        """Move the cloud's clock (NTP answers, the 24 h rule of property posts) by
        ``offset_ms`` from the host's: a test's way to make stored readings a day old."""
        offset = int(request.json()["offset_ms"])
        self.cloud.alink.clock_offset_ms = offset
        return json_response({"ok": True, "offset_ms": offset})

    async def log(self, request):
        """Last ``limit`` rows, then (``follow=1``) every new row, one JSON object a line."""
        registry = self.cloud.registry
        pk, dn = request.query.get("productKey"), request.query.get("deviceName")
        rows = registry.messages(pk, dn, int(request.query.get("limit", 20)))
        follow = request.query.get("follow") == "1"
        queue = asyncio.Queue()

        def listener(row):
            if (not pk or row["productKey"] == pk) and (not dn or row["deviceName"] == dn):
                queue.put_nowait(row)

        if follow:
            registry.listeners.append(listener)  # same loop step as the query: no gap

        async def stream(writer):
            try:
                for row in rows:
                    writer.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
                while follow:
                    row = await queue.get()
                    writer.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                    await writer.drain()
            finally:
                if listener in registry.listeners:
                    registry.listeners.remove(listener)

        return Response(200, content_type="application/x-ndjson", stream=stream)
