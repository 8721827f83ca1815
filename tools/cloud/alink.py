"""What the cloud does with device traffic: online/offline, Alink replies, NTP, the log.

Uplinks are dispatched by topic (table ``UPLINKS``, reference §4.3–§4.6):

* ``thing/event/property/post`` → ``…/post_reply`` (200; 460 for invalid JSON or envelope),
  latest values stored in the registry;
* ``thing/event/property/history/post`` → ``…/post_reply``: measurements of the past, each
  with its ``time`` (see ``check_history``); logged, not merged into the latest values;
* ``thing/event/<id>/post`` → ``…/post_reply``;
* ``thing/service/<id>_reply`` (``property/set_reply`` included) → logged with its code, and
  handed to a waiting ``set-property``;
* ``/ext/ntp/pk/dn/request`` → ``…/response`` with deviceSendTime, serverRecvTime,
  serverSendTime (§4.5);
* ``/ota/device/inform/pk/dn`` → the firmware version is stored;
* anything else a device may publish is logged.

A device-supplied ``time`` (ms) on a normal property post must lie within 24 h of the cloud's
clock either way (``TIME_WINDOW_MS``; §4.2 states the future side, the past side is what makes
devices use the history post), else the reply is 460 and nothing is stored. The cloud's clock
(NTP answers and this rule) can be moved by ``Alink.clock_offset_ms`` (control API ``/clock``),
so a test can make stored readings look a day old.

Replies honour ``sys.ack`` = 0 (no reply, §4.2). The registration sessions of dynamic
registration get ``/ext/register`` (``/ext/regnwl``) pushed right after CONNACK (§3.2).
"""

import asyncio
import base64
import itertools
import json
import logging
import re

from amqtt.plugins.base import BasePlugin

from tools.cloud import registry as reg
from tools.cloud import topics, tsl
from tools.cloud.broker_auth import VERDICT
from tools.cloud.thingmodel import BATCH_POST, CallError, ThingModel
from tools.cloud.topics import _CloudConfig

log = logging.getLogger("aliyun-local.alink")

MAX_MESSAGE = 256 * 1024  # MQTT message size limit (§4.9)
ID_MAX = 4294967295  # §4.2
CODE_OK, CODE_PARAM_ERROR = 200, 460
TIME_WINDOW_MS = 24 * 3600 * 1000  # a normal post's device-supplied time (§4.2)
HISTORY_MAX = 200  # properties/events of one history post (the 6106 limit of a post, §4.4)
PROPERTY_SET = "thing.service.property.set"
# A thing-model identifier: letters, digits and _, at most 50 (the console's TSL rule).
_SERVICE_ID = re.compile(r"^(property/set|[A-Za-z0-9_]{1,50})$")

# (topic template, handler name), first match wins.
UPLINKS = (
    ("/sys/{pk}/{dn}/thing/event/property/post", "_property_post"),
    ("/sys/{pk}/{dn}/thing/event/property/batch/post", "_batch_post"),
    ("/sys/{pk}/{dn}/thing/event/property/history/post", "_history_post"),
    ("/sys/{pk}/{dn}/thing/property/desired/get", "_desired_get"),
    ("/sys/{pk}/{dn}/thing/property/desired/delete", "_desired_delete"),
    ("/sys/{pk}/{dn}/rrpc/response/+", "_rrpc_response"),
    ("/sys/{pk}/{dn}/thing/event/+/post", "_event_post"),
    ("/sys/{pk}/{dn}/thing/service/#", "_service_reply"),
    ("/ext/ntp/{pk}/{dn}/request", "_ntp"),
    ("/ota/device/inform/{pk}/{dn}", "_ota_inform"),
    ("/ota/device/progress/{pk}/{dn}", "_ota_progress"),
    ("/sys/{pk}/{dn}/thing/ota/firmware/get", "_ota_get"),
)


class AlinkError(ValueError):
    """A malformed request: reply ``code`` 460 citing ``msg_id`` (may be empty)."""

    def __init__(self, msg_id, message, code=CODE_PARAM_ERROR):
        super().__init__(message)
        self.msg_id = msg_id
        self.code = code


class CloudError(Exception):
    """A console/API request that cannot be served (unknown device, device offline, timeout)."""


def payload_text(data: bytes) -> str:
    """Message content for the log: UTF-8 text, else ``base64:…``."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(bytes(data)).decode()


def _decimal_id(value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value and all("0" <= c <= "9" for c in value):
        if int(value) <= ID_MAX:
            return value
    return None


def parse_request(payload: bytes, method: str, params_type=dict) -> tuple:
    """Check an Alink request envelope (§4.2); return ``(id, params, wants_reply)``."""
    try:
        body = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AlinkError("", "invalid JSON") from None
    if not isinstance(body, dict):
        raise AlinkError("", "a JSON object is expected")
    msg_id = _decimal_id(body.get("id"))
    if msg_id is None:
        raise AlinkError("", "id must be a decimal string in 0..4294967295")
    if body.get("version", "1.0") != "1.0":
        raise AlinkError(msg_id, 'version must be "1.0"')
    if body.get("method", method) != method:
        raise AlinkError(msg_id, "method %r does not match the topic" % body.get("method"))
    params = body.get("params")
    if not isinstance(params, params_type) or not params:
        kind = "object" if params_type is dict else "array"
        raise AlinkError(msg_id, "params must be a non-empty " + kind)
    system = body.get("sys", {})
    if not isinstance(system, dict):
        raise AlinkError(msg_id, "sys must be an object")
    return msg_id, params, system.get("ack", 1) != 0


def encode_reply(msg_id, code, method, message="success") -> bytes:
    """The cloud's reply (§4.2)."""
    body = {
        "code": code,
        "data": {},
        "id": msg_id,
        "message": message,
        "method": method,
        "version": "1.0",
    }
    return json.dumps(body).encode()


def property_values(params: dict, now: int) -> dict:
    """Normalise ``{"P": {"value": v, "time": t}}`` and ``{"P": v}`` to the stored form."""
    out = {}
    for key, item in params.items():
        if isinstance(item, dict) and "value" in item:
            t = item.get("time")
            out[key] = {"value": item["value"], "time": t if isinstance(t, int) else now}
        else:
            out[key] = {"value": item, "time": now}
    return out


def check_times(msg_id, params: dict, now: int) -> None:
    """A normal post's ``time`` values within ``TIME_WINDOW_MS`` of ``now`` (AlinkError)."""
    for key, item in params.items():
        t = item.get("time") if isinstance(item, dict) else None
        if isinstance(t, int) and abs(t - now) > TIME_WINDOW_MS:
            raise AlinkError(msg_id, "%s: time %d is not within 24 h (history post)" % (key, t))


def check_history(msg_id, params: list, pk: str, dn: str, now: int) -> int:
    """``thing.event.property.history.post`` params: ``[{"identity": {"productKey",
    "deviceName"}, "properties": [{id: {"value", "time"}}, …], "events": [{id: {"value",
    "time"}}, …]}, …]``; a directly connected device reports only its own data. Returns the
    number of values; AlinkError names the first problem."""
    count = 0
    for entry in params:
        if not isinstance(entry, dict):
            raise AlinkError(msg_id, "params entries must be objects")
        identity = entry.get("identity")
        if not isinstance(identity, dict) or (
            identity.get("productKey"),
            identity.get("deviceName"),
        ) != (pk, dn):
            raise AlinkError(msg_id, "identity must name this device")
        for part in ("properties", "events"):
            items = entry.get(part, [])
            if not isinstance(items, list):
                raise AlinkError(msg_id, part + " must be an array")
            for group in items:
                if not isinstance(group, dict) or not group:
                    raise AlinkError(msg_id, part + " entries must be non-empty objects")
                for key, item in group.items():
                    _check_value(msg_id, key, item, now)
                    count += 1
    if not count or count > HISTORY_MAX:
        raise AlinkError(msg_id, "1..%d values per history post" % HISTORY_MAX)
    return count


def _check_value(msg_id, key, item, now: int) -> None:
    if not isinstance(item, dict) or "value" not in item:
        raise AlinkError(msg_id, "%s: value and time are required" % key)
    t = item.get("time")
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise AlinkError(msg_id, "%s: time (ms) is required" % key)
    if t - now > TIME_WINDOW_MS:
        raise AlinkError(msg_id, "%s: time %d is in the future" % (key, t))


class Alink:
    """Cloud-side behaviour; one per server (``cloud`` gives the registry and the broker)."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.pending = {}  # (pk, dn, id) → future of the device's reply
        self._ids = itertools.count(1)
        self.things = ThingModel(self)
        self.decimal_id = _decimal_id
        self.clock_offset_ms = 0  # added to the cloud's clock (NTP, the 24 h rule)

    def now_ms(self) -> int:
        """The cloud's clock: the host's, moved by ``clock_offset_ms``."""
        return reg.now_ms() + self.clock_offset_ms

    @property
    def registry(self):
        return self.cloud.registry

    # sessions ----------------------------------------------------------------------------------

    async def connected(self, session):
        ident = self.cloud.identity(session)
        if ident is None:
            return
        pk, dn = ident.product_key, ident.device_name
        if ident.kind == "device":
            self.registry.set_online(pk, dn, ident.client_id, session.remote_address)
            info = dict(ident.describe(), ip=session.remote_address)
            self.registry.log(reg.STATUS, pk, dn, None, info, "online")
        elif ident.kind == "register":
            device = self.registry.device(pk, dn)
            body = {"productKey": pk, "deviceName": dn, "deviceSecret": device["deviceSecret"]}
            await self._push(ident, "/ext/register", body)
        elif ident.kind == "regnwl":
            client_id, token = self.registry.issue_device_token(pk, dn)
            body = {"clientId": client_id, "productKey": pk, "deviceName": dn}
            body["deviceToken"] = token
            await self._push(ident, "/ext/regnwl", body)

    async def _push(self, ident, topic, body):
        sent = await self.cloud.broker.push(ident.key, topic, json.dumps(body).encode())
        status = CODE_OK if sent else "not delivered"
        self.registry.log(
            reg.DOWN, ident.product_key, ident.device_name, topic, reg.redact(body), status
        )

    async def disconnected(self, session):
        ident = self.cloud.identity(session)
        if ident is not None and ident.kind == "device":
            pk, dn = ident.product_key, ident.device_name
            self.registry.set_offline(pk, dn)
            self.registry.log(reg.STATUS, pk, dn, None, {"clientId": ident.client_id}, "offline")

    # uplinks -----------------------------------------------------------------------------------

    async def uplink(self, session, message):
        """Handle a PUBLISH from a device (permitted or not)."""
        ident = self.cloud.identity(session)
        if ident is None or message is None:
            return
        received = reg.now_ms()
        pk, dn, topic = ident.product_key, ident.device_name, message.topic
        data = bytes(message.data or b"")
        custom = self.registry.topic_classes(pk)
        if ident.kind != "device" or not topics.may_publish(pk, dn, topic or "", custom):
            self.registry.log(reg.UP, pk, dn, topic, payload_text(data[:4096]), "denied")
            log.warning("%s/%s may not publish to %s: dropped", pk, dn, topic)
            return
        if len(data) > MAX_MESSAGE:
            note = "%d bytes: over the 256 KB limit" % len(data)
            self.registry.log(reg.UP, pk, dn, topic, note, "denied")
            return
        handler = None
        for template, name in UPLINKS:
            if topics.matches(topic, template.format(pk=pk, dn=dn)):
                handler = getattr(self, name)
                break
        replies = []
        status = CODE_OK
        if handler is not None:
            status, replies = handler(ident, topic, data, received)
        self.registry.log(reg.UP, pk, dn, topic, payload_text(data), status)
        for reply_topic, body in replies:
            await self.publish_down(reply_topic, body, 0)

    def _alink_request(self, topic, data, method, store=None, params_type=dict):
        """Common request handling: envelope check, reply on ``topic + "_reply"``; ``store``
        may raise AlinkError to refuse the params."""
        try:
            msg_id, params, wants_reply = parse_request(data, method, params_type)
            if store is not None:
                store(msg_id, params)
        except AlinkError as err:
            body = encode_reply(err.msg_id, err.code, method, "request parameter error: %s" % err)
            return err.code, [(topic + "_reply", body)]
        except tsl.TslError as err:  # the product's TSL refuses it: nothing stored
            body = encode_reply(msg_id, err.code, method, "request parameter error: %s" % err)
            return err.code, [(topic + "_reply", body)]
        if not wants_reply:
            return CODE_OK, []
        return CODE_OK, [(topic + "_reply", encode_reply(msg_id, CODE_OK, method))]

    def _property_post(self, ident, topic, data, received):
        method = "thing.event.property.post"

        def store(msg_id, params):
            check_times(msg_id, params, self.now_ms())
            self.things.check_post(ident, method, params)
            self.things.record(ident, property_values(params, received))

        return self._alink_request(topic, data, method, store)

    def _history_post(self, ident, topic, data, received):
        pk, dn = ident.product_key, ident.device_name

        def check(msg_id, params):
            check_history(msg_id, params, pk, dn, self.now_ms())

        method = "thing.event.property.history.post"
        return self._alink_request(topic, data, method, check, list)

    def _event_post(self, ident, topic, data, received):
        method = "thing.event.%s.post" % topic.split("/")[6]

        def store(msg_id, params):
            self.things.check_post(ident, method, params)

        return self._alink_request(topic, data, method, store)

    def _batch_post(self, ident, topic, data, received):
        def store(msg_id, params):
            self.things.check_post(ident, BATCH_POST, params)
            self.things.record_batch(ident, params, received)

        return self._alink_request(topic, data, BATCH_POST, store)

    def _desired_get(self, ident, topic, data, received):
        return self.things.desired_get(ident, topic, data, received)

    def _desired_delete(self, ident, topic, data, received):
        return self.things.desired_delete(ident, topic, data, received)

    def _rrpc_response(self, ident, topic, data, received):
        return self.things.rrpc_response(ident, topic, data, received)

    def _service_reply(self, ident, topic, data, received):
        """A device's reply to a service call or property set (§4.3)."""
        if not topic.endswith("_reply"):
            return CODE_OK, []
        try:
            body = json.loads(data.decode("utf-8"))
            msg_id = _decimal_id(body.get("id"))
            code = body.get("code")
        except (UnicodeDecodeError, ValueError, AttributeError):
            return CODE_PARAM_ERROR, []
        if msg_id is None or not isinstance(code, int):
            return CODE_PARAM_ERROR, []
        future = self.pending.get((ident.product_key, ident.device_name, msg_id))
        if future is not None and not future.done():
            future.set_result(body)
        return code, []

    def _ntp(self, ident, topic, data, received):
        """NTP (§4.5): echo deviceSendTime, add the server's receive and send times (ms)."""
        try:
            body = json.loads(data.decode("utf-8"))
            sent = body["deviceSendTime"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError):
            return CODE_PARAM_ERROR, []
        if isinstance(sent, bool) or not (
            (isinstance(sent, int) and sent >= 0)
            or (isinstance(sent, str) and sent.isascii() and sent.isdigit())
        ):
            return CODE_PARAM_ERROR, []  # Long or String of ms (§4.5)
        response = {
            "deviceSendTime": str(sent),
            "serverRecvTime": str(received + self.clock_offset_ms),
            "serverSendTime": str(self.now_ms()),
        }
        reply_topic = "/ext/ntp/%s/%s/response" % (ident.product_key, ident.device_name)
        return CODE_OK, [(reply_topic, json.dumps(response).encode())]

    def _ota_inform(self, ident, topic, data, received):
        """OTA version report (§4.6): ``{"id", "params": {"version", "module"?}}``."""
        try:
            params = json.loads(data.decode("utf-8"))["params"]
            version = params["version"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError):
            return CODE_PARAM_ERROR, []
        if not isinstance(version, str) or not version:
            return CODE_PARAM_ERROR, []
        module = params.get("module")
        if module != "air724":  # the cellular module's own firmware is not the device's
            self.registry.set_firmware_version(ident.product_key, ident.device_name, version)
        self.cloud.ota.informed(ident.product_key, ident.device_name, module, version)
        return CODE_OK, []

    def _ota_progress(self, ident, topic, data, received):
        """OTA progress (§4.6): step 1..100, or -1..-4 with desc: the job's state."""
        try:
            params = json.loads(data.decode("utf-8"))["params"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError):
            return CODE_PARAM_ERROR, []
        if not isinstance(params, dict):
            return CODE_PARAM_ERROR, []
        return self.cloud.ota.progress(ident.product_key, ident.device_name, params), []

    def _ota_get(self, ident, topic, data, received):
        """``thing/ota/firmware/get`` → ``get_reply`` with the pending job (or ``{}``)."""
        method = "thing.ota.firmware.get"
        try:
            msg_id, params, _ = parse_request(data, method)
        except AlinkError as err:
            return err.code, [(topic + "_reply", encode_reply(err.msg_id, err.code, method))]
        pending = self.cloud.ota.pending(
            ident.product_key, ident.device_name, params.get("module")
        )
        body = json.loads(encode_reply(msg_id, CODE_OK, method))
        body["data"] = pending
        return CODE_OK, [(topic + "_reply", json.dumps(body).encode())]

    # downlinks ---------------------------------------------------------------------------------

    async def publish_down(self, topic, payload: bytes, qos: int):
        """Publish cloud→device and log it; status says whether a device subscribed."""
        pk, dn = topics.topic_owner(topic, {p["productKey"] for p in self.registry.products()})
        status = CODE_OK if self.cloud.broker.subscribers(topic) else "no subscriber"
        self.registry.log(reg.DOWN, pk, dn, topic, payload_text(payload), status)
        await self.cloud.broker.internal_message_broadcast(topic, payload, qos)
        return status

    def next_id(self) -> str:
        return str(next(self._ids) % ID_MAX)

    async def set_property(self, pk, dn, params: dict, timeout: float, check=True) -> dict:
        """thing.service.property.set (§4.3); wait for the device's set_reply."""
        return await self.call_service(pk, dn, "property/set", params, timeout, check)

    async def call_service(self, pk, dn, identifier, params, timeout: float, check=True) -> dict:
        """Call service ``identifier`` (``property/set`` or a thing-model service, §4.3) and
        wait for the device's ``…_reply``; a sync service (TSL ``callType``) goes over RRPC.

        With the product's TSL, ``params`` are checked first (``check=False`` sends them
        unchecked, as a verification-free product does, so the device's own check answers)."""
        if self.registry.device(pk, dn) is None:
            raise CloudError("no device %s/%s" % (pk, dn))
        if not isinstance(params, dict) or (identifier == "property/set" and not params):
            raise CloudError("params must be a non-empty object")
        if not isinstance(identifier, str) or not _SERVICE_ID.match(identifier):
            raise CloudError("service identifier %r: letters, digits and _" % (identifier,))
        call_type = self.things.call_type(pk, identifier)
        if check:
            try:
                call_type = self.things.check_call(pk, identifier, params)
            except CallError as exc:
                raise CloudError("%s: %s" % (exc.code, exc)) from None
        if not self.cloud.broker.session_connected(pk + "&" + dn):
            raise CloudError("device %s/%s is offline" % (pk, dn))
        if call_type == "sync":
            try:
                return await self.things.call_sync(pk, dn, identifier, params, timeout)
            except CallError as exc:
                raise CloudError("%s: %s" % (exc.code, exc)) from None
        msg_id = self.next_id()
        topic = "/sys/%s/%s/thing/service/%s" % (pk, dn, identifier)
        method = "thing.service." + identifier.replace("/", ".")
        request = {"id": msg_id, "version": "1.0", "params": params, "method": method}
        future = asyncio.get_running_loop().create_future()
        self.pending[(pk, dn, msg_id)] = future
        name = "SetDeviceProperty" if method == PROPERTY_SET else "InvokeThingService"
        api = {"api": name, "id": msg_id, "params": params}
        if method != PROPERTY_SET:
            api["identifier"] = identifier
        try:
            self.registry.log(reg.API, pk, dn, topic, api, CODE_OK)
            await self.publish_down(topic, json.dumps(request).encode(), 1)
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                self.registry.log(reg.API, pk, dn, topic, api, "timeout")
                raise CloudError(
                    "no %s_reply from %s/%s in %s s" % (identifier.split("/")[-1], pk, dn, timeout)
                ) from None
        finally:
            self.pending.pop((pk, dn, msg_id), None)


class CloudPlugin(BasePlugin):
    """amqtt event plugin: routes broker events to the cloud's ``Alink``."""

    Config = _CloudConfig

    async def on_broker_client_connected(self, *, client_id, client_session):
        await self.config.cloud.alink.connected(client_session)

    async def on_broker_client_disconnected(self, *, client_id, client_session):
        await self.config.cloud.alink.disconnected(client_session)

    async def on_broker_message_received(self, *, client_id, message):
        cloud = self.config.cloud
        entry = cloud.broker.sessions.get(client_id)
        if entry is not None:
            await cloud.alink.uplink(entry[0], message)


def identity_of(session):
    verdict = session.attributes.get(VERDICT) if session is not None else None
    return verdict.identity if verdict is not None else None
