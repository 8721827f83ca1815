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
        self.failures = 0  # consecutive failures since the last success
        self._step = 0
        self._tries_left = tries[0]

    @property
    def step(self) -> str:
        """The remedy the next ``failed()`` will prescribe unless the ladder climbs."""
        return STEPS[self._step]

    def delay_ms(self) -> int:
        """Exponential delay for the current failure count, capped, with equal jitter."""
        shift = min(self.failures - 1, _MAX_SHIFT) if self.failures > 0 else 0
        full = min(self.base_ms << shift, self.cap_ms)
        half = full // 2
        return half + (self._rand(24) % (half + 1))

    def failed(self, permanent: bool = False) -> tuple:
        """Record a failure; return ``(remedy, delay_ms)`` to apply before the next attempt."""
        self.failures += 1
        if permanent:
            return "wait", self.permanent_ms
        if self._tries_left == 0:
            self._step = (self._step + 1) % len(STEPS)
            self._tries_left = self.tries[self._step]
        self._tries_left -= 1
        return STEPS[self._step], self.delay_ms()

    def escalate(self, step: str) -> None:
        """Start the next remedies at ``step`` at least (a PDP loss needs more than MQTT)."""
        index = STEPS.index(step)
        if self._step < index:
            self._step = index
            self._tries_left = self.tries[index]

    def succeeded(self) -> None:
        self.failures = 0
        self._step = 0
        self._tries_left = self.tries[0]
