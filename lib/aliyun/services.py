"""Serving thing-model requests: property set and service calls, async or sync (RRPC), and
the desired values after a connect. Imported when first needed, unloaded at each bring-up.

``serve(thing, name, payload, deadline_ms)`` decodes one request, checks its parameters against
the thing model (``aliyun.tsl``; 460 naming the field and the rule), runs the application's
callback and returns the reply payload, or a coroutine when the callback is one (the session
awaits it in a task: it gives the reply payload, bounded by the deadline).

Codes (reference §4.4, device side): 200; 460 parameter error; an ``AlinkError`` raised by the
callback gives its own code; ``CODE_FAILED`` 500 when the callback raised anything else;
``CODE_TIMEOUT`` 503 when it did not finish within the deadline (``thing.SYNC_DEADLINE_MS`` for
a sync service).
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun import alink
from aliyun.alink import CODE_OK, CODE_PARAM_ERROR, AlinkError

CODE_FAILED = const(500)
CODE_TIMEOUT = const(503)


async def _wait_ms(work, timeout_ms: int):
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(work, timeout_ms)
    return await asyncio.wait_for(work, timeout_ms / 1000)


def _reply_of(thing, msg_id, name, data) -> bytes:
    """The 200 reply, its data checked against the service's output (model services)."""
    model = thing.get_model()
    if model is not None and name != "property/set" and data:
        try:
            data = model.check_output(name, data)
        except AlinkError as exc:
            thing.log(
                "error", "service %s: reply breaks the thing model: %s" % (name, exc.message)
            )
            return alink.encode_reply(msg_id, CODE_FAILED, message="output " + exc.message)
    return alink.encode_reply(msg_id, CODE_OK, data or {})


def _failure(thing, msg_id, name, exc) -> bytes:
    if isinstance(exc, AlinkError):
        thing.log("warning", "request %s refused: %s" % (msg_id, exc.message))
        return alink.encode_reply(msg_id, exc.code, message=exc.message)
    thing.log("error", "service %s failed: %r" % (name, exc))
    return alink.encode_reply(msg_id, CODE_FAILED, message="service failed")


async def _finish(thing, msg_id: str, name: str, work, deadline_ms: int) -> bytes:
    """The reply of a coroutine service, or 503 when it is still running at the deadline;
    counted in ``thing.held`` from ``serve`` until it is done, then the model is released."""
    try:
        try:
            data = await _wait_ms(work, deadline_ms)
        except asyncio.TimeoutError:
            thing.log("warning", "service %s: no answer in %d ms" % (name, deadline_ms))
            message = "timeout after %d ms" % deadline_ms
            return alink.encode_reply(msg_id, CODE_TIMEOUT, message=message)
        except Exception as exc:
            return _failure(thing, msg_id, name, exc)
        return _reply_of(thing, msg_id, name, data)
    finally:
        thing.held -= 1
        thing.release_model()


def serve(thing, name: str, payload, deadline_ms: int):
    """Run service ``name`` (``property/set`` included) for one request; see the docstring."""
    try:
        msg_id, _method, params = alink.decode_request(payload)
    except AlinkError as exc:
        return alink.encode_reply(alink.request_id(payload), exc.code, message=exc.message)
    started = ticks_ms()
    try:
        callback = thing.services.get(name)
        if callback is None:
            raise AlinkError(CODE_PARAM_ERROR, "unknown service " + name)
        model = thing.get_model()
        if model is not None and name != "property/set":
            params = model.check_input(name, params)
        result = callback(params)
    except Exception as exc:
        return _failure(thing, msg_id, name, exc)
    if hasattr(result, "send"):  # a coroutine: the session awaits it
        thing.held += 1
        return _finish(thing, msg_id, name, result, deadline_ms)
    if ticks_diff(ticks_ms(), started) > deadline_ms:
        thing.log("warning", "service %s: answered after the deadline" % name)
        return alink.encode_reply(msg_id, CODE_TIMEOUT, message="too slow")
    return _reply_of(thing, msg_id, name, result)


def service_name(method: str) -> str:
    """``thing.service.Reboot`` → ``Reboot``; ``thing.service.property.set`` → ``property/set``."""
    if not method.startswith("thing.service."):
        raise AlinkError(CODE_PARAM_ERROR, "method " + method + " is no service call")
    return method[14:].replace(".", "/")


DESIRED_MS = const(10000)


async def apply_desired(thing, ask, topics) -> None:
    """After a connect: ``thing.property.desired.get`` for the writable properties of the
    model (all, without one), the values applied through the property-set path, then
    ``thing.property.desired.delete`` with their versions (reference §4.3, desired properties).
    ``ask(topic, method, params, timeout_ms)`` makes a request and gives ``(code, data)``."""
    model = thing.get_model()
    wanted = [] if model is None else [k for k in model.properties if k not in model.read_only]
    del model  # a local left set would hold the checks and the table through the wait
    thing.release_model()  # not held while waiting for the reply
    code, data = await ask(topics.desired_get, "thing.property.desired.get", wanted, DESIRED_MS)
    if code != CODE_OK or not isinstance(data, dict):
        if code is not None and code != CODE_OK:
            thing.log("warning", "desired get: code %d" % code)
        return
    values, versions = {}, {}
    for name in data:
        item = data[name]
        if isinstance(item, dict) and "value" in item:
            values[name] = item["value"]
            versions[name] = {"version": item.get("version")}
    if not values:
        return
    try:
        apply = thing.services.get("property/set")
        if apply is None:
            raise AlinkError(CODE_FAILED, "no property-set handler")
        apply(values)
    except Exception as exc:  # kept in the cloud: offered again after the next connect
        thing.log("warning", "desired values not applied: %s" % _text(exc))
        return
    finally:
        thing.release_model()
    thing.log("info", "desired values applied: " + ", ".join(sorted(values)))
    await ask(topics.desired_delete, "thing.property.desired.delete", versions, DESIRED_MS)


def _text(exc) -> str:
    return exc.message if isinstance(exc, AlinkError) else repr(exc)
