"""Test helpers: a plain AT client, the emulator process, a recording MQTT broker and web server.

Nothing here sleeps to synchronise: the client waits for expected bytes with a deadline, the
emulator is ready when it prints its JSON ready line, the servers are ready when they listen.
"""

import asyncio
import json
import os
import re
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from tools.emulator import control

ROOT = Path(__file__).resolve().parents[2]
SIM = Path(sys.executable).with_name("air724-sim")
FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*|SHUT OK)\r\n")
MQTT_HOST = "a1mxL3s6Z7m.iot-as-mqtt.cn-shanghai.aliyuncs.com"
AUTH_HOST = "iot-auth.cn-shanghai.aliyuncs.com"
BAD_PASSWORD = "wrong-password"


class AtTimeoutError(AssertionError):
    pass


class AtPort:
    """A serial-like byte stream (TCP socket or pyserial port) with expect-style reads."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = bytearray()
        self.seen = bytearray()  # everything ever received

    @classmethod
    def tcp(cls, address):
        host, port = address.rsplit(":", 1)
        return cls(socket.create_connection((host.strip("[]"), int(port)), timeout=5))

    def close(self):
        self.stream.close()

    def write(self, data):
        if isinstance(self.stream, socket.socket):
            self.stream.sendall(data)
        else:
            self.stream.write(data)
            self.stream.flush()

    def send(self, line):
        self.write(line.encode("latin-1") + b"\r")

    def _recv(self, timeout):
        if isinstance(self.stream, socket.socket):
            self.stream.settimeout(max(timeout, 0.001))
            try:
                data = self.stream.recv(65536)
            except socket.timeout:
                return b""
            if not data:
                raise ConnectionError("emulator closed the connection")
            return data
        self.stream.timeout = max(timeout, 0.001)
        return self.stream.read(max(1, self.stream.in_waiting))

    def pump(self, timeout):
        data = self._recv(timeout)
        self.buffer += data
        self.seen += data
        return data

    def expect(self, pattern, timeout=5.0):
        """Wait for a regex (bytes or str) in the input; consume through the match."""
        regex = re.compile(pattern.encode("latin-1") if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(bytes(self.buffer))
            if match:
                del self.buffer[: match.end()]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AtTimeoutError(f"{regex.pattern!r} not seen in {bytes(self.buffer)!r}")
            self.pump(left)

    def expect_all(self, patterns, timeout=5.0):
        """Wait until every pattern has been seen, in any order (concurrent URCs)."""
        regexes = [re.compile(p) for p in patterns]
        deadline = time.monotonic() + timeout
        while True:
            data = bytes(self.buffer)
            matches = [r.search(data) for r in regexes]
            if all(matches):
                del self.buffer[: max(m.end() for m in matches)]
                return
            left = deadline - time.monotonic()
            if left <= 0:
                missing = [r.pattern for r, m in zip(regexes, matches, strict=True) if not m]
                raise AtTimeoutError(f"{missing!r} not seen in {data!r}")
            self.pump(left)

    def read_exact(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.buffer) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AtTimeoutError(f"{count} bytes not received: {bytes(self.buffer)!r}")
            self.pump(left)
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def quiet(self, duration):
        """Everything received during ``duration`` s (used to show that nothing comes)."""
        deadline = time.monotonic() + duration
        got = bytearray()
        while (left := deadline - time.monotonic()) > 0:
            got += self.pump(left)
        self.buffer.clear()
        return bytes(got)

    def command(self, line, timeout=5.0):
        """Send a command; return (info text before the final result, final result)."""
        self.send(line)
        match = self.expect(FINAL, timeout)
        text = match.string[: match.start()].decode("latin-1")
        return text, match.group(1).decode()

    def ok(self, line, timeout=5.0):
        text, final = self.command(line, timeout)
        assert final == "OK", f"{line}: {final} after {text!r}"
        return text

    def train(self, attempts=50):
        """The host's autobaud loop: `AT` until `OK` (ref §2)."""
        for _ in range(attempts):
            self.send("AT")
            try:
                self.expect(rb"\r\nOK\r\n", timeout=0.2)
                return
            except AtTimeoutError:
                continue
        raise AtTimeoutError("autobaud: no OK")


class Sim:
    """An ``air724-sim`` process; ready once its JSON ready line is read."""

    def __init__(self, tmp_path, *args, listen=True, pty=False, timeout=10.0):
        self.tmp = tmp_path
        self.transcript = tmp_path / f"transcript-{id(self)}.log"
        self.stderr_path = tmp_path / f"stderr-{id(self)}.log"
        cmd = [str(SIM), "--transcript", str(self.transcript), *args]
        if listen:
            cmd += ["--listen", "tcp://127.0.0.1:0"]
        if pty:
            cmd += ["--pty"]
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL
        )
        self.ready = json.loads(self._first_line(timeout))
        self.ports = []

    def _first_line(self, timeout):
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        data, deadline = b"", time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                self.stop()
                raise AssertionError(f"no ready line; stderr: {self.stderr()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                self.stop()
                raise AssertionError(f"emulator exited; stderr: {self.stderr()}")
            data += chunk
        selector.close()
        return data.decode()

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def port(self):
        """A new TCP client of the emulated UART."""
        port = AtPort.tcp(self.ready["tcp"])
        self.ports.append(port)
        return port

    def ctl(self, command, **params):
        reply = control.request(self.ready["ctl"], command, params)
        assert reply["ok"], reply
        return reply

    def ctl_raw(self, command, **params):
        return control.request(self.ready["ctl"], command, params)

    def transcript_text(self):
        return self.transcript.read_text(encoding="utf-8") if self.transcript.exists() else ""

    def stop(self):
        for port in self.ports:
            port.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._stderr.close()


# -- MQTT broker -----------------------------------------------------------------------------


class Recorder:
    """What the broker saw: CONNECT credentials and PUBLISHed messages (thread-safe)."""

    def __init__(self):
        self.lock = threading.Condition()
        self.connects = []
        self.messages = []

    def add(self, kind, item):
        with self.lock:
            getattr(self, kind).append(item)
            self.lock.notify_all()

    def wait_for(self, kind, predicate, timeout=5.0):
        with self.lock:
            found = self.lock.wait_for(
                lambda: next((i for i in getattr(self, kind) if predicate(i)), None), timeout
            )
            if not found:
                raise AssertionError(f"broker never saw such {kind}: {getattr(self, kind)}")
            return next(i for i in getattr(self, kind) if predicate(i))


RECORDER = Recorder()


class RecordingPlugin(BaseAuthPlugin):
    """amqtt plugin: records CONNECTs and messages; refuses BAD_PASSWORD."""

    async def authenticate(self, *, session):
        RECORDER.add("connects", (session.client_id, session.username, session.password))
        return session.password != BAD_PASSWORD

    async def on_broker_message_received(self, *, client_id, message):
        RECORDER.add("messages", (client_id, message.topic, bytes(message.data), message.qos))


REFUSED_PREFIX = "refused/"  # the test broker answers SUBACK 0x80 to these filters


class RefusingTopicPlugin(BaseTopicPlugin):
    """amqtt topic check: SUBSCRIBE to ``refused/…`` fails (0x80), everything else passes."""

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        return not (action == Action.SUBSCRIBE and (topic or "").startswith(REFUSED_PREFIX))


class BrokerThread:
    """amqtt on 127.0.0.1 (TCP and TLS listeners, free ports) in its own thread and loop."""

    def __init__(self, certfile, keyfile):
        self.certfile, self.keyfile = certfile, keyfile
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.error = None

    def start(self):
        self._thread.start()
        assert self._started.wait(10), "broker did not start"
        if self.error:
            raise self.error
        return self

    def _main(self):
        try:
            asyncio.run(self._serve())
        except Exception as err:  # noqa: BLE001
            self.error = err
            self._started.set()

    async def _serve(self):
        config = {
            "listeners": {
                "default": {"type": "tcp", "bind": "127.0.0.1:0"},
                "tls": {
                    "type": "tcp",
                    "bind": "127.0.0.1:0",
                    "ssl": True,
                    "certfile": self.certfile,
                    "keyfile": self.keyfile,
                },
            },
            "plugins": {f"{__name__}.RecordingPlugin": {}, f"{__name__}.RefusingTopicPlugin": {}},
        }
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        broker = Broker(config)
        await broker.start()
        self.tcp_port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        self.tls_port = broker._servers["tls"].instance.sockets[0].getsockname()[1]
        self._started.set()
        await self._stop.wait()
        await broker.shutdown()

    def stop(self):
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class ClosingServer:
    """A bare TCP server that answers an MQTT CONNECT with CONNACK (accepted) and closes its
    connections when told: the server side of a link loss (amqtt keeps kicked sessions open)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = threading.Semaphore(0)
        self.connects = threading.Semaphore(0)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.release()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while data := conn.recv(4096):
                if data[0] == 0x10:  # CONNECT
                    conn.sendall(b"\x20\x02\x00\x00")
                    self.connects.release()
        except OSError:
            pass

    def close_all(self):
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.conns.clear()

    def stop(self):
        self.sock.close()
        self.close_all()


# -- web server ------------------------------------------------------------------------------


AUTH_REPLY = (
    b'{"code":200,"data":{"iotId":"jlvFGfQ11FIGOEJ4RoZU001013ba00",'
    b'"iotToken":"613d9cb0946741df98db1c50255a9dd0"},"message":"success"}'
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        if self.path.startswith("/auth/devicename"):
            self._reply(200, AUTH_REPLY, [("Content-Type", "application/json")])
        elif self.path.startswith("/range/"):  # honours one Range: bytes=a-b (206)
            size = int(self.path.rsplit("/", 1)[1])
            data = bytes((i * 7 + 13) % 256 for i in range(size))
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                end = min(int(last), size - 1) if last else size - 1
                span = "bytes %s-%d/%d" % (first, end, size)
                self._reply(206, data[int(first) : end + 1], [("Content-Range", span)])
            else:
                self._reply(200, data)
        elif self.path.startswith("/bytes/"):
            size = int(self.path.rsplit("/", 1)[1])
            self._reply(200, bytes((i * 7 + 13) % 256 for i in range(size)))
        elif self.path == "/redirect":
            self._reply(302, b"", [("Location", "/bytes/5")])
        else:
            self._reply(404, b"not found\r\n\r\nOK\r\n")

    do_GET = do_POST = do_HEAD = _handle  # noqa: N815 - http.server's method names


class WebServer:
    """ThreadingHTTPServer on 127.0.0.1:0, optionally TLS; records requests."""

    def __init__(self, certfile=None, keyfile=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.requests = []
        self.httpd.daemon_threads = True
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.requests = self.httpd.requests
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
