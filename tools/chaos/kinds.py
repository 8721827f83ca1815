"""The chaos suite's fault kinds and the recovery bound of each, derived from the firmware's own
timeouts (lib/aliyun/recovery.py, bringup.py, session.py) and the keepalive.

A kind is a recipe: ``steps(rng)`` gives what to do, as ``("ctl", command, params)`` (``air724-sim
ctl``), ``("vm", "kill")`` (the MCU loses power: the MicroPython VM is killed and started again)
or ``("vm", "power_cut")`` (the board loses power: the VM is killed, the module power-cycled);
``("sleep", seconds, {})`` waits.
Armed faults (``connect_fail``, ``connect_refused``, ``mconnect_closed``) are followed by a
``drop_mqtt`` so that the reconnect they act on happens.

HTTP faults (``http_code``, ``http_cut``, ``http_corrupt``: ``needs="http"``) act only on an
``AT+HTTPACTION`` and its body: an HTTPS auth, a dynamic registration or an update's download.
The chaos device logs in directly and is deployed no update, so it makes no HTTP request: armed,
they would wait in the emulator forever and the reconnect after them would prove nothing. A run
without HTTP (``ChaosRun.http``) leaves them out of the draw and reports them as not applicable.

The bound of a fault: its own duration, plus the time the firmware needs to notice it
(``detect``), plus ``failures`` failed bring-up attempts (each: the ladder's longest backoff
delay for that attempt, then the timeout of the step it dies in), plus the last delay and one
bring-up, plus the probe period of the run (the evidence of recovery is a round trip).

    bound = duration + detect + sum(delay_max(i) + step for i in 1..failures)
            + delay_max(failures + 1) + bring_up + probe

``delay_max(i) = min(base << (i - 1), cap)`` is the jitter's upper end (Recovery.failed).
Detection: a link-down URC (CLOSED, +PDP DEACT, RDY, +CPIN) is immediate; a silent link must be
found from the application protocol within 1.5 keepalives (the broker's own rule, §7.5); a deaf
or stalled AT engine at the latest by the health poll (one AT+MQTTSTATU per ``_HEALTH_MS``).
"""

import sys

from tools.sim.proc import ROOT

KEEPALIVE_S = 60  # the chaos run's keepalive_s (config.json)
# Emulator faults that are the second half of a chaos kind (its duration ends them).
PART_OF = {"sim_insert": "sim_lost", "network_restore": "network_lost"}


def firmware_timeouts():
    """The ladder's and the bring-up's timeouts, read from the firmware itself (CPython)."""
    lib = str(ROOT / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    import tools  # noqa: F401 - the ``micropython`` stand-in
    from aliyun import bringup, checks, recovery, session

    ladder = recovery.Recovery()
    return {
        "base_ms": ladder.base_ms,
        "cap_ms": ladder.cap_ms,
        # A first try of 2 s, then checks.SYNC_MS (checks.BOOT_MS after a reset or power cycle).
        "sync_ms": 2000 + checks.SYNC_MS,
        "sim_ms": checks.SIM_MS,
        "register_ms": checks.REGISTER_MS,
        "attach_ms": checks.ATTACH_MS,
        "connect_ms": bringup._CONNECT_MS,
        "health_ms": session._HEALTH_MS,
    }


def _drop():
    return ("ctl", "drop_mqtt", {})


def _urc_text(rng):
    return rng.choice(["+CUSTOM: 1,2", "+CSQ: 99,99", "+MSUB: 7", "OK", "+CME ERROR: 3"])


_ERROR_ON = (r"^AT\+MPUB", r"^AT\+MQTTSTATU", r"^AT\+MSUB=", r"^AT\+MCONNECT", r"MIPSTART")


class Kind:
    """One fault kind of the run; see the module notes for ``detect`` and ``failures``."""

    def __init__(
        self,
        name,
        steps,
        detect="urc",
        failures=1,
        step="connect_ms",
        duration=None,
        echo=None,
        needs=None,
    ):
        self.name = name
        self.needs = needs  # "http": acts only on an HTTP request of the device
        self.steps = steps  # rng -> list of steps
        self.detect = detect  # "none", "urc", "health", "keepalive"
        self.failures = failures
        self.step = step  # the timeout a failed attempt dies by
        self.duration = duration  # params key holding the fault's own duration (s), if any
        # Downlinks the fault delivers (payload "{tag}<i>" for i < count, or "{tag}..." once):
        # each "must" reach the application (its "down" log line), or is only "report"ed.
        self.echo = echo

    def downlinks(self, steps, tag):
        if not self.echo:
            return []
        params = [s[2] for s in steps if s[0] == "ctl"][0]
        if "count" not in params:
            return [tag]
        return ["%s%d" % (tag, i) for i in range(int(params["count"]))]

    def failures_for(self, steps):
        """Failed attempts allowed: a number, or the parameter giving it (an armed count)."""
        if not isinstance(self.failures, str):
            return self.failures
        return max(int(s[2].get(self.failures, 0)) for s in steps if s[0] == "ctl")

    def bound_s(self, steps, t, bring_up_s, probe_s):
        failures = self.failures_for(steps)
        duration = 0.0
        for step in steps:
            if step[0] == "sleep":
                duration += step[1]
            if self.duration and step[0] == "ctl" and self.duration in step[2]:
                duration = float(step[2][self.duration])
        detect = {
            "none": 0.0,
            "urc": 0.0,
            "health": t["health_ms"] / 1000 + 2.0,  # the poll and its 2 s command timeout
            "keepalive": 1.5 * KEEPALIVE_S,
        }[self.detect]

        def delay_max(i):
            return min(t["base_ms"] << (i - 1), t["cap_ms"]) / 1000

        failing = sum(delay_max(i) + t[self.step] / 1000 for i in range(1, failures + 1))
        return duration + detect + failing + delay_max(failures + 1) + bring_up_s + probe_s


KINDS = {
    k.name: k
    for k in (
        # -- the emulator's original faults --
        Kind("drop_mqtt", lambda rng: [_drop()]),
        Kind("pdp_deact", lambda rng: [("ctl", "pdp_deact", {})]),
        Kind("reboot", lambda rng: [("ctl", "reboot", {})], step="sync_ms"),
        Kind("power_cycle", lambda rng: [("ctl", "power_cycle", {})], step="sync_ms"),
        Kind(
            "stall",
            lambda rng: [("ctl", "stall", {"seconds": rng.choice([2, 5, 9, 15])})],
            detect="health",
            step="sync_ms",
            duration="seconds",
        ),
        Kind(
            "garbage",
            lambda rng: [
                ("ctl", "garbage", {"count": rng.randint(8, 200), "seed": rng.randrange(1 << 30)})
            ],
            detect="health",
            step="sync_ms",
        ),
        Kind(
            "error",
            lambda rng: [
                (
                    "ctl",
                    "error",
                    {"pattern": rng.choice(_ERROR_ON), "count": rng.randint(1, 2), "cme": 767},
                ),
                _drop(),
            ],
            failures=2,
        ),
        Kind(
            "connect_fail",
            lambda rng: [("ctl", "connect_fail", {"count": rng.randint(1, 3)}), _drop()],
            failures="count",
        ),
        Kind(
            "sim_lost",
            lambda rng: [("ctl", "sim_lost", {"duration": rng.choice([3, 8, 20, 45])})],
            failures=3,
            step="sim_ms",
            duration="duration",
        ),
        Kind(
            "network_lost",
            lambda rng: [("ctl", "network_lost", {"duration": rng.choice([3, 10, 30])})],
            failures=3,
            step="register_ms",
            duration="duration",
        ),
        Kind(
            "http_code",  # the next HTTPACTION ends with a module status
            lambda rng: [("ctl", "http_code", {"code": rng.choice([601, 603, 604])}), _drop()],
            needs="http",
        ),
        Kind(
            "downlink",
            lambda rng: [
                (
                    "ctl",
                    "downlink",
                    {
                        "topic": "{user_get}",
                        "size": rng.choice([20, 200, 1360, 3800, 4900]),
                        "payload": "{tag}",  # repeated up to size; the module truncates it
                    },
                )
            ],
            detect="none",
            echo="must",
        ),
        Kind("urc", lambda rng: [("ctl", "urc", {"text": _urc_text(rng)})], detect="health"),
        # -- faults that strand devices (issue: never stranded) --
        Kind(
            "counted_long",
            lambda rng: [
                (
                    "ctl",
                    "counted_long",
                    {"extra": rng.choice([5, 600, 9000]), "topic": "{user_get}"},
                )
            ],
            detect="health",
            failures=2,
            step="sync_ms",
        ),
        Kind(
            "counted_short",
            lambda rng: [
                ("ctl", "counted_short", {"short": rng.choice([1, 5, 12]), "topic": "{user_get}"})
            ],
            detect="health",
            step="sync_ms",
        ),
        Kind("half_open", lambda rng: [("ctl", "half_open", {})], detect="keepalive"),
        Kind(
            "connect_refused",
            lambda rng: [
                (
                    "ctl",
                    "connect_refused",
                    {"style": rng.choice(["error", "closed"]), "count": rng.randint(1, 2)},
                ),
                _drop(),
            ],
            failures="count",
        ),
        Kind(
            "mconnect_closed",
            lambda rng: [("ctl", "mconnect_closed", {"count": rng.randint(1, 3)}), _drop()],
            failures="count",  # a flaky cell, not a refusal: no permanent fault however many
        ),
        Kind(
            "mcu_reset",
            lambda rng: [
                (
                    "ctl",
                    "mcu_reset",
                    {"topic": "{user_get}", "count": rng.randint(0, 3), "payload": "{tag}"},
                ),
                ("vm", "kill", {}),
            ],
            failures=0,  # the first bring-up must take over the module's session
            echo="report",  # printed while the host had no handler yet: reported only
        ),
        Kind(
            "cache_mode",
            lambda rng: [
                (
                    "ctl",
                    "cache_mode",
                    {"count": rng.randint(0, 4), "topic": "{user_get}", "payload": "{tag}"},
                )
            ],
            detect="none",
            failures=0,
            echo="must",  # 4 slots hold them: none may be lost
        ),
        Kind("cmee", lambda rng: [("ctl", "cmee", {"value": 0})], detect="none", failures=0),
        Kind(
            "garbage_burst",
            lambda rng: [
                (
                    "ctl",
                    "garbage_burst",
                    {
                        "count": rng.randint(16, 400),
                        "headers": rng.randint(1, 3),
                        "max_count": rng.choice([50, 700, 9000]),
                        "seed": rng.randrange(1 << 30),
                    },
                )
            ],
            detect="health",
            failures=2,
            step="sync_ms",
        ),
        # -- faults on HTTP bodies (an update's download, an HTTPS auth) --
        Kind(
            "http_cut",  # the link dies N bytes into the next body: that action ends with 601
            lambda rng: [
                (
                    "ctl",
                    "http_cut",
                    {"bytes": rng.choice([0, 100, 4000]), "pdp": rng.randint(0, 1)},
                ),
                _drop(),
            ],
            needs="http",
        ),
        Kind(
            "http_corrupt",  # one flipped byte in the next body: a digest or a parse must fail
            lambda rng: [("ctl", "http_corrupt", {"offset": rng.randrange(512)}), _drop()],
            needs="http",
        ),
        Kind(
            "power_cut",  # while online, or a moment into the reconnect after a drop
            lambda rng: (
                [("vm", "power_cut", {})]
                if rng.random() < 0.5
                else [_drop(), ("sleep", rng.uniform(0.0, 2.0), {}), ("vm", "power_cut", {})]
            ),
            step="sync_ms",
        ),
    )
}
