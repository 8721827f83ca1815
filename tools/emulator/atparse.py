"""Parsing of AT command lines: names, forms, arguments and the module's escapes.

Command lines are handled as latin-1 text so every byte the host sends survives unchanged
(payloads in `AT+MPUB` may be UTF-8); `to_bytes` turns an argument back into the wire bytes.
"""

import re
from dataclasses import dataclass, field

EXEC, READ, TEST, SET = "exec", "read", "test", "set"

_BASIC = re.compile(r"(&[A-Z]|[A-Z])(\d*)", re.IGNORECASE)
_EXTENDED = re.compile(r"([+^][A-Z0-9_]+)", re.IGNORECASE)
_HEX_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})")


class ArgError(ValueError):
    """The argument list does not parse; the module answers ERROR."""


@dataclass
class Arg:
    """One argument: its text (quotes removed) and whether it was quoted."""

    text: str
    quoted: bool = False

    def __str__(self):
        return self.text


@dataclass
class Command:
    """One command of a line: ``name`` is upper-case (``+CSQ``, ``E``, ``&W``, ``""`` for AT)."""

    name: str
    kind: str
    raw: str = ""
    args: list = field(default_factory=list)
    line: str = ""

    def arg(self, index, default=None):
        return self.args[index].text if index < len(self.args) else default

    def int_arg(self, index, default=None, lo=None, hi=None):
        """The argument as an integer within [lo, hi]; ArgError otherwise."""
        text = self.arg(index)
        if text is None or text == "":
            if default is None:
                raise ArgError(f"argument {index} missing")
            return default
        try:
            value = int(text)
        except ValueError as err:
            raise ArgError(f"argument {index} is not a number: {text!r}") from err
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ArgError(f"argument {index} out of range: {value}")
        return value


def split_args(text):
    """Split ``a,"b,c", d`` on commas outside double quotes; quotes optional (ref §7.2)."""
    args, buf, quoted, in_quotes, closed = [], [], False, False, False
    for ch in text:
        if in_quotes:
            if ch == '"':
                in_quotes, closed = False, True
            else:
                buf.append(ch)
        elif ch == '"':
            if buf and "".join(buf).strip():
                raise ArgError("quote inside an unquoted argument")
            if closed:
                raise ArgError("two quoted strings in one argument")
            buf, in_quotes, quoted = [], True, True
        elif ch == ",":
            args.append(_finish(buf, quoted))
            buf, quoted, closed = [], False, False
        elif closed:
            if not ch.isspace():
                raise ArgError("text after a closing quote")
        else:
            buf.append(ch)
    if in_quotes:
        raise ArgError("unterminated quote")
    args.append(_finish(buf, quoted))
    return args


def _finish(buf, quoted):
    text = "".join(buf)
    return Arg(text if quoted else text.strip(), quoted)


def split_line(body):
    """Split the text after ``AT`` into commands at ``;`` outside quotes (``AT+IPR=115200;&W``)."""
    parts, buf, in_quotes = [], [], False
    for ch in body:
        if ch == '"':
            in_quotes = not in_quotes
        if ch == ";" and not in_quotes:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p for p in (p.strip() for p in parts) if p] or [""]


def parse_command(text, line=""):
    """Parse one command (without the ``AT`` prefix) into a Command."""
    text = text.strip()
    if not text:
        return Command("", EXEC, line=line)
    match = _EXTENDED.match(text)
    if match:
        name = match.group(1).upper()
        rest = text[match.end() :]
        if rest == "":
            return Command(name, EXEC, line=line)
        if rest == "?":
            return Command(name, READ, line=line)
        if rest == "=?":
            return Command(name, TEST, line=line)
        if rest.startswith("="):
            raw = rest[1:]
            return Command(name, SET, raw=raw, args=split_args(raw), line=line)
        raise ArgError(f"bad command syntax: {text!r}")
    match = _BASIC.match(text)
    if match and match.end() == len(text):
        return Command(match.group(1).upper(), SET, raw=match.group(2), line=line)
    if match and text[match.end() :] == "?":
        return Command(match.group(1).upper(), READ, line=line)
    raise ArgError(f"bad command syntax: {text!r}")


def decode_escapes(text):
    """Decode the module's ``\\HH`` escapes: ``\\22`` ", ``\\0D`` CR, ``\\0A`` LF, ``\\5C`` \\
    (ref §7.2 AT+MPUB). A backslash not followed by two hex digits stays as it is."""
    return _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def to_bytes(text):
    """Wire bytes of latin-1 command text."""
    return text.encode("latin-1")


def wire_text(data):
    """Latin-1 text of wire bytes (lossless)."""
    return bytes(data).decode("latin-1")


def utf8(text):
    """A latin-1 wire string re-read as UTF-8 (topics, host names) for APIs that take str."""
    return to_bytes(text).decode("utf-8", "replace")
