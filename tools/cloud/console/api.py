"""The console's JSON API (``/api/…``); the log and its live stream are in ``live.py``.

Everything goes through the parts the CLI uses: the registry for products, devices and the
log; the control API's own handlers (``tools.cloud.control``) for 发布消息 and property set;
the broker's ``kick`` for a disabled or deleted device; ``Alink.call_service`` for service
calls. Secrets leave only on request (``…/secret``), like the vendor console's 查看 buttons.
"""

import json

from tools.cloud import registry as reg
from tools.cloud import topics, tsl
from tools.cloud.alink import CloudError, property_values
from tools.cloud.console.live import LogAPI, json_response
from tools.cloud.control import ControlAPI

# Product kinds of the vendor console: (value, label, emulated by the local cloud). Only what
# the local cloud implements can be chosen; the rest is listed, disabled, so nobody is misled.
NODE_TYPES = (
    ("direct", "Directly connected device (直连设备)", True),
    ("subdevice", "Gateway sub-device (网关子设备)", False),
    ("gateway", "Gateway (网关设备)", False),
)
DATA_FORMATS = (
    ("alink", "ICA standard data format, Alink JSON (ICA 标准数据格式)", True),
    ("custom", "Passthrough / custom (透传/自定义)", False),
)
AUTH_TYPES = (
    ("secret", "Device secret (设备密钥)", True),
    ("dynreg", "Device secret + dynamic registration (动态注册)", True),
    ("id2", "ID²", False),
    ("x509", "X.509 certificate", False),
)
# Units for the chart's axis when the product has no TSL (the example firmware's thing model,
# firmware/tsl.json); with a TSL the units are the ones its properties name.
UNITS = {"Uptime": "s", "FreeHeap": "bytes", "ReportInterval": "s", "RSSI": "dBm"}


def units_of(registry, product_key) -> dict:
    model = registry.things.model(product_key)
    return UNITS if model is None else tsl.units(model)


PERM_TEXT = {topics.PUB: "publish", topics.SUB: "subscribe"}
PERM_TEXT[topics.PUB | topics.SUB] = "publish and subscribe"
HISTORY_ROWS = 5000  # property posts read for one chart
SERVICE_TIMEOUT_S = 10.0


class _Request:
    """What the control API's handlers read of a request: headers and a JSON body."""

    def __init__(self, token, body=None):
        self.headers = {"authorization": "Bearer " + token}
        self.query = {}
        self._body = body or {}

    def json(self):
        return self._body


def _handler(method):
    """Bad input of any kind becomes ``400 {"ok": false, "error": …}``."""

    async def handle(request):
        try:
            return await method(request)
        except (CloudError, reg.RegistryError, ValueError, KeyError, TypeError) as err:
            return json_response({"ok": False, "error": str(err)}, 400)

    return handle


async def _body(request) -> dict:
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("a JSON object is expected")
    return body


def _choice(value, choices, what):
    for key, _label, emulated in choices:
        if key == value:
            if not emulated:
                raise ValueError("%s %r is not emulated by the local cloud" % (what, value))
            return key
    raise ValueError("unknown %s %r" % (what, value))


class ConsoleAPI:
    def __init__(self, cloud, token: str):
        self.cloud = cloud
        self.token = token
        self.control = ControlAPI(cloud, token).routes()
        self.live = LogAPI(cloud)

    @property
    def registry(self):
        return self.cloud.registry

    def add_routes(self, router):
        dev = "/api/devices/{pk}/{dn}"
        for method, path, handler in (
            ("GET", "/api/products", self.products),
            ("POST", "/api/products", self.add_product),
            ("GET", "/api/products/{pk}/secret", self.product_secret),
            ("GET", "/api/devices", self.devices),
            ("POST", "/api/devices", self.add_device),
            ("GET", dev, self.device),
            ("DELETE", dev, self.delete_device),
            ("GET", dev + "/secret", self.device_secret),
            ("POST", dev + "/enabled", self.set_enabled),
            ("POST", dev + "/property-set", self.set_property),
            ("POST", dev + "/service", self.call_service),
            ("GET", dev + "/history", self.history),
            ("POST", "/api/pub", self.pub),
            ("GET", "/api/log", self.live.log),
        ):
            router.add_route(method, path, _handler(handler))
        router.add_get("/api/events", self.live.events)

    def close_streams(self):
        self.live.close_streams()

    async def _control(self, path, body):
        """One control-API call; its JSON reply as a console response."""
        response = await self.control[("POST", path)](_Request(self.token, body))
        return json_response(json.loads(response.body), response.status)

    def _device(self, request):
        pk, dn = request.match_info["pk"], request.match_info["dn"]
        device = self.registry.device(pk, dn)
        if device is None:
            raise reg.RegistryError("no device %s/%s" % (pk, dn))
        return device

    # products ---------------------------------------------------------------------------------

    async def products(self, request):
        counts = {}
        for device in self.registry.devices():
            counts[device["productKey"]] = counts.get(device["productKey"], 0) + 1
        rows = [
            {
                "productKey": p["productKey"],
                "name": p["name"],
                "nodeType": NODE_TYPES[0][1],
                "dataFormat": DATA_FORMATS[0][1],
                "authType": AUTH_TYPES[1 if p["dynamicRegister"] else 0][1],
                "devices": counts.get(p["productKey"], 0),
                "created": p["created"],
            }
            for p in self.registry.products()
        ]
        return json_response({"ok": True, "products": rows})

    async def add_product(self, request):
        body = await _body(request)
        name = str(body.get("name", "")).strip()
        if not 1 <= len(name) <= 30:
            raise ValueError("product name: 1-30 characters (console rule)")
        _choice(body.get("nodeType"), NODE_TYPES, "node type")
        _choice(body.get("dataFormat"), DATA_FORMATS, "data format")
        auth = _choice(body.get("authType"), AUTH_TYPES, "auth type")
        product = self.registry.add_product(name, dynamic_register=auth == "dynreg")
        return json_response(
            {"ok": True, "productKey": product["productKey"], "name": product["name"]}
        )

    async def product_secret(self, request):
        product = self.registry.product(request.match_info["pk"])
        if product is None:
            raise reg.RegistryError("no product %s" % request.match_info["pk"])
        return json_response({"ok": True, "productSecret": product["productSecret"]})

    # devices ----------------------------------------------------------------------------------

    def _last_seen(self, device):
        seen = [device["lastOnline"] or 0]
        for kind in (reg.UP, reg.STATUS):
            key = {"productKey": device["productKey"], "deviceName": device["deviceName"]}
            rows = self.registry.search_messages(dict(key, type=kind), limit=1)
            seen += [row["time"] for row in rows]
        return max(seen) or None

    def _public(self, device):
        return dict(reg.public_device(device), lastSeen=self._last_seen(device))

    async def devices(self, request):
        found = self.registry.devices(request.query.get("productKey") or None)
        return json_response({"ok": True, "devices": [self._public(d) for d in found]})

    async def add_device(self, request):
        body = await _body(request)
        name = str(body.get("deviceName") or "").strip() or None
        device = self.registry.add_device(str(body.get("productKey", "")), name)
        triple = {k: device[k] for k in ("productKey", "deviceName", "deviceSecret")}
        return json_response(dict(triple, ok=True))

    async def device(self, request):
        device = self._device(request)
        pk, dn = device["productKey"], device["deviceName"]
        user = list(topics.DEFAULT_USER_CLASSES) + [
            (name, topics.PERM_BITS[perm]) for name, perm in self.registry.topic_classes(pk)
        ]
        # The custom classes first, then the system ones (the vendor console's order).
        prefix = topics.USER_TEMPLATE.format(pk=pk, dn=dn)
        classes = [(prefix + n, perm, "custom") for n, perm in user]
        classes += [(t.format(pk=pk, dn=dn), p, "system") for t, p in topics.SYSTEM_CLASSES]
        rows = [
            {
                "topic": t,
                "permission": PERM_TEXT[perm],
                "kind": kind,
                "canPublishTo": bool(perm & topics.SUB),
            }
            for t, perm, kind in classes
        ]
        record = dict(
            self._public(device),
            iotId=device["iotId"],
            topics=rows,
            units=units_of(self.registry, device["productKey"]),
        )
        return json_response({"ok": True, "device": record})

    async def device_secret(self, request):
        return json_response({"ok": True, "deviceSecret": self._device(request)["deviceSecret"]})

    async def set_enabled(self, request):
        device = self._device(request)
        enabled = (await _body(request)).get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        pk, dn = device["productKey"], device["deviceName"]
        self.registry.set_enabled(pk, dn, enabled)
        kicked = False
        if not enabled:  # a disabled device goes offline at once (as the CLI does)
            kicked = await self.cloud.broker.kick(pk + "&" + dn, "device disabled")
        return json_response({"ok": True, "enabled": enabled, "kicked": kicked})

    async def delete_device(self, request):
        device = self._device(request)
        pk, dn = device["productKey"], device["deviceName"]
        await self.cloud.broker.kick(pk + "&" + dn, "device deleted")
        self.registry.delete_device(pk, dn)
        return json_response({"ok": True})

    # 发布消息, property set, services -----------------------------------------------------------

    async def pub(self, request):
        body = await _body(request)
        return await self._control("/pub", body)

    async def set_property(self, request):
        device = self._device(request)
        body = {
            "productKey": device["productKey"],
            "deviceName": device["deviceName"],
            "params": (await _body(request)).get("params"),
            "timeout": SERVICE_TIMEOUT_S,
        }
        return await self._control("/set-property", body)

    async def call_service(self, request):
        device = self._device(request)
        body = await _body(request)
        reply = await self.cloud.alink.call_service(
            device["productKey"],
            device["deviceName"],
            str(body.get("identifier", "")),
            body.get("params", {}),
            SERVICE_TIMEOUT_S,
        )
        return json_response({"ok": True, "reply": reply})

    async def history(self, request):
        """The values of one property over time, from the device's property posts in the log."""
        device = self._device(request)
        identifier = request.query["identifier"]
        pk, dn = device["productKey"], device["deviceName"]
        filters = {
            "productKey": pk,
            "deviceName": dn,
            "type": reg.UP,
            "topic": "/sys/%s/%s/thing/event/property/post" % (pk, dn),
            "status": "200",
            "since": int(request.query.get("since") or 0),
        }
        points = []
        for row in self.registry.search_messages(filters, HISTORY_ROWS):
            params = json.loads(row["content"]).get("params", {})
            item = property_values(params, row["time"]).get(identifier)
            value = item and item["value"]
            if isinstance(value, (int, float)):  # true/false chart as 1/0
                points.append([item["time"], float(value)])
        points.sort()
        unit = units_of(self.registry, pk).get(identifier, "")
        return json_response(
            {"ok": True, "identifier": identifier, "unit": unit, "points": points}
        )
