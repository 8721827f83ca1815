"""Concise, timestamped log lines for the firmware: ``log(level, message)``.

One line per call on stdout (the REPL console on a board), seconds since boot first:

    "   12.345 I online in 3.2 s"

Levels are ``debug``, ``info``, ``warning`` (alias ``warn``) and ``error``; lines below the
configured level cost one comparison. Secrets registered with ``redact()`` (the device and product
secrets of config.json) are replaced by ``***`` wherever they would appear, so a message that
quotes a command or a reply by mistake still never prints one.
"""

import time

from micropython import const

_DEBUG = const(0)
_INFO = const(1)
_WARNING = const(2)
_ERROR = const(3)
_LEVELS = {"debug": _DEBUG, "info": _INFO, "warning": _WARNING, "warn": _WARNING, "error": _ERROR}
_LETTERS = "DIWE"
_MIN_SECRET = const(4)  # shorter strings would mask ordinary words


if hasattr(time, "ticks_ms"):
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
else:  # CPython (host tests)
    # A type checker takes every TYPE_CHECKING as true: it keeps the device's ticks (the
    # stubs' opaque tick type), and only CPython runs the int fallback.
    TYPE_CHECKING = False
    if TYPE_CHECKING:
        ticks_ms = time.ticks_ms
        ticks_diff = time.ticks_diff
    else:
        _monotonic = time.monotonic

        def ticks_ms() -> int:
            return int(_monotonic() * 1000)

        def ticks_diff(a: int, b: int) -> int:
            return a - b


def level_number(name: str) -> int:
    """The rank of a level name; unknown names rank as errors (never lost)."""
    return _LEVELS.get(name, _ERROR)


class Logger:
    """Callable ``log(level, message)``; ``out(line)`` writes a line (default: print)."""

    def __init__(self, level: str = "info", out=None, clock=None):
        self._min = level_number(level)
        self._out = out or print
        self._clock = clock or ticks_ms
        self._start = self._clock()
        self._secrets = []

    def set_level(self, level: str) -> None:
        self._min = level_number(level)

    def enabled(self, level: str) -> bool:
        return level_number(level) >= self._min

    def redact(self, secret) -> None:
        """Never print ``secret`` (ignored when empty or too short to be one)."""
        if secret and len(secret) >= _MIN_SECRET and secret not in self._secrets:
            self._secrets.append(secret)

    def format(self, level: str, message: str) -> str:
        rank = level_number(level)
        elapsed = ticks_diff(self._clock(), self._start)
        for secret in self._secrets:
            if secret in message:
                message = message.replace(secret, "***")
        return "%5d.%03d %s %s" % (elapsed // 1000, elapsed % 1000, _LETTERS[rank], message)

    def __call__(self, level: str, message: str) -> None:
        if level_number(level) >= self._min:
            self._out(self.format(level, message))

    def exception(self, message: str, exc: BaseException) -> None:
        """Log ``message`` and the exception with its traceback, one log line per line."""
        self("error", message + ": " + repr(exc))
        for line in traceback_lines(exc):
            self("error", "  " + line)


def traceback_lines(exc: BaseException) -> list:
    """The traceback of ``exc`` as lines (MicroPython's print_exception or CPython's)."""
    import io
    import sys

    buf = io.StringIO()
    if hasattr(sys, "print_exception"):
        # The stubs' StringIO lacks its stream base class and getvalue() (MicroPython has both).
        sys.print_exception(exc, buf)  # pyright: ignore[reportArgumentType]
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
    text = buf.getvalue()  # pyright: ignore[reportAttributeAccessIssue] - missing from the stubs
    return [line for line in text.split("\n") if line]
