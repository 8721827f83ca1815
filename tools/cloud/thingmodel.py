"""The thing-model side of the cloud: TSL checks on posts, batch post, desired properties,
service calls checked against the TSL, and synchronous services over RRPC.

Uplinks (``Alink.uplink`` dispatches here; each returns ``(status, [(topic, reply)])``):

* ``thing/event/property/post``, ``thing/event/<id>/post`` and
  ``thing/event/property/batch/post``: when the product has a TSL, every value is checked
  (``tools.cloud.tsl``); a post that breaks it is refused whole, ``post_reply`` code 460 with a
  message naming the field and the rule (460 is the platform's "invalid parameter" code,
  reference §4.4), and nothing is stored;
* ``thing/property/desired/get`` (params: a list of identifiers, empty = all) →
  ``get_reply`` data ``{id: {"value", "version"}}``; ``thing/property/desired/delete``
  (params ``{id: {"version"}}``) → ``delete_reply``;
* ``/sys/pk/dn/rrpc/response/<messageId>``: the answer of a sync service call.

Sync services (TSL ``callType`` sync) go over RRPC (reference §4.7): the request on
``/sys/pk/dn/rrpc/request/<messageId>``, the answer awaited on ``…/rrpc/response/<messageId>``
for at most ``SYNC_TIMEOUT_S`` = 8 s: the InvokeThingService API documentation (doc 69584,
使用限制): "同步调用服务，最大超时时间为8秒" (the RRpc API's Timeout is 1000–8000 ms, §4.7).
"""

import asyncio
import json

from tools.cloud import registry as reg
from tools.cloud import tsl

SYNC_TIMEOUT_S = 8.0
CODE_OK, CODE_PARAM_ERROR = 200, 460
DESIRED_GET = "thing.property.desired.get"
DESIRED_DELETE = "thing.property.desired.delete"
BATCH_POST = "thing.event.property.batch.post"


class CallError(Exception):
    """A service call that cannot be made (``code`` as the API reports it)."""

    def __init__(self, message, code="InvalidArgs"):
        super().__init__(message)
        self.code = code


def _body(data):
    try:
        body = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def reply(msg_id, code, method, data=None, message="success") -> bytes:
    body = {"code": code, "data": {} if data is None else data, "id": msg_id}
    body.update(message=message, method=method, version="1.0")
    return json.dumps(body).encode()


class ThingModel:
    def __init__(self, alink):
        self.alink = alink
        self.pending_rrpc = {}  # (pk, dn, messageId) -> future of the response body

    @property
    def registry(self):
        return self.alink.registry

    def model(self, pk):
        return self.registry.things.model(pk)

    # posts -------------------------------------------------------------------------------------

    def check_post(self, ident, method, params):
        """Raise ``tsl.TslError`` when the post breaks the product's TSL (none: no check)."""
        model = self.model(ident.product_key)
        if model is None:
            return
        if method == "thing.event.property.post":
            tsl.check_post(model, params)
        elif method == BATCH_POST:
            self._check_batch(model, params)
        else:
            tsl.check_event(model, method.split(".")[2], params)

    def _check_batch(self, model, params):
        props = params.get("properties", {})
        events = params.get("events", {})
        if not isinstance(props, dict) or not isinstance(events, dict) or not (props or events):
            raise tsl.TslError("batch post: params.properties / params.events objects expected")
        for name, items in props.items():
            for item in _items(items, name):
                tsl.check_post(model, {name: item})
        for name, items in events.items():
            for item in _items(items, name):
                tsl.check_event(model, name, item)

    def record(self, ident, values: dict):
        """Store accepted property values (latest and history)."""
        pk, dn = ident.product_key, ident.device_name
        self.registry.merge_properties(pk, dn, values)
        self.registry.things.record(pk, dn, values)

    def record_batch(self, ident, params, now) -> None:
        """A batch post: every value into the history, the newest of each as the latest."""
        pk, dn = ident.product_key, ident.device_name
        latest = {}
        for name, items in (params.get("properties") or {}).items():
            for item in _items(items, name):
                t = item.get("time") if isinstance(item, dict) else None
                value = item.get("value") if isinstance(item, dict) else item
                entry = {"value": value, "time": t if isinstance(t, int) else now}
                self.registry.things.record(pk, dn, {name: entry})
                if name not in latest or entry["time"] >= latest[name]["time"]:
                    latest[name] = entry
        self.registry.merge_properties(pk, dn, latest)

    # desired properties ------------------------------------------------------------------------

    def desired_get(self, ident, topic, data, received):
        body = _body(data)
        msg_id = self.alink.decimal_id(body.get("id")) if body else None
        if body is None or msg_id is None:
            return CODE_PARAM_ERROR, []
        params = body.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            out = reply(msg_id, CODE_PARAM_ERROR, DESIRED_GET, message="params: identifiers")
            return CODE_PARAM_ERROR, [(topic + "_reply", out)]
        values = self.registry.things.desired(ident.product_key, ident.device_name, params)
        return CODE_OK, [(topic + "_reply", reply(msg_id, CODE_OK, DESIRED_GET, values))]

    def desired_delete(self, ident, topic, data, received):
        body = _body(data)
        msg_id = self.alink.decimal_id(body.get("id")) if body else None
        if body is None or msg_id is None:
            return CODE_PARAM_ERROR, []
        params = body.get("params")
        if not isinstance(params, dict):
            out = reply(msg_id, CODE_PARAM_ERROR, DESIRED_DELETE, message="params: an object")
            return CODE_PARAM_ERROR, [(topic + "_reply", out)]
        self.registry.things.delete_desired(ident.product_key, ident.device_name, params)
        return CODE_OK, [(topic + "_reply", reply(msg_id, CODE_OK, DESIRED_DELETE))]

    async def set_desired(self, pk, dn, values: dict) -> dict:
        """SetDeviceDesiredProperty: store; an online device gets the values pushed as a
        property set (it answers on ``set_reply``, logged; no wait)."""
        model = self.model(pk)
        if model is not None:
            tsl.check_set(model, values)
        stored = self.registry.things.set_desired(pk, dn, values, reg.now_ms())
        online = self.alink.cloud.broker.session_connected(pk + "&" + dn)
        if online:
            msg_id = self.alink.next_id()
            topic = "/sys/%s/%s/thing/service/property/set" % (pk, dn)
            request = {"id": msg_id, "version": "1.0", "params": values}
            request["method"] = "thing.service.property.set"
            await self.alink.publish_down(topic, json.dumps(request).encode(), 1)
        return {"desired": stored, "pushed": online}

    # service calls -----------------------------------------------------------------------------

    def check_call(self, pk, identifier, params):
        """TSL check of a property set or service call; returns the service's callType."""
        model = self.model(pk)
        if model is None:
            return "async"
        try:
            if identifier == "property/set":
                tsl.check_set(model, params)
                return "async"
            return tsl.check_service_input(model, identifier, params)["callType"]
        except tsl.TslError as exc:
            raise CallError(str(exc)) from None

    def call_type(self, pk, identifier):
        model = self.model(pk)
        if model is None or identifier == "property/set":
            return "async"
        found = model["services"].get(identifier)
        return found["callType"] if found else "async"

    async def call_sync(self, pk, dn, identifier, params, timeout=SYNC_TIMEOUT_S) -> dict:
        """A sync service over RRPC; the device's Alink reply, or ``CallError`` TIMEOUT."""
        msg_id = self.alink.next_id()
        topic = "/sys/%s/%s/rrpc/request/%s" % (pk, dn, msg_id)
        request = {"id": msg_id, "version": "1.0", "params": params}
        request["method"] = "thing.service." + identifier
        future = asyncio.get_running_loop().create_future()
        self.pending_rrpc[(pk, dn, msg_id)] = future
        api = {"api": "InvokeThingService", "identifier": identifier, "id": msg_id}
        api.update(params=params, callType="sync")
        try:
            self.registry.log(reg.API, pk, dn, topic, api, CODE_OK)
            await self.alink.publish_down(topic, json.dumps(request).encode(), 0)  # QoS 0 (§4.7)
            try:
                return await asyncio.wait_for(future, min(timeout, SYNC_TIMEOUT_S))
            except asyncio.TimeoutError:
                self.registry.log(reg.API, pk, dn, topic, api, "TIMEOUT")
                raise CallError("no RRPC response in %s s" % timeout, "TIMEOUT") from None
        finally:
            self.pending_rrpc.pop((pk, dn, msg_id), None)

    def rrpc_response(self, ident, topic, data, received):
        msg_id = topic.rsplit("/", 1)[-1]
        body = _body(data)
        if body is None or not isinstance(body.get("code"), int):
            body = {"id": msg_id, "code": None, "raw": data.decode("utf-8", "replace")}
        future = self.pending_rrpc.get((ident.product_key, ident.device_name, msg_id))
        if future is not None and not future.done():
            future.set_result(body)
        return body.get("code") or CODE_OK, []


def _items(items, name):
    if not isinstance(items, list) or not items:
        raise tsl.TslError("batch post: %s must be a non-empty list" % name)
    return items
