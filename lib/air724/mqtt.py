"""MQTT through the Air724's built-in client (air724-at.md §7).

The module owns the MQTT session (keepalive, PUBACK); this client drives it: ``AT+MCONFIG``,
``AT+(SSL)MIPSTART`` then at once ``AT+MCONNECT``, subscribe, publish, ``+MSUB`` messages, status
and disconnect. Every MQTT command ends with ``LinkClosedError`` when a line meaning the link
is down (``air724.events.LINK``: CLOSED, PDP deactivation, RDY, SIM removed) arrives."""

from micropython import const

from air724.events import DOWN, DOWN_LINES
from air724.text import HOST_MAX, TOPIC_MAX, after, check_size, escape, is_text, quote, topic_arg
from atmodem import Ring
from atmodem.errors import AbortError, ArgumentError, ATError, CMEError, CommandError
from atmodem.scanner import starts

_WILL_MAX = const(1360)  # will message (§7.4)
_TOPICS = const(2)  # decoded downlink topics kept (each ~200 B)
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
    """The TCP/TLS link came up but ``AT+MCONNECT`` got ``ERROR`` or ``+CME ERROR`` instead of
    ``CONNACK OK``: the broker refused the CONNECT (§7.2). ``code`` is the CME code, or -1.
    (767 can also mean the server closed a TCP link that waited too long for MCONNECT, §7.2.)
    ``CLOSED`` alone is the TCP/TLS link lost (``LinkClosedError``: a flaky cell), no
    refusal."""

    def __init__(self, msg: str, line: bytes = b"", code: int = -1):
        super().__init__(msg, line)
        self.code = code


class MQTTClient:
    """The module's MQTT client on an ``ATChannel``.

    Incoming messages go to ``on_message(callback)`` as ``callback(topic: str, payload:
    bytearray)`` (its own buffer, no copy; from the reader task: must not block), or else into
    ``inbox`` (an ``atmodem.Ring``, by default of ``queue_len``) read by ``await message()``.
    Text payloads up to ``mpub_max`` escaped bytes use ``AT+MPUB``; others ``AT+MPUBEX``."""

    def __init__(self, channel, events=None, queue_len: int = 8, mpub_max: int = 1024, inbox=None):
        self.ch = channel
        self.mpub_max = mpub_max
        self.connected = False
        self.connect_sent = False  # the last ``connect`` got as far as AT+MCONNECT
        self.cached = 0  # "+MSUB: <slot>" notices (cache mode, AT+MQTTMSGSET=1): fetch()
        self.bad_topics = 0
        self._cb = None
        self._inbox = Ring(queue_len) if inbox is None else inbox
        self._events = events
        self._topic = None  # the topic of the +MSUB header just read (None: not UTF-8)
        self._topics = []  # (bytes, str) of the last topics decoded
        channel.add_urc(b"+MSUB:", self._on_msub, self._header)
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
        """The oldest queued ``(topic, payload)``, ``(None, None)`` for a ``+MSUB: <slot>``
        notice (cache mode: ``fetch()``); ``ATTimeoutError`` if none comes."""
        return await self._inbox.get(timeout_ms)

    @property
    def dropped(self) -> int:
        """Messages lost because the queue was full."""
        return self._inbox.dropped

    def _header(self, buf, s, e):
        # Header rule, asked at each comma (atmodem.pending.add_urc): '+MSUB: "<topic>",<len>
        # byte,' (§7.3), without ' byte' (quoted topic), unquoted (MQTTMSGGET, §12.5); the length
        # once buf[s:e] is the header, else -1; the topic in _topic. ('+MSUB: <slot>': no comma.)
        j = e - 1  # the count ends at the comma, or at " byte,"
        byte = starts(buf, b" byte,", j - 5, 6)
        if byte:
            j -= 5
        i = j
        while i > s and 48 <= buf[i - 1] <= 57:
            i -= 1
        if i == j or buf[i - 1] != 44:
            return -1
        a, b = s + 6, i - 1  # the topic: buf[a:b], spaces and quotes off
        while a < b and buf[a] == 32:
            a += 1
        while b > a and buf[b - 1] == 32:
            b -= 1
        if b - a >= 2 and buf[a] == 34 and buf[b - 1] == 34:
            a += 1
            b -= 1
        elif not byte:  # without " byte" the topic must be quoted
            return -1
        # The last few topics are kept: a known one is found in the buffer, no allocation.
        topic = None
        for known in self._topics:
            if len(known[0]) == b - a and buf.startswith(known[0], a):
                topic = known[1]
        if topic is None:
            raw = bytes(buf[a:b])
            try:
                topic = raw.decode()
                if len(self._topics) >= _TOPICS:
                    self._topics.pop(0)
                self._topics.append((raw, topic))
            except UnicodeError:
                pass  # None: counted in _on_msub
        self._topic = topic
        n = 0
        while i < j:
            n = n * 10 + buf[i] - 48
            i += 1
        return n

    def _on_msub(self, head, payload):
        # payload: a bytearray of its own, handed over as it is.
        topic = self._topic
        if topic is None:
            self.bad_topics += 1
            return
        if self._cb is not None:
            self._cb(topic, payload)
        else:
            self._inbox.put((topic, payload))

    def _on_slot(self, line):  # cache mode on (a module's boot default, §7.2): see message()
        self.cached += 1
        if self._cb is None:
            self._inbox.put((None, None))

    def _on_link(self, name, line):
        if name in DOWN:
            self.connected = False

    # -- commands --

    async def _cmd(self, cmd, timeout_ms, ok, abort=DOWN_LINES):
        try:
            return await self.ch.command(cmd, timeout_ms, ok, abort)
        except AbortError as exc:
            raise self._aborted(exc) from None

    def _aborted(self, exc):  # the error for an abort token: CONNECT FAIL, else link lost
        if exc.line.startswith(b"CONNECT FAIL"):
            return MQTTError("connect failed", exc.line)
        self.connected = False
        return LinkClosedError("link lost", exc.line)

    async def configure(
        self,
        client_id: str,
        username: str = "",
        password: str = "",
        will: "tuple | None" = None,
        timeout_ms: int = 5000,
    ) -> None:
        """``AT+MCONFIG``; ``will``: ``(topic, message, qos, retain)`` (§7.2)."""
        ids = (quote(client_id, "client id", 256), quote(username, "username", 256))
        args = b",".join(ids + (quote(password, "password", 256),))
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
        cmd = start + quote(host, "host", HOST_MAX) + b",%d" % port
        # Nothing may run between CONNECT OK and MCONNECT: servers drop a TCP link that stays
        # silent (5 s on some, §7.1 "立即").
        self.connect_sent = False
        async with self.ch.exclusive():
            lines = await self._cmd(cmd, timeout_ms, _CONNECTED, _START_ABORT)
            fresh = lines[-1].startswith(b"CONNECT OK")
            mconnect = b"AT+MCONNECT=%d,%d" % (1 if clean else 0, keepalive_s)
            self.connect_sent = True  # a CONNECT packet goes to the server from here on
            try:
                await self._cmd(mconnect, timeout_ms, (b"CONNACK OK",))
            except CommandError as exc:  # ERROR, +CME ERROR: refused (§7.2); CLOSED: the link
                raise MQTTRefusedError("CONNECT refused", exc.line, exc.code) from None
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
        t = topic_arg(topic)  # quoted once per topic (air724.text)
        if isinstance(payload, str):
            payload = payload.encode()
        ok = _ACKS[_qos(qos)]
        flags = b",%d,%d," % (qos, 1 if retain else 0)
        cmd = prompt = None
        if is_text(payload):
            msg = escape(payload)  # the payload itself when nothing needs an escape
            if len(msg) <= self.mpub_max:  # one allocation: the command
                cmd = b"".join((b"AT+MPUB=", t, flags, b'"', msg, b'"'))
        if cmd is None:
            check_size(len(payload))
            cmd = b"AT+MPUBEX=%s%s%d" % (t, flags, len(payload))
            prompt = b">"
        try:  # no coroutine of its own (as _cmd): a publish is the hot path
            await self.ch.command(cmd, timeout_ms, ok, DOWN_LINES, (), None, prompt, payload)
        except AbortError as exc:
            raise self._aborted(exc) from None

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
        state = int(after(lines, b"+MQTTSTATU").lstrip(b" :"))
        self.connected = state == 1
        return state

    async def disconnect(self, timeout_ms: int = 5000) -> None:
        """``AT+MDISCONNECT``; ``+CME ERROR: 767`` (nothing connected, §7.2) is no error."""
        await self._tolerant(b"AT+MDISCONNECT", timeout_ms)

    async def close(self, timeout_ms: int = 5000) -> None:
        """``AT+MIPCLOSE``; ``+CME ERROR: 767`` (already closed, §7.2) is no error."""
        await self._tolerant(b"AT+MIPCLOSE", timeout_ms)

    async def _tolerant(self, cmd, timeout_ms):
        self.connected = False
        try:
            await self.ch.command(cmd, timeout_ms)
        except CMEError as exc:
            if exc.code != 767:
                raise


def _qos(qos):
    if qos != 0 and qos != 1 and qos != 2:
        raise ArgumentError("qos 0, 1 or 2")
    return qos
