"""MQTT through the Air724's built-in client (air724-at.md §7).

The module owns the MQTT session (keepalive, PUBACK); this client drives it: ``AT+MCONFIG``,
``AT+(SSL)MIPSTART`` immediately followed by ``AT+MCONNECT``, subscribe, publish, incoming
``+MSUB`` messages, status and disconnect. Every MQTT command ends at once, with
``LinkClosedError``, when a line that means the link is down (``air724.events.LINK``: CLOSED,
a PDP deactivation, RDY, SIM removed) arrives while it waits.
"""

from micropython import const

from air724.events import DOWN, DOWN_LINES
from air724.text import TOPIC_MAX, after, check_size, escape, is_text, quote, topic_arg
from atmodem import Ring
from atmodem.errors import AbortError, ArgumentError, ATError, CMEError, CommandError

_WILL_MAX = const(1360)  # will message (§7.4)
# Final token per QoS: qos0 OK; qos1 OK then PUBACK; qos2 PUBREC then PUBCOMP (§7.2).
_ACKS = ((b"OK",), (b"PUBACK",), (b"PUBCOMP",))
# The link is gone (air724.events.LINK): ends any MQTT command at once (§7.5, §5.3).
_START_ABORT = DOWN_LINES + (b"CONNECT FAIL",)
_CONNECTED = (b"CONNECT OK", b"ALREADY CONNECT")


class MQTTError(ATError):
    """The module refused an MQTT step (``CONNECT FAIL``...); ``line`` is its answer."""

    def __init__(self, msg: str, line: bytes = b""):
        super().__init__(msg, line)
        self.line = line


class LinkClosedError(MQTTError):
    """``CLOSED`` or a PDP deactivation ended the operation (before its timeout)."""


class MQTTRefusedError(MQTTError):
    """The TCP/TLS link came up but ``AT+MCONNECT`` got ``ERROR``, ``+CME ERROR`` or
    ``CLOSED`` instead of ``CONNACK OK``: most often the broker refused the credentials and
    closed the link. ``code`` is the CME code, or -1. (767 can also mean the server closed a
    TCP link that waited too long for MCONNECT, §7.2.)"""

    def __init__(self, msg: str, line: bytes = b"", code: int = -1):
        super().__init__(msg, line)
        self.code = code


def _digits(h, a, b):
    if a >= b or not h[a:b].isdigit():
        return -1
    return int(h[a:b])


def msub_header(head: "bytes | memoryview") -> "tuple | None":
    """Counted header rule for ``+MSUB: "<topic>",<len> byte,<payload>`` (§7.3): ``(header
    length, payload length)`` once the header is complete, else None. Also the manual's form
    without `` byte`` (quoted topic) and the unquoted topic of its MQTTMSGGET example (§7.3,
    §12.5). ``+MSUB: <slot>`` (cache mode) is no header."""
    h = bytes(head)
    i = h.find(b" byte,")
    if i >= 0:
        n = _digits(h, h.rfind(b",", 0, i) + 1, i)
        return None if n < 0 else (i + 6, n)
    k = 6
    while k < len(h) and h[k] == 32:
        k += 1
    if k < len(h) and h[k] == 34:
        q = h.find(b'",', k + 1)
        if q > 0:
            j = h.find(b",", q + 2)
            if j > 0:
                n = _digits(h, q + 2, j)
                if n >= 0:
                    return (j + 1, n)
    return None


def msub_topic(head) -> str:
    """The topic of a complete ``+MSUB`` header (quotes removed); ``UnicodeError`` if not UTF-8."""
    h = bytes(head)
    i = h.rfind(b" byte,")
    if i < 0:
        i = len(h) - 1
    t = h[6 : h.rfind(b",", 0, i)].strip()
    if len(t) >= 2 and t[0] == 34 and t[-1] == 34:
        t = t[1:-1]
    return t.decode()


class MQTTClient:
    """The module's MQTT client on an ``ATChannel``.

    Incoming messages go to ``on_message(callback)`` as ``callback(topic: str, payload:
    bytes)`` (called from the reader task: must not block), or, with no callback, into
    ``inbox`` (an ``atmodem.Ring``; by default a new one of ``queue_len``) read by
    ``await message(timeout_ms)``. Text payloads up to ``mpub_max`` escaped bytes use
    ``AT+MPUB``; others ``AT+MPUBEX``.
    """

    def __init__(self, channel, events=None, queue_len: int = 8, mpub_max: int = 1024, inbox=None):
        self.ch = channel
        self.mpub_max = mpub_max
        self.connected = False
        self.cached = 0  # "+MSUB: <slot>" notices (cache mode, AT+MQTTMSGSET=1): fetch()
        self.bad_topics = 0
        self._cb = None
        self._inbox = Ring(queue_len) if inbox is None else inbox
        self._events = events
        channel.add_urc(b"+MSUB:", self._on_msub, msub_header)
        channel.add_urc(b"+MSUB: ", self._on_slot)
        if events is not None:
            events.subscribe(self._on_link)

    def detach(self) -> None:
        """Stop taking ``+MSUB`` lines and link events: the client is no longer used."""
        self.ch.remove_urc(b"+MSUB:")
        self.ch.remove_urc(b"+MSUB: ")
        if self._events is not None:
            self._events.unsubscribe(self._on_link)

    # -- incoming --

    def on_message(self, callback) -> None:
        """Deliver messages to ``callback(topic, payload)``; None: back to the queue."""
        self._cb = callback

    async def message(self, timeout_ms: int):
        """The oldest queued ``(topic, payload)``; ``ATTimeoutError`` if none comes."""
        return await self._inbox.get(timeout_ms)

    @property
    def dropped(self) -> int:
        """Messages lost because the queue was full."""
        return self._inbox.dropped

    def _on_msub(self, head, payload):
        try:
            topic = msub_topic(head)
        except UnicodeError:
            self.bad_topics += 1
            return
        data = bytes(payload)
        if self._cb is not None:
            self._cb(topic, data)
        else:
            self._inbox.put((topic, data))

    def _on_slot(self, line):
        self.cached += 1

    def _on_link(self, name, line):
        if name in DOWN:
            self.connected = False

    # -- commands --

    async def _cmd(self, cmd, timeout_ms, ok, abort=DOWN_LINES, prompt=None, payload=None):
        try:
            return await self.ch.command(
                cmd, timeout_ms, ok=ok, abort=abort, prompt=prompt, payload=payload
            )
        except AbortError as exc:
            if exc.line.startswith(b"CONNECT FAIL"):
                raise MQTTError("connect failed", exc.line) from None
            self.connected = False
            raise LinkClosedError("link lost", exc.line) from None

    async def configure(
        self,
        client_id: str,
        username: str = "",
        password: str = "",
        will: "tuple | None" = None,
        timeout_ms: int = 5000,
    ) -> None:
        """``AT+MCONFIG``; ``will``: ``(topic, message, qos, retain)`` (§7.2)."""
        args = b",".join(
            (
                quote(client_id, "client id", 256),
                quote(username, "username", 256),
                quote(password, "password", 256),
            )
        )
        if will is not None:
            topic, message, qos, retain = will
            wt = quote(topic, "will topic", TOPIC_MAX)
            wm = quote(message, "will message", _WILL_MAX)
            args += b",%d,%d,%s,%s" % (_qos(qos), 1 if retain else 0, wt, wm)
        await self.ch.command(b"AT+MCONFIG=" + args, timeout_ms)

    async def connect(
        self,
        host: str,
        port: int,
        tls: bool = True,
        clean: bool = True,
        keepalive_s: int = 300,
        timeout_ms: int = 30000,
    ) -> bool:
        """TCP (``AT+MIPSTART``) or TLS (``AT+SSLMIPSTART``), then ``AT+MCONNECT`` at once.
        True for ``CONNECT OK``, False for ``ALREADY CONNECT``. Raises ``MQTTError`` (``CONNECT
        FAIL``), ``LinkClosedError`` (the link down before it is up), ``MQTTRefusedError`` (link
        up, MCONNECT refused), ``CommandError``/``CMEError`` (MIPSTART refused), a timeout."""
        if not 0 < keepalive_s < 65536:
            raise ArgumentError("keepalive 1..65535 s")
        start = b"AT+SSLMIPSTART=" if tls else b"AT+MIPSTART="
        cmd = start + quote(host, "host", 256) + b",%d" % port
        # Nothing may run between CONNECT OK and MCONNECT: servers drop a TCP link that stays
        # silent (5 s on some, §7.1 "立即").
        async with self.ch.exclusive():
            lines = await self._cmd(cmd, timeout_ms, _CONNECTED, _START_ABORT)
            fresh = lines[-1].startswith(b"CONNECT OK")
            mconnect = b"AT+MCONNECT=%d,%d" % (1 if clean else 0, keepalive_s)
            try:
                await self._cmd(mconnect, timeout_ms, (b"CONNACK OK",))
            except CommandError as exc:  # ERROR, +CME ERROR
                raise MQTTRefusedError("CONNECT refused", exc.line, exc.code) from None
            except LinkClosedError as exc:
                if exc.line != b"CLOSED":  # another link loss (PDP, RDY): the link, not the login
                    raise
                raise MQTTRefusedError("CONNECT refused", exc.line) from None
        self.connected = True
        return fresh

    async def subscribe(self, topic: str, qos: int = 0, timeout_ms: int = 10000) -> None:
        cmd = b"AT+MSUB=%s,%d" % (topic_arg(topic), _qos(qos))
        await self._cmd(cmd, timeout_ms, (b"SUBACK",))

    async def unsubscribe(self, topic: str, timeout_ms: int = 10000) -> None:
        await self._cmd(b"AT+MUNSUB=" + topic_arg(topic), timeout_ms, (b"UNSUBACK",))

    async def publish(
        self,
        topic: str,
        payload: "bytes | str",
        qos: int = 0,
        retain: bool = False,
        timeout_ms: int = 10000,
    ) -> None:
        """Publish and, for QoS 1/2, wait for the module's PUBACK/PUBCOMP (§7.1: a QoS1
        message must be acked before the next one; the channel stays held meanwhile). Text goes
        escaped in ``AT+MPUB``; binary or long payloads go raw, with their exact length, in
        ``AT+MPUBEX`` (Air724 firmware V907+)."""
        t = topic_arg(topic)
        if isinstance(payload, str):
            payload = payload.encode()
        ok = _ACKS[_qos(qos)]
        r = 1 if retain else 0
        if is_text(payload):
            msg = escape(payload)
            if len(msg) <= self.mpub_max:
                await self._cmd(b'AT+MPUB=%s,%d,%d,"%s"' % (t, qos, r, msg), timeout_ms, ok)
                return
        n = len(payload)
        check_size(n)
        cmd = b"AT+MPUBEX=%s,%d,%d,%d" % (t, qos, r, n)
        await self._cmd(cmd, timeout_ms, ok, DOWN_LINES, b">", payload)

    async def set_push(self, timeout_ms: int = 2000) -> None:
        """``AT+MQTTMSGSET=0``: each message is pushed as a ``+MSUB`` URC (§7.2)."""
        await self.ch.command(b"AT+MQTTMSGSET=0", timeout_ms)

    async def fetch(self, timeout_ms: int = 5000) -> None:
        """``AT+MQTTMSGGET`` (cache mode): cached messages arrive as if pushed."""
        self.cached = 0
        await self.ch.command(b"AT+MQTTMSGGET", timeout_ms)

    async def status(self, timeout_ms: int = 2000) -> int:
        """``AT+MQTTSTATU`` -> 0 offline, 1 connected, 2 TCP up but MCONNECT needed. The
        answer is ``+MQTTSTATU :<n>`` (space before the colon, §7.2); ``: <n>`` also works."""
        lines = await self.ch.command(b"AT+MQTTSTATU", timeout_ms, resp=b"+MQTTSTATU")
        text = after(lines, b"+MQTTSTATU").lstrip(b" :")
        state = int(text)
        self.connected = state == 1
        return state

    async def disconnect(self, timeout_ms: int = 5000) -> None:
        """``AT+MDISCONNECT``; ``+CME ERROR: 767`` (nothing connected, §7.2) is no error."""
        self.connected = False
        await self._tolerant(b"AT+MDISCONNECT", timeout_ms)

    async def close(self, timeout_ms: int = 5000) -> None:
        """``AT+MIPCLOSE``; ``+CME ERROR: 767`` (already closed, §7.2) is no error."""
        self.connected = False
        await self._tolerant(b"AT+MIPCLOSE", timeout_ms)

    async def _tolerant(self, cmd, timeout_ms):
        try:
            await self.ch.command(cmd, timeout_ms)
        except CMEError as exc:
            if exc.code != 767:
                raise


def _qos(qos):
    if qos != 0 and qos != 1 and qos != 2:
        raise ArgumentError("qos 0, 1 or 2")
    return qos
