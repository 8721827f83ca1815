"""Values into and out of Air724 AT commands: quoting, MPUB escaping, the MQTT topic and
payload limits, response parsing.

Every string placed into a command goes through ``quote`` (quoted arguments) or ``escape``
(MPUB message text), so no topic, URL, header or payload can end the command line and start
another one (BRIEF §5 Security).
"""

from micropython import const

from atmodem.errors import ArgumentError, ResponseError

TOPIC_MAX = const(256)  # MQTT topic bytes (air724-at.md §7.4)
HOST_MAX = const(256)  # AT+(SSL)MIPSTART host (§7.2)
APN_MAX = const(50)  # AT+SAPBR APN, user and password (§5.1)
_MPUBEX_MAX = const(4100)  # AT+MPUBEX length 1..4100 (§7.2)
_QUOTED_MAX = const(4)  # topics kept quoted: a device publishes to a few (each ~150 B)
_QUOTED = {}  # topic -> its quoted argument


def quote(value: "bytes | str", what: str = "argument", max_len: int = 256) -> bytes:
    """``value`` (str or bytes) as a quoted argument ``"value"``.

    Quoted arguments have no escape sequence (only MPUB messages do, air724-at.md §7.2), so a
    ``"``, a CR/LF or any other control character is rejected with ``ArgumentError``.
    """
    if isinstance(value, str):
        value = value.encode()
    if len(value) > max_len:
        raise ArgumentError(what + " over %d bytes" % max_len)
    for c in value:
        if c < 32 or c == 34 or c == 127:
            raise ArgumentError(what + " has a quote or control char")
    return b'"' + value + b'"'


def header_arg(header: "bytes | str", max_len: int = 500) -> bytes:
    """An HTTP header ``"Name: value"`` as the quoted argument of ``AT+HTTPPARA="USER_DEFINED"``.

    The module decodes ``\\HH`` in it (``\\0D\\0A`` becomes CR LF: a header injected, ``\\22`` a
    quote), so on top of ``quote``'s rules a backslash is rejected with ``ArgumentError``.
    """
    arg = quote(header, "header", max_len)
    if b"\\" in arg:
        raise ArgumentError("header has a backslash (the module decodes \\HH escapes)")
    return arg


def is_text(payload: bytes) -> bool:
    """True if MPUB can carry ``payload`` as escaped text: UTF-8, no control bytes but CR/LF."""
    high = False
    for c in payload:
        if (c < 32 and c != 13 and c != 10) or c == 127:
            return False
        if c > 127:
            high = True
    if high:  # only then decode (a copy) to check the UTF-8
        try:
            str(payload, "utf-8")
        except UnicodeError:
            return False
    return True


def escape(payload: bytes) -> bytes:
    """MPUB message escapes (air724-at.md §7.2): ``\\`` ``"`` CR LF as ``\\5C \\22 \\0D \\0A``;
    one ``replace`` per character present, none (no copy) when nothing needs an escape. (A
    table of the escapes would cost its 8 bytes objects on the heap for good, ~550 B.)"""
    if type(payload) is not bytes:
        payload = bytes(payload)
    for c in b'\\"\r\n':  # the backslash first: the backslashes added after it stay
        if c in payload:  # a byte's value: no allocation
            payload = payload.replace(bytes((c,)), b"\\%02X" % c)
    return payload


def after(lines: list, prefix: bytes) -> bytes:
    """Text after ``prefix`` in the first line of ``lines`` that starts with it, stripped."""
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise ResponseError("no " + prefix.decode() + " line", lines)


def ints(text: bytes, lines: "list | None" = None) -> list:
    """Comma-separated integers (``b"0,1"`` -> ``[0, 1]``); quoted fields are skipped.
    ``ResponseError`` if a field is no number or none is left."""
    out = []
    try:
        for field in text.split(b","):
            if b'"' not in field:
                out.append(int(field))  # int() ignores the spaces around
    except ValueError:
        out = ()
    if not out:
        raise ResponseError("no number in " + text.decode(), lines)
    return out


def unquote(text: bytes) -> bytes:
    text = text.strip()
    if len(text) >= 2 and text[0] == 34 and text[-1] == 34:
        return text[1:-1]
    return text


def topic_arg(topic: str) -> bytes:
    """An MQTT topic as a quoted AT argument, quoted once and kept (the last few topics)."""
    arg = _QUOTED.get(topic)
    if arg is None:
        if not topic:
            raise ArgumentError("empty topic")
        arg = quote(topic, "topic", TOPIC_MAX)
        if len(_QUOTED) >= _QUOTED_MAX:
            _QUOTED.clear()
        _QUOTED[topic] = arg
    return arg


def check_size(n: int) -> None:
    """``ArgumentError`` if an MQTT payload of ``n`` bytes is over what AT+MPUBEX carries."""
    if n > _MPUBEX_MAX:
        raise ArgumentError("payload over %d bytes" % _MPUBEX_MAX)


def check_publish(topic: str, payload: "bytes | str") -> None:
    """Raise ``ArgumentError`` if the MQTT client would refuse this topic or payload (checked
    before a message is accepted into an outbox, while the client may be unloaded)."""
    topic_arg(topic)
    n = len(payload)  # a str: its bytes are at most 4 per character, encoded only if it matters
    check_size(len(payload.encode()) if type(payload) is str and n * 4 > _MPUBEX_MAX else n)
