"""Timing profiles: the least time each step takes (reference §10).

``fast`` is for tests (no added latency); ``realistic`` uses the measured or documented values.
Real network time counts towards each figure: a step never ends earlier than its latency, and
never earlier than the real server answers. ``--latency name=seconds`` overrides one value.
"""

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Profile:
    power_on: float  # power-on until `AT` is answered: "about 20 s" (§10, S7)
    reset: float  # AT+RESET until `RDY`: ≈1.5 s (§10, 780EP log)
    sim: float  # `RDY` until `+CPIN: READY`: within 10 s (§10, S3); INFERRED 1 s
    attach: float  # `RDY` until registered and attached: network URCs ≈5 s later (§10)
    cfun: float  # AT+CFUN=1 until attached again (INFERRED, like attach)
    bearer: float  # AT+SAPBR=1,1 / AT+CIICR until OK (INFERRED; CIICR up to 20 s, §10)
    connect: float  # AT+(SSL)MIPSTART until `CONNECT OK`: 1.4–2.3 s (§10)
    connack: float  # AT+MCONNECT until `CONNACK OK`: 0.22–0.25 s (§10)
    suback: float  # AT+MSUB until `SUBACK`: ≈0.3 s (§10)
    puback: float  # AT+MPUB qos1 until `PUBACK`: ≈0.3 s (§10)
    http: float  # AT+HTTPACTION until `+HTTPACTION:`: 1.6–2.2 s (§10)
    mpubex_idle: float  # AT+MPUBEX without length ends after 5 s idle (§10)


PROFILES = {
    "fast": Profile(
        power_on=0.0,
        reset=0.0,
        sim=0.0,
        attach=0.0,
        cfun=0.0,
        bearer=0.0,
        connect=0.0,
        connack=0.0,
        suback=0.0,
        puback=0.0,
        http=0.0,
        mpubex_idle=0.3,
    ),
    "realistic": Profile(
        power_on=20.0,
        reset=1.5,
        sim=1.0,
        attach=5.0,
        cfun=5.0,
        bearer=0.5,
        connect=1.4,
        connack=0.22,
        suback=0.3,
        puback=0.3,
        http=1.6,
        mpubex_idle=5.0,
    ),
}

NAMES = tuple(f.name for f in fields(Profile))


def make_profile(name, overrides=()):
    """The named profile with ``(name, seconds)`` overrides applied."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; one of {', '.join(PROFILES)}")
    changes = {}
    for key, value in overrides:
        if key not in NAMES:
            raise ValueError(f"unknown latency {key!r}; one of {', '.join(NAMES)}")
        seconds = float(value)
        if seconds < 0:
            raise ValueError(f"latency {key} must not be negative")
        changes[key] = seconds
    return replace(PROFILES[name], **changes)
