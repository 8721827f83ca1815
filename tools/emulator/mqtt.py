"""The module's built-in MQTT client: the AT+M* command set (reference §7).

One connection at a time. `OK` answers each command at once; `CONNECT OK`, `CONNACK OK`,
`SUBACK`, `UNSUBACK`, `PUBACK` are URCs printed when the real broker answers (never earlier than
the profile's latency). Incoming messages are printed directly (`+MSUB: "<topic>",<n> byte,<data>`)
or cached in 4 slots for AT+MQTTMSGGET (AT+MQTTMSGSET, §7.2, §7.3).
"""

import asyncio
import binascii
import time

from .atparse import EXEC, READ, SET, decode_escapes, to_bytes, utf8
from .faults import MISCOUNT, claimed
from .mqttlink import MqttLink
from .net import NetError
from .results import AtError, CmeError

_FIELD_MAX = 256  # clientid/user/password/topic (§7.2, §7.4)
_WILL_MAX = 1360
_MPUBEX_MAX = 4100
_CACHE_SLOTS = 4
_CACHE_MAX = 4096  # "一条消息最多4kb，最多支持缓存4条" (§7.4)
_PROMPTS = {"gt": b"\r\n>", "gt-space": b"\r\n> ", "gt-line": b"\r\n>\r\n"}


class MqttService:
    def __init__(self, modem):
        self.m = modem
        self.config = None
        self.msgset = 0
        self.mode = 0
        self._link = None
        self._pending = {}
        self.reset()

    @property
    def link(self):
        return self._link

    @link.setter
    def link(self, link):
        """A new link (or none): the acks the old one owed are forgotten with it. A new broker
        connection numbers its packets from 1 again, so an old entry would otherwise turn the
        new link's ack (or QoS0 send) of the same id into a PUBACK for a message never sent."""
        if link is not self._link:
            self._pending = {}
        self._link = link

    def reset(self):
        """Reboot: the module forgets everything ("模块不保存已输入AT指令", §2)."""
        if self.link is not None:
            self.link.close(expected=True)
        self.link = None
        self.config = None
        self.msgset = 1 if self.m.dialect.mqttmsgset_boot == "cache" else 0  # §7.2
        self.mode = 0
        self.cache = [None] * _CACHE_SLOTS
        self._seq = 0
        self._pending = {}
        self.tcp_up = False
        self.connected = False

    # -- state --------------------------------------------------------------------------------

    @property
    def status(self):
        """AT+MQTTSTATU: 0 offline, 1 connected, 2 TCP up and MCONNECT needed (§7.2)."""
        if self.connected:
            return 1
        return 2 if self.tcp_up else 0

    def state(self):
        return {
            "mqtt": self.status,
            "msgset": self.msgset,
            "cached": self._cached_count(),
            "half_open": isinstance(self.link, SilentLink),
        }

    def _cached_count(self):
        return sum(1 for slot in self.cache if slot is not None)

    def _emit(self, started, latency, text):
        """Print a URC no earlier than ``latency`` s after ``started``."""
        wait = started + latency - time.monotonic()
        if wait <= 0:
            self.m.urc(text)
            return

        async def later():
            await asyncio.sleep(wait)
            self.m.urc(text)

        self.m.spawn(later())

    # -- link events --------------------------------------------------------------------------

    def _on_event(self, link, kind, *args):
        if link is not self.link:
            return  # a link from before a reboot or MIPCLOSE
        if kind == "connack":
            started = self._pending.pop("connack", time.monotonic())
            if args[0] == 0:
                self.connected = True
                self._emit(started, self.m.profile.connack, "CONNACK OK")
                if self.m.dialect.half_open:
                    self.go_silent()
            else:
                self.m.log(f"CONNACK refused, code {args[0]}")
                if self.m.dialect.connack_refused == "error":
                    self.m.urc("ERROR")
                link.close(expected=False)  # the broker closes after a refusal: `CLOSED`
        elif kind in ("suback", "unsuback", "puback"):
            entry = self._pending.pop(args[0], None)
            if entry:
                started, latency, texts = entry
                if kind == "suback" and len(args) > 1 and args[1]:
                    # A refused SUBSCRIBE (SUBACK 0x80): MSUB's failure token after its OK
                    # (reference §7.2, §11: "OK then SUBACK", "ERROR on failure").
                    self.m.log("SUBACK failure (0x80) for the last AT+MSUB")
                    texts = ("ERROR",)
                for text in texts:
                    self._emit(started, latency, text)
        elif kind == "message":
            topic, payload, _qos = args
            self.deliver(topic.encode("utf-8"), payload)
        elif kind == "closed":
            was_up = self.tcp_up
            self.link = None
            self.tcp_up = self.connected = False
            self._pending.clear()
            if args[0]:
                return
            if not was_up:
                _connect_fail(self.m, "link lost while connecting")
            elif self.m.dialect.closed_urc:
                self.m.urc("CLOSED")  # §7.5

    def link_lost(self):
        """The network or the PDP context went away: the link dies with `CLOSED` (§7.5)."""
        if self.link is not None:
            self.link.close(expected=False)

    def close_quietly(self):
        if self.link is not None:
            self.link.close(expected=True)
            self.link = None
            self.tcp_up = self.connected = False

    def go_silent(self):
        """Fault: the link becomes half-open. The module still reports `+MQTTSTATU :1` and
        prints no `CLOSED`; what the host sends is answered `OK` and goes nowhere, nothing
        comes down. The real connection is closed quietly (the broker sees it go)."""
        if not self.connected or self.link is None:
            raise RuntimeError("MQTT is not connected")
        old = self.link
        self.link = SilentLink(self._on_event)
        self._pending.clear()
        old.close(expected=True)  # its `closed` event no longer belongs to self.link
        self.m.log("MQTT link half-open: nothing goes out or comes in from now on")

    def drop(self):
        """Fault: the server or network closes the link."""
        if self.link is None:
            raise RuntimeError("no MQTT link to drop")
        self.link.close(expected=False)

    # -- delivery -----------------------------------------------------------------------------

    def deliver(self, topic, payload):
        """A PUBLISH from the broker (or injected): print or cache it (§7.3)."""
        d = self.m.dialect
        if isinstance(self.link, SilentLink):
            self.m.log(f"half-open link: message on {topic[:40]!r} never arrives")
            return
        if self.msgset == 1:
            payload = payload[:_CACHE_MAX]
            free = [i for i, slot in enumerate(self.cache) if slot is None]
            if free:
                index = free[0]
            else:  # all full: the oldest is overwritten (§7.4)
                index = min(range(_CACHE_SLOTS), key=lambda i: self.cache[i][0])
            self._seq += 1
            self.cache[index] = (self._seq, topic, payload)
            self.m.urc(f"+MSUB: {index}")
            return
        if len(payload) > d.rx_max:
            self.m.log(f"incoming payload of {len(payload)} bytes > {d.rx_max}: {d.rx_overflow}")
            if d.rx_overflow == "drop":
                return
            payload = payload[: d.rx_max]
        self.m.write(b"\r\n" + self._msub(topic, payload, quoted=True) + b"\r\n")

    def _msub(self, topic, payload, quoted):
        count = claimed(len(payload), MISCOUNT.get(self.m.dialect.msub_count, 0))
        size = f"{count} byte" if self.m.dialect.msub_byte else str(count)
        name = b'"' + topic + b'"' if quoted else topic
        return b"+MSUB: " + name + f",{size},".encode() + payload


# -- commands ---------------------------------------------------------------------------------


def _field(c, index, limit=_FIELD_MAX):
    text = c.arg(index, "")
    if len(to_bytes(text)) > limit:
        raise AtError
    return text


def mconfig(m, c):
    if not c.args or not c.arg(0):
        raise AtError
    client_id, user, password = _field(c, 0), _field(c, 1), _field(c, 2)
    if m.dialect.mconfig_empty == "cme765" and (not user or not password):
        raise CmeError(765)  # 780E peer note (§7.2)
    will = None
    if len(c.args) > 3:
        if len(c.args) != 7:
            raise AtError
        will = {
            "qos": c.int_arg(3, lo=0, hi=2),
            "retain": bool(c.int_arg(4, lo=0, hi=1)),
            "topic": utf8(_field(c, 5)),
            "message": to_bytes(_field(c, 6, _WILL_MAX)),
        }
    m.mqtt.config = {
        "client_id": utf8(client_id),
        "user": utf8(user),
        "password": utf8(password),
        "will": will,
    }


def _mipstart(tls):
    def handler(m, c):
        svc = m.mqtt
        host = utf8(c.arg(0, "")).strip()
        port = c.int_arg(1, lo=1, hi=65535)
        if not host:
            raise AtError
        if svc.link is not None:
            after_final(m, "ALREADY CONNECT")  # §7.2, §11
            if m.dialect.already_connect == "error":
                raise AtError
            return
        if m.faults and m.faults.take("connect_fail"):
            _connect_fail(m, "injected")
            return
        if not m.bearer.mqtt_ready():
            _connect_fail(m, "no active PDP context")  # INFERRED
            return
        link = MqttLink(m.network, host, port, tls, svc._on_event, m.dialect.tls_suites)
        svc.link = link
        m.spawn(_open(m, link))

    return handler


def after_final(m, text):
    """A URC printed right after this command's final result."""
    asyncio.get_running_loop().call_soon(m.urc, text)


def _connect_fail(m, reason):
    m.log(f"CONNECT FAIL: {reason}")

    def emit():
        if m.dialect.connect_fail_state:
            m.urc("STATE: TCP CLOSED")  # `STATE: <state>` + `CONNECT FAIL` (§7.2)
        m.urc("CONNECT FAIL")

    asyncio.get_running_loop().call_soon(emit)


async def _open(m, link):
    svc, started = m.mqtt, time.monotonic()
    m.log(f"MQTT {'TLS' if link.tls else 'TCP'} connect {link.host}:{link.port}")
    try:
        await link.open()
    except NetError as err:
        if svc.link is link:
            svc.link = None
            _connect_fail(m, str(err))
        return
    await asyncio.sleep(max(0.0, started + m.profile.connect - time.monotonic()))
    if svc.link is link and not link.closed:
        svc.tcp_up = True
        m.urc("CONNECT OK")


def mconnect(m, c):
    svc = m.mqtt
    clean = c.int_arg(0, lo=0, hi=1)
    keepalive = c.int_arg(1, lo=1, hi=65535)
    if svc.link is None or not svc.tcp_up:
        raise CmeError(767)  # no TCP, or the server closed it (§7.2, S8)
    if svc.connected or "connack" in svc._pending:
        raise AtError
    if svc.config is None:
        raise AtError
    cfg = svc.config
    svc._pending["connack"] = time.monotonic()
    if _connect_faulted(m, svc):
        return
    try:
        svc.link.connect(
            cfg["client_id"], cfg["user"], cfg["password"], cfg["will"], bool(clean), keepalive
        )
    except (OSError, ValueError) as err:
        m.log(f"MCONNECT: {err}")
        svc.link.close(expected=False)
        raise CmeError(767) from err


def _connect_faulted(m, svc):
    """An injected refusal or link loss for this AT+MCONNECT (after its `OK`); True if so."""
    faults, link = m.faults, svc.link
    style = faults.take_refusal() if faults else None
    closed = m.dialect.mconnect_closed or bool(faults and faults.take("mconnect_closed"))
    if style is None and not closed:
        return False

    def fail():
        if svc.link is not link:
            return  # closed or rebooted meanwhile
        svc._pending.pop("connack", None)
        if style is not None:
            m.log("CONNACK refused (injected)")
            if (style or m.dialect.connack_refused) == "error":
                m.urc("ERROR")  # a refused CONNECT (§7.2, §11), then the broker closes
        else:
            m.log("link lost during MCONNECT (injected)")
        link.close(expected=False)  # `CLOSED` (§7.5)

    asyncio.get_running_loop().call_later(m.profile.connack, fail)
    return True


def _need_connected(m):
    if not m.mqtt.connected:
        raise AtError


def _topic(c, index=0):
    topic = _field(c, index)
    if not topic:
        raise AtError
    return utf8(topic)


def msub(m, c):
    _need_connected(m)
    topic, qos = _topic(c), c.int_arg(1, default=0, lo=0, hi=2)
    try:
        mid = m.mqtt.link.subscribe(topic, qos)
    except ValueError as err:
        raise AtError from err
    m.mqtt._pending[mid] = (time.monotonic(), m.profile.suback, ("SUBACK",))


def munsub(m, c):
    _need_connected(m)
    mid = m.mqtt.link.unsubscribe(_topic(c))
    m.mqtt._pending[mid] = (time.monotonic(), m.profile.suback, ("UNSUBACK",))


def _publish(m, topic, payload, qos, retain):
    try:
        mid = m.mqtt.link.publish(topic, payload, qos, retain)
    except ValueError as err:
        raise AtError from err
    acks = {1: ("PUBACK",), 2: ("PUBREC", "PUBCOMP")}.get(qos)  # §7.2
    if acks:
        m.mqtt._pending[mid] = (time.monotonic(), m.profile.puback, acks)


def mpub(m, c):
    _need_connected(m)
    if len(c.args) != 4 or not c.args[3].quoted:
        raise AtError  # the message must be in double quotes (§7.2)
    topic = _topic(c)
    qos, retain = c.int_arg(1, lo=0, hi=2), c.int_arg(2, lo=0, hi=1)
    text = c.args[3].text
    if m.mqtt.mode == 1:
        try:
            payload = binascii.unhexlify(text)  # AT+MQTTMODE=1: hex text (§7.2)
        except (binascii.Error, ValueError) as err:
            raise AtError from err
    else:
        payload = to_bytes(decode_escapes(text))  # \22 \0D \0A \5C (§7.2)
    counted = len(to_bytes(text)) if m.dialect.mpub_count == "escaped" else len(payload)
    if counted > m.dialect.mpub_max:
        raise AtError  # 2384 / 2348 / 4100 (§7.4)
    _publish(m, topic, payload, qos, bool(retain))


async def mpubex(m, c):
    svc = m.mqtt
    if not svc.connected:
        raise CmeError(767)  # §9
    topic = _topic(c)
    qos, retain = c.int_arg(1, lo=0, hi=2), c.int_arg(2, lo=0, hi=1)
    length = c.int_arg(3, lo=1, hi=_MPUBEX_MAX) if len(c.args) > 3 else None
    m.write(_PROMPTS[m.dialect.mpubex_prompt])
    echo = m.echo or m.dialect.mpubex_echo_bug  # ATE0 did not stop this echo before V301847
    idle = m.profile.mpubex_idle
    if length is None:
        data = await m.read_data(idle=idle, terminator=b"\x1a", echo=echo)  # 0x1A or 5 s idle
    else:
        data = await m.read_data(count=length, idle=idle, echo=echo)
        if len(data) < length:
            raise AtError
    if not svc.connected:
        raise CmeError(767)
    _publish(m, topic, data, qos, bool(retain))


def msgset_set(m, c):
    m.mqtt.msgset = c.int_arg(0, lo=0, hi=1)


def msgset_read(m, c):
    m.info(f"+MQTTMSGSET:{m.mqtt.msgset}")


def msgget(m, c):
    svc = m.mqtt
    quoted = m.dialect.msgget_topic == "quoted"  # §7.3: quoted in logs, plain in the manual
    for index in sorted(
        (i for i, slot in enumerate(svc.cache) if slot), key=lambda i: svc.cache[i][0]
    ):
        _, topic, payload = svc.cache[index]
        svc.cache[index] = None
        m.write(b"\r\n" + svc._msub(topic, payload, quoted) + b"\r\n")


def msgget_read(m, c):
    for index, slot in enumerate(m.mqtt.cache):
        m.info(f"+MQTTMSGGET: {index},{'VALID' if slot else 'INVALID'}")


def mqttstatu(m, c):
    m.info(f"+MQTTSTATU :{m.mqtt.status}")  # the space before the colon is real (§7.2)


def mqttmode_set(m, c):
    m.mqtt.mode = c.int_arg(0, lo=0, hi=1)


def mqttmode_read(m, c):
    m.info(f"+MQTTMODE: {m.mqtt.mode}")


def mdisconnect(m, c):
    svc = m.mqtt
    if not svc.connected:
        raise CmeError(767)  # also right after boot (§7.2 Air820 note)
    svc.link.disconnect()
    svc.link = None  # paho closes the TCP after DISCONNECT; AT+MIPCLOSE then gives 767
    svc.connected = svc.tcp_up = False


def mipclose(m, c):
    svc = m.mqtt
    if svc.link is None:
        raise CmeError(767)  # after `CLOSED` (§7.5): harmless
    svc.close_quietly()


class SilentLink:
    """A half-open link: everything is accepted, nothing is sent, no answer ever comes."""

    tls, closed = False, False

    def __init__(self, events):
        self._events = events
        self._mid = 0

    def _next(self, *_args):
        self._mid += 1
        return self._mid

    subscribe = unsubscribe = publish = _next

    def disconnect(self):
        self.closed = True  # AT+MDISCONNECT: the session ends locally

    def close(self, expected=True):
        if not self.closed:
            self.closed = True
            self._events(self, "closed", expected)


COMMANDS = {
    "+MCONFIG": {SET: mconfig},
    "+MIPSTART": {SET: _mipstart(tls=False)},
    "+SSLMIPSTART": {SET: _mipstart(tls=True)},
    "+MCONNECT": {SET: mconnect},
    "+MSUB": {SET: msub},
    "+MUNSUB": {SET: munsub},
    "+MPUB": {SET: mpub},
    "+MPUBEX": {SET: mpubex},
    "+MQTTMSGSET": {SET: msgset_set, READ: msgset_read},
    "+MQTTMSGGET": {EXEC: msgget, READ: msgget_read},
    "+MQTTSTATU": {EXEC: mqttstatu},
    "+MQTTMODE": {SET: mqttmode_set, READ: mqttmode_read},
    "+MDISCONNECT": {EXEC: mdisconnect},
    "+MIPCLOSE": {EXEC: mipclose},
}
