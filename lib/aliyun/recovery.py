"""Backoff with jitter and the escalation ladder of the session supervisor (BRIEF §5).

After each failed attempt to get online the supervisor asks ``Recovery.failed()`` which remedy to
apply next and how long to wait first. Remedies escalate from the cheapest to the most drastic:

    mqtt -> bearer -> uart -> cfun -> reset -> power

(MQTT reconnect, data bearer reset, a new AT channel on a reopened UART, ``AT+CFUN`` radio
cycle, ``AT+RESET``, PWRKEY power cycle): one table, ``LADDER``, names each step, its tries,
whether it brings a lost PDP context back, whether the session first rebuilds the AT channel and
the UART (the engine itself may be unhealthy) and its action, run by the next bring-up. Each is
tried ``tries`` times before the next; after ``power`` the ladder starts over. Delays grow
exponentially from ``base_ms`` to ``cap_ms`` with "equal jitter" (half fixed, half random), so a
fleet that lost its cell together does not reconnect together. A permanent fault (the cloud
refuses the credentials) never climbs the ladder (resetting the module does not repair a wrong
secret); its waits grow in steps, ``permanent_ms`` (1, 2, 5, 15, then 60 each time),
each between 3/4 and all of its step: a device disabled and re-enabled in the console is back
within minutes. ``succeeded()`` resets everything.

The bring-up spaces the MQTT CONNECTs (``aliyun.bringup.connect_wait_ms``): Aliyun accepts at
most 5 per device in any 60 s and refuses the next with CONNACK 3, which the module reports as a
plain refused connect.
"""

import random

from micropython import const

_MAX_SHIFT = const(16)
# The waits after permanent faults in a row: 1, 2, 5, 15, then 60 minutes.
_PERMANENT_MS = (60000, 120000, 300000, 900000, 3600000)


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


# (remedy, tries, brings the default PDP context back? (§5.3), new AT channel and UART first?,
# action(modem, board)).
LADDER = (
    ("mqtt", 2, False, False, _mqtt),
    ("bearer", 2, False, False, _bearer),
    ("uart", 1, False, True, _mqtt),  # the reader may be deaf: a new channel, nothing more
    ("cfun", 1, True, False, _cfun),
    ("reset", 1, True, True, _reset),
    ("power", 1, True, True, _power),
)
STEPS = tuple(row[0] for row in LADDER)
PDP_STEP = [row[0] for row in LADDER if row[2]][0]  # the cheapest step after a PDP loss
DEAF_STEP = [row[0] for row in LADDER if row[3]][0]  # the cheapest after no answer to AT


class Recovery:
    """``step`` is the remedy the next ``failed()`` prescribes unless the ladder climbs;
    ``failures`` counts the failures since the last success."""

    def __init__(
        self,
        base_ms: int = 1000,
        cap_ms: int = 300000,
        permanent_ms: "tuple | None" = None,
        tries: "tuple | None" = None,
        rand=None,
    ):
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.permanent_ms = permanent_ms or _PERMANENT_MS
        self.permanent = 0  # permanent faults in a row
        self.tries = tries or tuple(row[1] for row in LADDER)
        self._rand = rand or random.getrandbits
        self.succeeded()

    def failed(self, permanent: bool = False) -> tuple:
        """Record a failure; return ``(remedy, delay_ms)`` to apply before the next attempt
        (remedy None after a permanent fault: only the wait, the next of ``permanent_ms``).

        The delay grows exponentially with the failure count, capped, with equal jitter."""
        self.failures += 1
        if permanent:
            steps = self.permanent_ms
            step = steps[min(self.permanent, len(steps) - 1)]
            self.permanent += 1
            return None, step - (self._rand(24) % (step // 4 + 1))
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
        self.failures = self.permanent = 0
        self.step = STEPS[0]
        self._tries_left = self.tries[0]
