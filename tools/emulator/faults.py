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
        self.counters = {"connect_fail": 0}
        self.http_codes = deque()
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
