"""The real MQTT link behind the module's built-in client, through paho-mqtt.

The module splits what paho does in one call: AT+MIPSTART opens the TCP (or TLS) connection
(`CONNECT OK`), AT+MCONNECT then sends the MQTT CONNECT (`CONNACK OK`). So ``open`` connects the
socket itself, and ``connect`` hands that socket to a paho client (``_create_socket`` is
overridden; pinned paho-mqtt 2.2.0). A thread runs the paho loop; every event is passed to the
asyncio loop through ``call_soon_threadsafe``. Nothing reconnects by itself: the host does that.

Once connected, only that thread reads or writes the socket: OpenSSL does not allow one SSL
connection to be used from two threads at once (it can corrupt memory and abort the process).
paho writes from the caller of ``publish`` unless a write hook is set, so the link sets a no-op
one: a host action only queues its packet and wakes the loop thread.
"""

import asyncio
import socket
import ssl
import threading

import paho.mqtt.client as paho

from .net import in_thread

_LOOP_TIMEOUT = 1.0


class _GivenSocketClient(paho.Client):
    """A paho client that uses an already connected socket."""

    def __init__(self, sock, **kwargs):
        super().__init__(**kwargs)
        self._given_sock = sock

    def _create_socket(self):
        sock, self._given_sock = self._given_sock, None
        if sock is None:
            raise ConnectionError("the link is closed")
        return sock


def _queue_only(_client, _userdata, _sock):
    """paho's write hook: the loop thread writes what was queued (see the module notes)."""


class MqttLink:
    """One TCP/TLS connection and, after ``connect``, its MQTT session.

    ``events(link, kind, *args)`` is called on the asyncio loop with kind ``connack`` (rc),
    ``suback``, ``unsuback``, ``puback`` (mid), ``message`` (topic, payload, qos) or
    ``closed`` (expected: bool).
    """

    def __init__(self, network, host, port, tls, events, suites="host"):
        self.network = network
        self.host, self.port, self.tls = host, port, tls
        self.suites = suites  # dialect tls_suites: what the TLS handshake offers
        self._events = events
        self._loop = asyncio.get_running_loop()
        self._sock = None
        self._client = None
        self._thread = None
        self._expected_close = False
        self.closed = False
        self.mqtt_connected = False

    async def open(self):
        """Connect TCP/TLS (raises NetError); then watch for the server closing it."""
        self._sock = await in_thread(
            self.network.open, self.host, self.port, self.tls, self.suites
        )
        if self.closed:  # closed (e.g. by a reboot) while connecting
            self._sock.close()
            return
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._watch)

    def _watch(self):
        """Before MCONNECT: notice a close by the server (TLS records without data are fine)."""
        try:
            data = self._sock.recv(1)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._finish(expected=False)

    def connect(self, client_id, username, password, will, clean, keepalive):
        """Send the MQTT CONNECT over the open socket and start the paho loop thread."""
        self._loop.remove_reader(self._sock.fileno())
        client = _GivenSocketClient(
            self._sock,
            callback_api_version=paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=paho.MQTTv311,  # the module speaks 3.1.1 (§7)
        )
        if username or password:
            client.username_pw_set(username or "", password or None)
        if will:
            client.will_set(will["topic"], will["message"], will["qos"], will["retain"])
        client.on_connect = self._on_connect
        client.on_socket_register_write = _queue_only
        client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._post(
            "suback",
            mid,
            any(rc.is_failure for rc in rcs),  # 0x80: refused by the broker
        )
        client.on_unsubscribe = lambda _c, _u, mid, _rc, _p: self._post("unsuback", mid)
        client.on_publish = lambda _c, _u, mid, _rc, _p: self._post("puback", mid)
        client.on_message = lambda _c, _u, msg: self._post(
            "message", msg.topic, bytes(msg.payload), msg.qos
        )
        self._client = client
        client.connect(self.host, self.port, keepalive=keepalive)
        self._thread = threading.Thread(target=self._run, name="air724-mqtt", daemon=True)
        self._thread.start()

    def _on_connect(self, _client, _userdata, _flags, reason, _props):
        rc = reason.value if hasattr(reason, "value") else int(reason)
        self.mqtt_connected = rc == 0
        self._post("connack", rc)

    def _run(self):
        try:
            while not self.closed:
                if self._client.loop(_LOOP_TIMEOUT) != paho.MQTT_ERR_SUCCESS:
                    break
        except Exception:  # noqa: BLE001 - any failure of the link ends it like a close
            pass
        finally:
            self._call(self._finish, self._expected_close)

    def _post(self, kind, *args):
        self._call(self._deliver, kind, args)

    def _call(self, function, *args):
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            pass  # the event loop is closing: the emulator is shutting down

    def _deliver(self, kind, args):
        if not self.closed:
            self._events(self, kind, *args)

    def _finish(self, expected):
        if self.closed:
            return
        self.closed = True
        self.mqtt_connected = False
        if self._client is None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._events(self, "closed", expected or self._expected_close)

    # -- host actions -------------------------------------------------------------------------

    def subscribe(self, topic, qos):
        return self._client.subscribe(topic, qos)[1]

    def unsubscribe(self, topic):
        return self._client.unsubscribe(topic)[1]

    def publish(self, topic, payload, qos, retain):
        return self._client.publish(topic, payload, qos, retain).mid

    def disconnect(self):
        """MQTT DISCONNECT, then close (AT+MDISCONNECT)."""
        self._expected_close = True
        if self._client is not None:
            self._client.disconnect()
        else:
            self.close(expected=True)

    def close(self, expected=True):
        """Close the TCP connection: quietly (AT+MIPCLOSE, reboot) or as a network failure."""
        self._expected_close = expected
        if self._client is None:
            self._finish(expected)
            return
        try:  # the plain socket's shutdown ends the loop thread's read; SSLSocket.shutdown would
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)  # also drop its SSL state
        except OSError:
            pass
        if not self._thread or not self._thread.is_alive():
            self._finish(expected)
