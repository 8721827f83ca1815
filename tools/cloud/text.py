"""Untrusted text made safe for human output (the text log, stderr, tables).

Device names, usernames, topics and payloads come from the network. Printed raw, a newline
forges log lines and an ESC byte drives the terminal. ``printable`` keeps every printable
character (Chinese payloads stay readable) and writes every other one (C0 and C1 controls, DEL,
line and paragraph separators, bidi overrides and other format characters) as a Python-style
escape: ``\\n``, ``\\x1b``, ``\\u202e``. JSON output needs none of this: it is escaped by the
encoder.
"""

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def printable(value) -> str:
    """``str(value)`` with every non-printable character escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
