"""Concise, timestamped log lines for the firmware: ``log(level, message)``.

One line per call on stdout (the REPL console on a board), seconds since boot first:

    "   12.345 I online in 3.2 s"

Levels are ``debug``, ``info``, ``warning`` (alias ``warn``) and ``error``; lines below the
configured level cost a rank lookup. Secrets registered with ``redact()`` (the device and product
secrets of config.json) are replaced by ``***`` wherever they would appear, so a message that
quotes a command or a reply by mistake still never prints one.
"""

from time import ticks_diff, ticks_ms

from micropython import const

_MIN_SECRET = const(4)  # shorter strings would mask ordinary words


def _rank(level: str) -> int:
    """debug 0, info 1, warning (or warn) 2, error 3: the first letter decides; unknown names
    rank as errors (never lost)."""
    rank = "diwe".find(level[:1])
    return 3 if rank < 0 else rank


class Logger:
    """Callable ``log(level, message)``; ``out(line)`` writes a line (default: print)."""

    def __init__(self, level: str = "info", out=None, clock=None):
        self._out = out or print
        self._clock = clock or ticks_ms
        self._last = self._clock()
        self._elapsed = 0  # ms since start, summed per line: ticks span only 6.2 days
        self._secrets = []
        self.set_level(level)

    def set_level(self, level: str) -> None:
        self._min = _rank(level)

    def redact(self, secret) -> None:
        """Never print ``secret`` (ignored when empty or too short to be one)."""
        if secret and len(secret) >= _MIN_SECRET and secret not in self._secrets:
            self._secrets.append(secret)

    def __call__(self, level: str, message: str) -> None:
        now = self._clock()
        self._elapsed += ticks_diff(now, self._last)
        self._last = now
        rank = _rank(level)
        if rank >= self._min:
            elapsed = self._elapsed
            for secret in self._secrets:
                message = message.replace(secret, "***")
            self._out("%5d.%03d %s %s" % (elapsed // 1000, elapsed % 1000, "DIWE"[rank], message))
