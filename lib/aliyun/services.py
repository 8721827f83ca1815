"""Serving thing-model requests: property set and service calls, async or sync (RRPC).

``serve(thing, name, payload, deadline_ms)`` decodes one request, checks its parameters against
the thing model (``aliyun.tsl``; 460 naming the field and the rule), runs the application's
callback and returns the reply payload, or a ``Call`` when the callback is a coroutine (the
session awaits ``Call.reply()``, bounded by the deadline).

Codes (reference §4.4, device side): 200; 460 parameter error; an ``AlinkError`` raised by the
callback gives its own code; ``CODE_FAILED`` 500 when the callback raised anything else;
``CODE_TIMEOUT`` 503 when it did not finish within the deadline. A sync service must be answered
within ``SYNC_DEADLINE_MS``: the platform waits at most 8 s for a synchronous call
(InvokeThingService, Aliyun doc 69584: 同步调用服务，最大超时时间为8秒; RRpc Timeout 1000-8000 ms,
§4.7), less a second for the reply's way through the module and the network.
"""

import asyncio

from micropython import const

from aliyun import alink
from aliyun.alink import CODE_OK, CODE_PARAM_ERROR, AlinkError
from atmodem.channel import ticks_diff, ticks_ms  # with their CPython stand-ins

CODE_FAILED = const(500)
CODE_TIMEOUT = const(503)
SYNC_DEADLINE_MS = const(7000)
ASYNC_DEADLINE_MS = const(60000)  # an async service has no platform limit; ours stays bounded


async def _wait_ms(work, timeout_ms: int):
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(work, timeout_ms)
    return await asyncio.wait_for(work, timeout_ms / 1000)


def _reply_of(thing, msg_id, name, data) -> bytes:
    """The 200 reply, its data checked against the service's output (model services)."""
    model = thing.model
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


class Call:
    """A service whose callback is a coroutine: ``await reply()`` gives the reply payload."""

    def __init__(self, thing, msg_id: str, name: str, work, deadline_ms: int):
        self.thing = thing
        self.msg_id = msg_id
        self.name = name
        self.work = work
        self.deadline_ms = deadline_ms

    async def reply(self) -> bytes:
        try:
            data = await _wait_ms(self.work, self.deadline_ms)
        except asyncio.TimeoutError:
            self.thing.log(
                "warning", "service %s: no answer in %d ms" % (self.name, self.deadline_ms)
            )
            message = "timeout after %d ms" % self.deadline_ms
            return alink.encode_reply(self.msg_id, CODE_TIMEOUT, message=message)
        except Exception as exc:
            return _failure(self.thing, self.msg_id, self.name, exc)
        return _reply_of(self.thing, self.msg_id, self.name, data)


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
        if thing.model is not None and name != "property/set":
            params = thing.model.check_input(name, params)
        result = callback(params)
    except Exception as exc:
        return _failure(thing, msg_id, name, exc)
    if hasattr(result, "send"):  # a coroutine: the session awaits it
        return Call(thing, msg_id, name, result, deadline_ms)
    if ticks_diff(ticks_ms(), started) > deadline_ms:
        thing.log("warning", "service %s: answered after the deadline" % name)
        return alink.encode_reply(msg_id, CODE_TIMEOUT, message="too slow")
    return _reply_of(thing, msg_id, name, result)


def service_name(method: str) -> str:
    """``thing.service.Reboot`` → ``Reboot``; ``thing.service.property.set`` → ``property/set``."""
    if not method.startswith("thing.service."):
        raise AlinkError(CODE_PARAM_ERROR, "method " + method + " is no service call")
    return method[14:].replace(".", "/")
