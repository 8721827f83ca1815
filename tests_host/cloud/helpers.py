"""Test helpers for the local cloud: server handle, log waits, signed credentials, paho client."""

import json
import queue
import ssl
import threading
import time

import paho.mqtt.client as mqtt

import tools  # noqa: F401 - micropython stand-in for lib/
from tools import aliyun_sign as sign
from tools.cloud.registry import DB_NAME, Registry

WAIT = 10  # seconds: upper bound of any wait; passing tests take milliseconds

# paho reports MQTT 3.1.1 CONNACK codes as v5 reason codes; map them back to the wire value.
_RC_OF = {
    mqtt.convert_connack_rc_to_reason_code(mqtt.ConnackCode(rc)).value: rc for rc in range(6)
}


class LogWatcher:
    """Collects the server's log rows (pushed from its loop) so tests can wait for one."""

    def __init__(self):
        self.rows = []
        self.cond = threading.Condition()

    def __call__(self, row):
        with self.cond:
            self.rows.append(dict(row))
            self.cond.notify_all()

    def count(self, predicate, n, since=0, timeout=WAIT):
        """Wait until ``n`` rows after ``since`` match; return those rows."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                rows = [r for r in self.rows[since:] if predicate(r)]
                left = deadline - time.monotonic()
                if len(rows) >= n or left <= 0:
                    assert len(rows) >= n, "%d of %d rows; rows: %s" % (len(rows), n, rows)
                    return rows
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.rows)

    def wait(self, predicate, since=0, timeout=WAIT):
        """The first row after ``since`` matching ``predicate``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for row in self.rows[since:]:
                    if predicate(row):
                        return row
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log row matched; rows: %s" % self.rows[since:])
                self.cond.wait(left)


class Endpoint:
    """Where a running server listens: ports and CA from its ready info."""

    def __init__(self, info):
        self.info = info
        self.ca = info["ca"]

    def port(self, name):
        return self.info["ports"][name]

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca)


class Cloud(Endpoint):
    """Test handle of an in-process server: a registry of our own, the log watcher."""

    def __init__(self, thread, state_dir):
        super().__init__(thread.info)
        self.thread = thread
        self.state_dir = state_dir
        self.registry = Registry(state_dir / DB_NAME)
        self.watcher = LogWatcher()
        thread.cloud.registry.listeners.append(self.watcher)
        self._n = 0

    def product(self, dynamic_register=False):
        self._n += 1
        return self.registry.add_product("test%d" % self._n, dynamic_register=dynamic_register)

    def device(self, product=None, name=None):
        """A new device (in a new product unless given); returns the registry record."""
        product = product or self.product()
        self._n += 1
        return self.registry.add_device(product["productKey"], name or "dev%04d" % self._n)

    def secrets_in_log(self):
        """Secrets (device/product secrets, tokens) that appear anywhere in the message log."""
        secrets = {d["deviceSecret"] for d in self.registry.devices() if d["deviceSecret"]}
        secrets |= {d["deviceToken"] for d in self.registry.devices() if d["deviceToken"]}
        secrets |= {p["productSecret"] for p in self.registry.products()}
        secrets |= {row[0] for row in self.registry.db.execute("SELECT iot_token FROM tokens")}
        rows = self.registry.db.execute("SELECT content, topic FROM messages").fetchall()
        text = "\n".join("%s %s" % (row[0], row[1]) for row in rows)
        # secrets made of a plain word (the doc example's "secret") cannot be told from text
        return [s for s in secrets if len(s) >= 12 and s in text]


def credentials(device, securemode=3, signmethod="hmacsha256", timestamp=None, client_id=None):
    """Direct-login CONNECT fields for a registry device (the shared signing code)."""
    creds = sign.mqtt_credentials(
        device["productKey"],
        device["deviceName"],
        device["deviceSecret"],
        client_id=client_id,
        timestamp=timestamp,
        signmethod=signmethod,
        securemode=securemode,
    )
    return creds.client_id, creds.username, creds.password


class Device:
    """A paho MQTT client with waitable CONNACK, SUBACK, messages and disconnect."""

    def __init__(self, cloud, client_id, username, password, tls=False, keepalive=60, clean=True):
        self.cloud = cloud
        self.tls = tls
        self.keepalive = keepalive
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            reconnect_on_failure=False,  # a test sees every disconnect; no retry
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set_context(cloud.ssl_context())
        self.connack = queue.Queue()
        self.subacks = {}
        self.suback_event = threading.Condition()
        self.messages = queue.Queue()
        self.disconnected = threading.Event()
        self.session_present = None
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason, properties):
        self.session_present = flags.session_present
        self.connack.put(_RC_OF[reason.value])

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        with self.suback_event:
            self.subacks[mid] = [r.value for r in reasons]
            self.suback_event.notify_all()

    def connect(self) -> int:
        """Connect and return the CONNACK return code (MQTT 3.1.1 value)."""
        port = self.cloud.port("mqtts" if self.tls else "mqtt")
        self.client.connect("127.0.0.1", port, self.keepalive)
        self.client.loop_start()
        try:
            return self.connack.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("no CONNACK") from None

    def subscribe(self, topic, qos=1) -> int:
        """SUBSCRIBE one filter; return the SUBACK code (granted QoS or 0x80)."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self.suback_event:
            assert self.suback_event.wait_for(lambda: mid in self.subacks, WAIT), "no SUBACK"
            return self.subacks[mid][0]

    def subscribe_many(self, filters, qos=1) -> list:
        """One SUBSCRIBE with every filter; return the SUBACK codes in order."""
        result, mid = self.client.subscribe([(f, qos) for f in filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self.suback_event:
            assert self.suback_event.wait_for(lambda: mid in self.subacks, WAIT), "no SUBACK"
            return self.subacks[mid]

    def unsubscribe(self, topic):
        result, _ = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic, payload, qos=1):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos)
        if qos:
            info.wait_for_publish(WAIT)
        return info

    def expect(self, topic=None, timeout=WAIT):
        """The next message (optionally: the next one on ``topic``) as (topic, payload)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no message on %s" % (topic or "any topic")) from None
            if topic is None or item[0] == topic:
                return item

    def expect_json(self, topic, timeout=WAIT):
        return json.loads(self.expect(topic, timeout)[1])

    def wait_disconnected(self, timeout=WAIT):
        assert self.disconnected.wait(timeout), "still connected"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


# raw MQTT, for what a well-behaved client library will not send -------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def packet(first: int, body: bytes) -> bytes:
    """An MQTT control packet: first byte, remaining length, body."""
    return bytes((first,)) + _varint(len(body)) + body


def raw_connect(client_id, username=None, password=None, name="MQTT", level=4, keepalive=60):
    """CONNECT bytes (MQTT 3.1.1 layout; ``level`` 5 adds the empty property block)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    head = _text(name) + bytes((level, flags)) + keepalive.to_bytes(2, "big")
    if level == 5:
        head += b"\x00"  # MQTT 5: property length 0
    body = head + _text(client_id)
    if username is not None:
        body += _text(username)
    if password is not None:
        body += _text(password)
    return packet(0x10, body)


def raw_socket(cloud, tls=False):
    """A connected raw socket to the broker (TCP, or TLS trusting the test CA)."""
    import socket

    port = cloud.port("mqtts" if tls else "mqtt")
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls:
        sock = cloud.ssl_context().wrap_socket(sock, server_hostname="localhost")
    return sock


def read_until_closed(sock, limit=1 << 16) -> bytes:
    """Everything the server sends until it closes (AssertionError if it stays open)."""
    import socket

    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except socket.timeout:
        raise AssertionError("the server kept the connection open; got %r" % data) from None
    except ConnectionResetError:
        return data
    raise AssertionError("the server kept sending")


def sys_topic(device, suffix):
    """A thing-model topic of ``device``: ``/sys/PK/DN/thing/<suffix>``."""
    return "/sys/%s/%s/thing/%s" % (device["productKey"], device["deviceName"], suffix)
