"""Backoff with jitter and the escalation ladder of the session supervisor (BRIEF §5).

After each failed attempt to get online the supervisor asks ``Recovery.failed()`` which remedy to
apply next and how long to wait first. Remedies escalate from the cheapest to the most drastic:

    mqtt -> bearer -> cfun -> reset -> power

(MQTT reconnect, data bearer reset, ``AT+CFUN`` radio cycle, ``AT+RESET``, PWRKEY power cycle),
each tried ``tries`` times before the next; after ``power`` the ladder starts over. Delays grow
exponentially from ``base_ms`` to ``cap_ms`` with "equal jitter" (half fixed, half random), so a
fleet that lost its cell together does not reconnect together. A permanent fault (bad
credentials) waits ``permanent_ms`` and never climbs the ladder: resetting the module does not
repair a wrong secret. ``succeeded()`` resets everything.
"""

import random

from micropython import const

STEPS = ("mqtt", "bearer", "cfun", "reset", "power")
_MAX_SHIFT = const(16)


class Recovery:
    """``step`` is the remedy the next ``failed()`` prescribes unless the ladder climbs;
    ``failures`` counts the failures since the last success."""

    def __init__(
        self,
        base_ms: int = 1000,
        cap_ms: int = 300000,
        permanent_ms: int = 3600000,
        tries: tuple = (2, 2, 1, 1, 1),
        rand=None,
    ):
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.permanent_ms = permanent_ms
        self.tries = tries
        self._rand = rand or random.getrandbits
        self.succeeded()

    def failed(self, permanent: bool = False) -> tuple:
        """Record a failure; return ``(remedy, delay_ms)`` to apply before the next attempt.

        The delay grows exponentially with the failure count, capped, with equal jitter."""
        self.failures += 1
        if permanent:
            return "wait", self.permanent_ms
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
