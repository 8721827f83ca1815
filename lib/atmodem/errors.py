"""Typed errors of the AT engine.

Every failure of a command is one of these, never a string to compare: callers catch the class
they can handle (``CMEError`` with a given ``code``, ``ATTimeoutError``...) and let the rest rise.
"""


class ATError(Exception):
    """Base class of every error raised by the AT engine and the drivers built on it."""


def _result_line(self: "CommandError | AbortError", line: bytes = b"", code: int = -1):
    # The __init__ of CommandError and AbortError (one function for both).
    super(ATError, self).__init__(line)
    self.line = line
    self.code = code


class ATTimeoutError(ATError):
    """No final result within the command's ``timeout_ms``; ``args[0]`` is the command sent."""


class CommandError(ATError):
    """The module answered ``ERROR`` (or ``ERROR:<n>``); ``line`` is the result line, ``code``
    its number (-1 if none)."""

    line: bytes
    code: int
    __init__ = _result_line  # pyright: ignore[reportAssignmentType]


class CMEError(CommandError):
    """``+CME ERROR: <n>`` (or ``+CMS ERROR: <n>``); ``code`` is ``n``, -1 if not numeric."""


class AbortError(ATError):
    """A line from the command's abort list ended it (e.g. ``CONNECT FAIL``, ``CLOSED``);
    ``line`` is that line (``code`` is -1)."""

    line: bytes
    code: int
    __init__ = _result_line  # pyright: ignore[reportAssignmentType]


class ClosedError(ATError):
    """The stream was closed (or the channel stopped) before the command could finish."""


class ArgumentError(ATError):
    """A value cannot be put into an AT command safely (quote, CR/LF, length)."""


class ResponseError(ATError):
    """The module answered, but not in a form the caller can parse: ``args`` is (message,
    lines), the lines when the caller passed them."""


class DataError(ATError):
    """A counted payload was larger than the channel's ``data_max`` and was skipped."""
