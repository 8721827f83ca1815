"""Typed errors of the AT engine.

Every failure of a command is one of these, never a string to compare: callers catch the class
they can handle (``CMEError`` with a given ``code``, ``ATTimeoutError``...) and let the rest rise.
"""


class ATError(Exception):
    """Base class of every error raised by the AT engine and the drivers built on it."""


class ATTimeoutError(ATError):
    """No final result within the command's ``timeout_ms``; ``cmd`` is the command sent."""

    def __init__(self, cmd: bytes = b""):
        super().__init__(cmd)
        self.cmd = cmd


class CommandError(ATError):
    """The module answered ``ERROR`` (or ``ERROR:<n>``); ``line`` is the result line."""

    def __init__(self, line: bytes = b"ERROR", code: int = -1):
        super().__init__(line)
        self.line = line
        self.code = code


class CMEError(CommandError):
    """``+CME ERROR: <n>`` (or ``+CMS ERROR: <n>``); ``code`` is ``n``, -1 if not numeric."""


class AbortError(ATError):
    """A line from the command's abort list ended it (e.g. ``CONNECT FAIL``, ``CLOSED``)."""

    def __init__(self, line: bytes = b""):
        super().__init__(line)
        self.line = line


class ClosedError(ATError):
    """The stream was closed (or the channel stopped) before the command could finish."""


class ArgumentError(ATError):
    """A value cannot be put into an AT command safely (quote, CR/LF, length)."""


class ResponseError(ATError):
    """The module answered, but not in a form the caller can parse; ``lines`` holds it."""

    def __init__(self, msg: str = "", lines: "list | None" = None):
        super().__init__(msg)
        self.lines = lines


class DataError(ATError):
    """A counted payload was larger than the channel's ``data_max`` and was skipped."""
