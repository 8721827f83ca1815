"""Timestamped log of both directions of the UART, coloured like the seed when on a terminal.

The seed prints what the MCU sends in red and what the module answers in green. Without a
terminal (or with ``--color never``) each line carries an arrow instead: ``-->`` host to module,
``<--`` module to host, ``***`` emulator events. Unless ``--show-secrets``, secrets are masked
as ``***``: the password of ``AT+MCONFIG`` (in the command and in its echo), the ``sign`` of an
HTTPS form or URL, and the ``iotToken``, ``deviceSecret`` and ``deviceToken`` of the cloud's JSON
answers (HTTP bodies, ``+MSUB`` pushes, the payload of a fault note). A line written in pieces
(data without CRLF) is masked as a whole: a secret split across pieces never shows.
"""

import re
import time

from .atparse import ArgError, split_args

HOST, MODULE, NOTE = "host", "module", "note"
_ARROWS = {HOST: "-->", MODULE: "<--", NOTE: "***"}
_COLOURS = {HOST: "\x1b[31m", MODULE: "\x1b[32m", NOTE: "\x1b[33m"}
_RESET = "\x1b[0m"
_IDLE_FLUSH = 0.05
_SECRET_COMMANDS = (
    # AT+MCONFIG=<clientid>,<user>,<password>,...: the password is argument 2 (ref §7.2)
    (re.compile(r"^(\s*AT\+MCONFIG=)(.*)$", re.IGNORECASE | re.DOTALL), 2),
)
_AT_START = re.compile(r"^\s*AT", re.IGNORECASE)
_SECRET_VALUES = (
    # HTTPS device auth and dynamic registration forms, or a URL query (ref §6.2; aliyun §2, §3)
    re.compile(r"((?:^|[?&])sign=)([^&\s\"]+)", re.IGNORECASE),
    # the cloud's answers: iotToken (§2), deviceSecret (§3.1, /ext/register), deviceToken (§3.2)
    # (quotes may be escaped: a payload inside the JSON of a fault note)
    re.compile(r'(\\?"(?:iotToken|deviceSecret|deviceToken)\\?"\s*:\s*\\?")([^"\\]+)'),
)


def mask_secrets(line):
    """The line with secret arguments and values replaced by ``***``."""
    for pattern in _SECRET_VALUES:
        line = pattern.sub(lambda m: m.group(1) + "***", line)
    for pattern, index in _SECRET_COMMANDS:
        match = pattern.match(line)
        if not match:
            continue
        try:
            args = split_args(match.group(2))
        except ArgError:
            return match.group(1) + "***"
        if len(args) > index:
            args[index].text, args[index].quoted = "***", True
        rendered = ",".join(f'"{a.text}"' if a.quoted else a.text for a in args)
        return match.group(1) + rendered
    return line


def printable(data):
    """Show bytes as text: UTF-8 (Chinese payloads) when the bytes are valid UTF-8, tabs kept,
    every other control or undecodable byte as ``\\xNN``."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if 32 <= b < 127 or b == 9 else f"\\x{b:02x}" for b in data)
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


class Transcript:
    """Assemble lines per direction and write them with a timestamp."""

    def __init__(self, stream, colour=False, show_secrets=False, loop=None):
        self._stream = stream
        self._colour = colour
        self._show_secrets = show_secrets
        self._loop = loop
        self._partial = {HOST: bytearray(), MODULE: bytearray()}
        self._shown = {HOST: "", MODULE: ""}  # the line written so far in pieces (unmasked)
        self._timers = {}

    def host(self, data):
        """Bytes the host sent to the module."""
        self._feed(HOST, data)

    def module(self, data):
        """Bytes the module sent to the host."""
        self._feed(MODULE, data)

    def note(self, text):
        """An emulator event (fault, network action); masked like the rest."""
        self._write(NOTE, text if self._show_secrets else mask_secrets(text))

    def _feed(self, direction, data):
        if self._stream is None:
            return
        buf = self._partial[direction]
        buf += data
        while True:
            cut = _line_end(buf)
            if cut is None:
                break
            end, skip = cut
            line = bytes(buf[:end])
            del buf[: end + skip]
            if line or self._shown[direction]:
                self._piece(direction, printable(line), complete=True)
        self._schedule_flush(direction)

    def _schedule_flush(self, direction):
        timer = self._timers.pop(direction, None)
        if timer:
            timer.cancel()
        if self._partial[direction] and self._loop is not None:
            self._timers[direction] = self._loop.call_later(_IDLE_FLUSH, self.flush, direction)

    def flush(self, direction=None):
        """Write partial lines (prompts, data without CRLF); a partial command waits for its CR
        so a secret is never split across entries."""
        for key in (direction,) if direction else (HOST, MODULE):
            buf = self._partial[key]
            text = printable(bytes(buf))
            if buf and (direction is None or not _AT_START.match(text)):
                self._piece(key, text, complete=False)
                buf.clear()

    def _piece(self, direction, text, complete):
        """Write the next piece of a line: the masked line minus what was written of it."""
        if self._show_secrets:
            self._write(direction, text)
            return
        before = self._shown[direction]
        line = mask_secrets(before + text)
        shown = mask_secrets(before) if before else ""
        out = line[len(shown) :] if line.startswith(shown) else line
        self._shown[direction] = "" if complete else before + text
        if out:
            self._write(direction, out)

    def _write(self, direction, text):
        if self._stream is None:
            return
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        if self._colour:
            entry = f"{stamp} {_COLOURS[direction]}{text}{_RESET}\n"
        else:
            entry = f"{stamp} {_ARROWS[direction]} {text}\n"
        try:
            self._stream.write(entry)
            self._stream.flush()
        except (OSError, ValueError):
            self._stream = None

    def close(self):
        self.flush()
        for timer in self._timers.values():
            timer.cancel()


def _line_end(buf):
    """(index, separator length) of the first CR, LF or CRLF in buf, or None."""
    found = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
    if not found:
        return None
    index = min(found)
    if buf[index] == 13 and index + 1 < len(buf) and buf[index + 1] == 10:
        return index, 2
    return index, 1
