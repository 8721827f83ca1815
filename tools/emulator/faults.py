"""Fault injection: a table of fault kinds, run now (``ctl``) or from a scenario file.

A scenario is JSON: ``{"dialect": {...}, "events": [...]}`` (or just the list of events). Each
event names a fault kind in ``"do"`` plus that kind's parameters, and a trigger: ``"at": <s>``
after start, or ``"after": "<regex>"`` with ``"nth": n`` (default 1): once the n-th host command
matching the regex has been answered; ``"delay": <s>`` waits a little longer.
"""

import asyncio
import json
import random
import re
from collections import deque
from dataclasses import dataclass

REQUIRED = object()


class FaultError(ValueError):
    """A fault that cannot be applied (bad parameters, or the module is not in that state)."""


@dataclass(frozen=True)
class Fault:
    run: object
    params: dict  # name -> (type, default or REQUIRED)
    help: str


def _drop_mqtt(engine, p):
    try:
        engine.m.mqtt.drop()  # the link dies: `CLOSED` (§7.5)
    except RuntimeError as err:
        raise FaultError(str(err)) from err


def _pdp_deact(engine, p):
    if not engine.m.radio.pdp_active:
        raise FaultError("the PDP context is not active")
    engine.m.radio.deactivate_pdp()  # `+PDP DEACT` (§5.3), `+SAPBR 1: DEACT`, `CLOSED`


def _reboot(engine, p):
    engine.m.power_on(cold=False)  # unexpected reboot: `RDY` again (§3.2)


def _power_cycle(engine, p):
    engine.m.power_on(cold=True)  # PWRKEY cycle: boot delay and autobaud again


def _stall(engine, p):
    engine.m.stall(p["seconds"])


def _garbage(engine, p):
    if p["hex"]:
        try:
            data = bytes.fromhex(p["hex"])
        except ValueError as err:
            raise FaultError(f"bad hex: {err}") from err
    elif p["data"]:
        data = p["data"].encode("latin-1", "replace")
    else:
        rng = random.Random(p["seed"])
        data = bytes(rng.randrange(256) for _ in range(p["count"]))
    engine.m.write(data)
    return {"bytes": len(data)}


def _error(engine, p):
    try:
        pattern = re.compile(p["pattern"], re.IGNORECASE)
    except re.error as err:
        raise FaultError(f"bad pattern: {err}") from err
    engine.rules.append({"pattern": pattern, "count": p["count"], "cme": p["cme"]})


def _connect_fail(engine, p):
    engine.counters["connect_fail"] += p["count"]


def _sim_lost(engine, p):
    engine.m.radio.remove_sim()
    engine.later(p["duration"], "sim_insert")


def _sim_insert(engine, p):
    engine.m.radio.insert_sim()


def _network_lost(engine, p):
    engine.m.radio.lose_network()
    engine.later(p["duration"], "network_restore")


def _network_restore(engine, p):
    engine.m.radio.restore_network()


def _http_code(engine, p):
    if not 600 <= p["code"] <= 606:
        raise FaultError("code must be a module status 600-606 (§6.3)")
    engine.http_codes.extend([p["code"]] * p["count"])


def _downlink(engine, p):
    m = engine.m
    if not m.mqtt.connected:
        raise FaultError("MQTT is not connected")
    if p["payload_hex"]:
        payload = bytes.fromhex(p["payload_hex"])
    elif p["size"]:
        pattern = (p["payload"] or "0123456789").encode("utf-8")
        payload = (pattern * (p["size"] // len(pattern) + 1))[: p["size"]]
    else:
        payload = (p["payload"] or "").encode("utf-8")
    m.mqtt.deliver(p["topic"].encode("utf-8"), payload)
    return {"bytes": len(payload)}


def _urc(engine, p):
    engine.m.urc(p["text"])


# -- counted headers, silent links, refused connects, MCU resets, cache mode, CMEE -----------

MISCOUNT = {"long": 600, "short": -5}  # dialect msub_count/httpread_count: bytes claimed extra
_TARGETS = ("msub", "httpread")


def claimed(actual, delta):
    """The length a miscounted header states for ``actual`` bytes (never below 0)."""
    return max(0, actual + delta)


def _counted(engine, p, delta):
    if p["target"] not in _TARGETS:
        raise FaultError(f"target must be one of {', '.join(_TARGETS)}")
    if p["target"] == "httpread":
        engine.httpread_deltas.append(delta)  # the next +HTTPREAD header (§6.2)
        return {"armed": "httpread", "delta": delta}
    payload = p["payload"].encode("latin-1", "replace")
    head = f'+MSUB: "{p["topic"]}",{claimed(len(payload), delta)} byte,'  # §7.3
    engine.m.write(b"\r\n" + head.encode("latin-1", "replace") + payload + b"\r\n")
    return {"bytes": len(payload), "claimed": claimed(len(payload), delta)}


def _counted_long(engine, p):
    if p["extra"] < 1:
        raise FaultError("extra must be at least 1")
    return _counted(engine, p, p["extra"])


def _counted_short(engine, p):
    if p["short"] < 1:
        raise FaultError("short must be at least 1")
    return _counted(engine, p, -p["short"])


def _half_open(engine, p):
    try:
        engine.m.mqtt.go_silent()
    except RuntimeError as err:
        raise FaultError(str(err)) from err


def _connect_refused(engine, p):
    if p["style"] not in ("", "error", "closed"):
        raise FaultError("style must be error or closed")
    engine.refusals.extend([p["style"]] * p["count"])


def _mconnect_closed(engine, p):
    engine.counters["mconnect_closed"] += p["count"]


def _mcu_reset(engine, p):
    if p["count"] < 0:
        raise FaultError("count must be 0 or more")
    engine.on_attach.append((p["topic"], p["payload"], p["count"]))
    return {"armed": "next host connection"}


def _cache_mode(engine, p):
    m = engine.m
    m.mqtt.msgset = 1  # as after a module reboot where cache mode is the default (§7.2)
    if p["count"] and not m.mqtt.connected:
        raise FaultError("MQTT is not connected (cache mode is set)")
    for index in range(p["count"]):
        m.mqtt.deliver(p["topic"].encode("utf-8"), f"{p['payload']}{index}".encode())
    return {"cached": m.mqtt.state()["cached"]}


def _cmee(engine, p):
    if p["value"] not in (0, 1, 2):
        raise FaultError("value must be 0, 1 or 2")
    engine.m.cmee = p["value"]  # AT+CMEE=0: every error a bare ERROR (§9)


_HEADERS = (
    lambda rng, n: b'\r\n+MSUB: "/g/%d",%d byte,' % (rng.randrange(100), n),
    lambda rng, n: b"\r\n+HTTPREAD: %d\r\n" % n,
    lambda rng, n: b"\r\n+HTTPREAD:%d\r\n" % n,
    lambda rng, n: b"\r\n+MSUB: /g/x,%d byte," % n,
)


def _garbage_burst(engine, p):
    """Random bytes with counted headers inside, each claiming up to ``max_count`` bytes."""
    if p["count"] < 0 or p["headers"] < 0 or p["max_count"] < 1:
        raise FaultError("count and headers must be >= 0, max_count >= 1")
    rng = random.Random(p["seed"])
    parts = [bytes(rng.randrange(256) for _ in range(p["count"]))]
    claims = []
    for _ in range(p["headers"]):
        n = rng.randint(1, p["max_count"])
        claims.append(n)
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(_HEADERS)(rng, n))
    data = b"".join(parts)
    engine.m.write(data)
    return {"bytes": len(data), "claims": claims}


FAULTS = {
    "drop_mqtt": Fault(_drop_mqtt, {}, "the MQTT link drops: CLOSED"),
    "pdp_deact": Fault(_pdp_deact, {}, "the network deactivates the PDP context"),
    "reboot": Fault(_reboot, {}, "the module reboots unexpectedly: RDY"),
    "power_cycle": Fault(_power_cycle, {}, "cold boot: boot delay and autobaud again"),
    "stall": Fault(_stall, {"seconds": (float, REQUIRED)}, "answer nothing for N s"),
    "garbage": Fault(
        _garbage,
        {"count": (int, 32), "data": (str, ""), "hex": (str, ""), "seed": (int, 724)},
        "emit garbage bytes (random, or given as data/hex)",
    ),
    "error": Fault(
        _error,
        {"pattern": (str, "."), "count": (int, 1), "cme": (int, None)},
        "answer ERROR (or +CME ERROR: cme) to the next count commands matching pattern",
    ),
    "connect_fail": Fault(_connect_fail, {"count": (int, 1)}, "next MIPSTART: CONNECT FAIL"),
    "sim_lost": Fault(_sim_lost, {"duration": (float, None)}, "the SIM goes away"),
    "sim_insert": Fault(_sim_insert, {}, "the SIM comes back"),
    "network_lost": Fault(_network_lost, {"duration": (float, None)}, "the network goes away"),
    "network_restore": Fault(_network_restore, {}, "the network comes back"),
    "http_code": Fault(
        _http_code, {"code": (int, 601), "count": (int, 1)}, "next HTTPACTION ends with code"
    ),
    "downlink": Fault(
        _downlink,
        {
            "topic": (str, REQUIRED),
            "payload": (str, ""),
            "payload_hex": (str, ""),
            "size": (int, 0),
        },
        "deliver a message as if the broker sent it",
    ),
    "urc": Fault(_urc, {"text": (str, REQUIRED)}, "print any line as a URC"),
    "counted_long": Fault(
        _counted_long,
        {
            "target": (str, "msub"),
            "extra": (int, 600),
            "topic": (str, "/chaos/counted"),
            "payload": (str, '{"counted":"long"}'),
        },
        "a counted header claiming `extra` bytes more than follow: +MSUB now, or the next "
        "+HTTPREAD (target=httpread)",
    ),
    "counted_short": Fault(
        _counted_short,
        {
            "target": (str, "msub"),
            "short": (int, 5),
            "topic": (str, "/chaos/counted"),
            "payload": (str, '{"counted":"short"}'),
        },
        "a counted header claiming `short` bytes fewer than follow: +MSUB now, or the next "
        "+HTTPREAD (target=httpread)",
    ),
    "half_open": Fault(
        _half_open,
        {},
        "the MQTT link goes silent: +MQTTSTATU :1, no CLOSED, nothing sent or received",
    ),
    "connect_refused": Fault(
        _connect_refused,
        {"count": (int, 1), "style": (str, "error")},
        "the next count AT+MCONNECT are refused: OK, then ERROR and CLOSED (style=closed: "
        "CLOSED only)",
    ),
    "mconnect_closed": Fault(
        _mconnect_closed,
        {"count": (int, 1)},
        "the link drops during the next count AT+MCONNECT: OK, then CLOSED, no CONNACK",
    ),
    "mcu_reset": Fault(
        _mcu_reset,
        {"topic": (str, "/chaos/early"), "payload": (str, "early-"), "count": (int, 2)},
        "the host resets, the module stays connected: on the next host connection, count "
        "+MSUB lines come at once (before the host set anything up)",
    ),
    "cache_mode": Fault(
        _cache_mode,
        {"count": (int, 0), "topic": (str, "/chaos/cached"), "payload": (str, "cached-")},
        "AT+MQTTMSGSET=1 in effect now (the boot default of some firmware); count messages "
        "arrive into the cache: +MSUB: <slot>",
    ),
    "cmee": Fault(_cmee, {"value": (int, 0)}, "AT+CMEE=value in effect now (0: bare ERROR)"),
    "garbage_burst": Fault(
        _garbage_burst,
        {
            "count": (int, 64),
            "headers": (int, 2),
            "max_count": (int, 2000),
            "seed": (int, 724),
        },
        "random bytes with counted headers (+MSUB/+HTTPREAD) inside, claiming bytes that "
        "never come",
    ),
}


def _http_cut(engine, p):
    http = engine.m.http
    http.cut_after, http.cut_pdp = p["bytes"], bool(p["pdp"])


def _http_corrupt(engine, p):
    engine.m.http.corrupt_at.append(p["offset"])


# Faults on HTTP bodies (tools/emulator/http.py applies them to the responses).
FAULTS.update(
    {
        "http_cut": Fault(
            _http_cut,
            {"bytes": (int, REQUIRED), "pdp": (int, 0)},
            "the link dies once N more body bytes came: that HTTPACTION ends with 601"
            " (pdp=1: the PDP context goes down too)",
        ),
        "http_corrupt": Fault(
            _http_corrupt,
            {"offset": (int, REQUIRED)},
            "flip the byte at this offset of the resource in the next body holding it",
        ),
    }
)


def normalize(name):
    return str(name).strip().lower().replace("-", "_")


def parse_params(kind, given):
    """Check and convert the parameters of a fault kind."""
    fault = FAULTS.get(kind)
    if fault is None:
        raise FaultError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
    unknown = set(given) - set(fault.params)
    if unknown:
        raise FaultError(f"{kind}: unknown parameter(s) {', '.join(sorted(unknown))}")
    params = {}
    for name, (kind_type, default) in fault.params.items():
        if name in given and given[name] is not None:
            try:
                params[name] = kind_type(given[name])
            except (TypeError, ValueError) as err:
                raise FaultError(f"{kind}: {name} must be {kind_type.__name__}") from err
        elif default is REQUIRED:
            raise FaultError(f"{kind}: parameter {name} is required")
        else:
            params[name] = default
    return params


class FaultEngine:
    """Applies faults to a modem and keeps the armed ones (error rules, counters, triggers)."""

    def __init__(self, log=None):
        self.m = None
        self.log = log or (lambda text: None)
        self.rules = []
        self.counters = {"connect_fail": 0, "mconnect_closed": 0}
        self.http_codes = deque()
        self.httpread_deltas = deque()  # counted_long/short target=httpread
        self.refusals = deque()  # connect_refused styles ("" = dialect connack_refused)
        self.on_attach = []  # mcu_reset: (topic, payload, count) for the next host
        self._triggers = []
        self._handles = []

    def apply(self, kind, given=None):
        """Run a fault now; returns a result dict (raises FaultError)."""
        kind = normalize(kind)
        params = parse_params(kind, given or {})
        self.log(f"fault: {kind} {json.dumps(given or {})}")
        return FAULTS[kind].run(self, params) or {}

    def later(self, delay, kind, given=None):
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        self._handles.append(loop.call_later(delay, self._safe_apply, kind, given or {}))

    def _safe_apply(self, kind, given):
        try:
            self.apply(kind, given)
        except FaultError as err:
            self.log(f"fault {kind} not applied: {err}")

    # -- hooks called by the modem ------------------------------------------------------------

    def intercept(self, line):
        """The final result forced on this command line by an ``error`` fault, or None."""
        for rule in self.rules:
            if rule["count"] > 0 and rule["pattern"].search(line):
                rule["count"] -= 1
                self.log(f"fault: forced error for {line[:40]!r}")
                return "ERROR" if rule["cme"] is None else self.m.cme(rule["cme"])
        self.rules = [r for r in self.rules if r["count"] > 0]
        return None

    def after_command(self, line):
        for trigger in self._triggers:
            if trigger["fired"] or not trigger["pattern"].search(line):
                continue
            trigger["seen"] += 1
            if trigger["seen"] >= trigger["nth"]:
                trigger["fired"] = True
                delay = trigger["delay"]
                if delay:
                    self.later(delay, trigger["do"], trigger["params"])
                else:
                    asyncio.get_running_loop().call_soon(
                        self._safe_apply, trigger["do"], trigger["params"]
                    )

    def take(self, name):
        if self.counters.get(name, 0) > 0:
            self.counters[name] -= 1
            return True
        return False

    def take_http_code(self):
        return self.http_codes.popleft() if self.http_codes else None

    def take_httpread_delta(self):
        return self.httpread_deltas.popleft() if self.httpread_deltas else None

    def take_refusal(self):
        return self.refusals.popleft() if self.refusals else None

    def host_attached(self):
        """A host connected to the UART (after an MCU reset): what mcu_reset armed arrives."""
        armed, self.on_attach = self.on_attach, []
        mqtt = self.m.mqtt
        for topic, payload, count in armed:
            if not mqtt.connected:
                self.log("mcu_reset: MQTT is not connected, nothing delivered")
                continue
            for index in range(count):
                mqtt.deliver(topic.encode("utf-8"), f"{payload}{index}".encode())

    # -- scenarios ----------------------------------------------------------------------------

    def schedule(self, events):
        """Arm the events of a scenario (validated by ``load_scenario``)."""
        for event in events:
            if "at" in event:
                self.later(event["at"] + event["delay"], event["do"], event["params"])
            else:
                self._triggers.append({**event, "seen": 0, "fired": False})

    def close(self):
        for handle in self._handles:
            handle.cancel()


def load_scenario(data):
    """Validate scenario JSON (already parsed) → (dialect dict, events)."""
    if isinstance(data, list):
        data = {"events": data}
    if not isinstance(data, dict):
        raise FaultError("a scenario is a JSON object or a list of events")
    unknown = set(data) - {"dialect", "events", "description"}
    if unknown:
        raise FaultError(f"unknown scenario key(s): {', '.join(sorted(unknown))}")
    events = []
    for index, raw in enumerate(data.get("events", [])):
        if not isinstance(raw, dict) or "do" not in raw:
            raise FaultError(f'event {index}: an object with a "do" key')
        raw = dict(raw)
        kind = normalize(raw.pop("do"))
        at, after = raw.pop("at", None), raw.pop("after", None)
        nth, delay = raw.pop("nth", 1), raw.pop("delay", 0)
        if (at is None) == (after is None):
            raise FaultError(f'event {index}: give exactly one of "at" and "after"')
        try:
            parse_params(kind, raw)
        except FaultError as err:
            raise FaultError(f"event {index}: {err}") from err
        event = {"do": kind, "params": raw, "delay": float(delay)}
        if at is not None:
            event["at"] = float(at)
        else:
            try:
                event["pattern"] = re.compile(after, re.IGNORECASE)
            except re.error as err:
                raise FaultError(f"event {index}: bad regex: {err}") from err
            event["nth"] = int(nth)
        events.append(event)
    return data.get("dialect", {}), events
