"""Backoff with jitter and the escalation ladder of the session supervisor (BRIEF §5).

After each failed attempt to get online the supervisor asks ``Recovery.failed()`` which remedy to
apply next and how long to wait first. Remedies escalate from the cheapest to the most drastic:

    mqtt -> bearer -> cfun -> reset -> power

(MQTT reconnect, data bearer reset, ``AT+CFUN`` radio cycle, ``AT+RESET``, PWRKEY power cycle):
one table, ``LADDER``, names each step, its tries, whether it brings a lost PDP context back and
its action, run by the next bring-up. Each is tried ``tries`` times before the next; after
``power`` the ladder starts over. Delays grow exponentially from ``base_ms`` to ``cap_ms`` with
"equal jitter" (half fixed, half random), so a fleet that lost its cell together does not
reconnect together. A permanent fault (bad credentials) waits ``permanent_ms`` and never climbs
the ladder: resetting the module does not repair a wrong secret. ``succeeded()`` resets everything.
"""

import random

from micropython import const

_MAX_SHIFT = const(16)


async def _quietly(aw) -> None:
    """Await a step whose failure changes nothing (the module may be half gone)."""
    try:
        await aw
    except Exception:
        pass


async def _mqtt(modem, board) -> None:
    pass  # nothing more: every bring-up starts by closing the MQTT link


async def _bearer(modem, board) -> None:
    await _quietly(modem.bearer.close())


async def _cfun(modem, board) -> None:
    await _quietly(modem.module.set_functionality(0))
    await _quietly(modem.module.set_functionality(1))


async def _reset(modem, board) -> None:
    await _quietly(modem.module.reset())


async def _power(modem, board) -> None:
    if not await board.power_cycle():  # no PWRKEY wired: AT+RESET instead
        await _reset(modem, board)


# (remedy, tries, brings the default PDP context back? (§5.3), action(modem, board)).
LADDER = (
    ("mqtt", 2, False, _mqtt),
    ("bearer", 2, False, _bearer),
    ("cfun", 1, True, _cfun),
    ("reset", 1, True, _reset),
    ("power", 1, True, _power),
)
STEPS = tuple(row[0] for row in LADDER)
PDP_STEP = [row[0] for row in LADDER if row[2]][0]  # the cheapest step after a PDP loss


class Recovery:
    """``step`` is the remedy the next ``failed()`` prescribes unless the ladder climbs;
    ``failures`` counts the failures since the last success."""

    def __init__(
        self,
        base_ms: int = 1000,
        cap_ms: int = 300000,
        permanent_ms: int = 3600000,
        tries: "tuple | None" = None,
        rand=None,
    ):
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.permanent_ms = permanent_ms
        self.tries = tries or tuple(row[1] for row in LADDER)
        self._rand = rand or random.getrandbits
        self.succeeded()

    def failed(self, permanent: bool = False) -> tuple:
        """Record a failure; return ``(remedy, delay_ms)`` to apply before the next attempt
        (remedy None after a permanent fault: only the wait).

        The delay grows exponentially with the failure count, capped, with equal jitter."""
        self.failures += 1
        if permanent:
            return None, self.permanent_ms
        if self._tries_left == 0:
            index = (STEPS.index(self.step) + 1) % len(STEPS)
            self.step = STEPS[index]
            self._tries_left = self.tries[index]
        self._tries_left -= 1
        full = min(self.base_ms << min(self.failures - 1, _MAX_SHIFT), self.cap_ms)
        half = full // 2
        return self.step, half + (self._rand(24) % (half + 1))

    def escalate(self, step: str) -> None:
        """Start the next remedies at ``step`` at least (a PDP loss needs more than MQTT)."""
        index = STEPS.index(step)
        if STEPS.index(self.step) < index:
            self.step = step
            self._tries_left = self.tries[index]

    def succeeded(self) -> None:
        self.failures = 0
        self.step = STEPS[0]
        self._tries_left = self.tries[0]
