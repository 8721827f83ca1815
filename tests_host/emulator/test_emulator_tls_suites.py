"""The ``tls_suites=air724`` dialect: the emulator offers only what the Air724 offers (TLS 1.2,
its RSA key-exchange suites, reference §8), reaches the local cloud with it, and answers a
failed handshake as the module does: ``CONNECT FAIL`` (MQTT), ``+HTTPACTION: 1,605,0`` (HTTP)."""

import json
import socket
import threading
import urllib.parse

import pytest

from tools import aliyun_sign as sign
from tools.cloud.registry import DB_NAME, Registry
from tools.cloud.server import CloudThread
from tools.emulator.net import AIR724_SUITES

from .support import AUTH_HOST

RENEGOTIATION_SCSV = 0x00FF  # OpenSSL always adds it; it is a signal, not a suite
TLS13 = 0x0304
STRICT = ("--dialect", "tls_suites=air724")


class HelloRecorder:
    """A TCP server that reads each TLS ClientHello, records it and hangs up (no handshake)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hellos = []
        self.seen = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                hello = _client_hello(conn)
            with self.seen:
                self.hellos.append(hello)
                self.seen.notify_all()

    def wait(self, count, timeout=10):
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.hellos) >= count, timeout), self.hellos
            return self.hellos[count - 1]

    def close(self):
        self.sock.close()


def _read(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _client_hello(conn) -> dict:
    """Cipher suites and supported_versions of a ClientHello (RFC 5246 §7.4.1.2, RFC 8446)."""
    head = _read(conn, 5)
    assert head[0] == 0x16, head  # handshake record
    body = _read(conn, int.from_bytes(head[3:5], "big"))
    assert body[0] == 0x01  # ClientHello
    at = 4 + 2 + 32  # handshake header, client_version, random
    hello = {"version": int.from_bytes(body[4:6], "big")}
    at += 1 + body[at]  # session id
    size = int.from_bytes(body[at : at + 2], "big")
    suites = body[at + 2 : at + 2 + size]
    hello["suites"] = [int.from_bytes(suites[i : i + 2], "big") for i in range(0, size, 2)]
    at += 2 + size
    at += 1 + body[at]  # compression methods
    hello["versions"] = []
    end = at + 2 + int.from_bytes(body[at : at + 2], "big") if at < len(body) else at
    at += 2
    while at < end:
        kind, length = (
            int.from_bytes(body[at : at + 2], "big"),
            int.from_bytes(body[at + 2 : at + 4], "big"),
        )
        data = body[at + 4 : at + 4 + length]
        if kind == 0x002B:  # supported_versions
            hello["versions"] = [
                int.from_bytes(data[i : i + 2], "big") for i in range(1, len(data), 2)
            ]
        at += 4 + length
    return hello


@pytest.fixture
def hello():
    server = HelloRecorder()
    yield server
    server.close()


def _bearer(at):
    at.ok('AT+SAPBR=3,1,"CONTYPE","GPRS"')
    at.ok("AT+SAPBR=1,1")


def _post(at, url, body: bytes):
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","{url}"')
    at.ok('AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"')
    at.send(f"AT+HTTPDATA={len(body)},20000")
    at.expect(rb"\r\nDOWNLOAD\r\n")
    at.write(body)
    at.expect(rb"^\r\nOK\r\n")
    at.ok("AT+HTTPACTION=1")
    return at.expect(rb"\r\n\+HTTPACTION: (\d),(\d+),(\d+)\r\n", timeout=15)


def _port(sim):
    at = sim.port()
    at.train()
    at.expect(rb"\+CPIN: READY\r\n")
    at.ok("ATE0")
    return at


def test_strict_dialect_offers_exactly_the_module_suites(start_sim, hello):
    sim = start_sim(
        "--strict-resolve", "--resolve", f"hello.example.com=127.0.0.1:{hello.port}", *STRICT
    )
    at = _port(sim)
    at.ok('AT+MCONFIG="c1","u","p"')
    at.ok(f'AT+SSLMIPSTART="hello.example.com",{hello.port}')
    at.expect(rb"\r\nCONNECT FAIL\r\n", timeout=15)  # the server hung up: handshake failed
    mqtt_hello = hello.wait(1)
    _bearer(at)
    match = _post(at, f"https://hello.example.com:{hello.port}/auth/devicename", b"a=1")
    assert match.group(0) == b"\r\n+HTTPACTION: 1,605,0\r\n"
    http_hello = hello.wait(2)
    for offered in (mqtt_hello, http_hello):
        suites = set(offered["suites"]) - {RENEGOTIATION_SCSV}
        assert suites <= set(AIR724_SUITES), [hex(s) for s in suites]
        assert {0x002F, 0x0035} <= suites  # AES-128/256-CBC-SHA: in every OpenSSL 3
        assert offered["version"] == 0x0303 and TLS13 not in offered["versions"]


def test_host_dialect_offers_more(start_sim, hello):
    """The default offers the host's TLS (1.3, ECDHE): the strict test above is not vacuous."""
    sim = start_sim("--strict-resolve", "--resolve", f"hello.example.com=127.0.0.1:{hello.port}")
    at = _port(sim)
    at.ok('AT+MCONFIG="c1","u","p"')
    at.ok(f'AT+SSLMIPSTART="hello.example.com",{hello.port}')
    at.expect(rb"\r\nCONNECT FAIL\r\n", timeout=15)
    offered = hello.wait(1)
    assert TLS13 in offered["versions"] or not set(offered["suites"]) <= set(AIR724_SUITES)


def test_strict_dialect_fails_against_a_server_without_rsa_key_exchange(start_sim, resolve_args):
    """The emulator tests' servers have an ECDSA certificate: no RSA key exchange is possible,
    so the module's handshake fails; the emulator answers as the module does (§6.3, §7.2)."""
    sim = start_sim(*resolve_args, *STRICT)
    at = _port(sim)
    at.ok('AT+MCONFIG="c1","u","p"')
    at.ok('AT+SSLMIPSTART="a1.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883')
    at.expect(rb"^\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n", timeout=15)
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    _bearer(at)
    match = _post(at, f"https://{AUTH_HOST}/auth/devicename", b"productKey=a1")
    assert match.group(0) == b"\r\n+HTTPACTION: 1,605,0\r\n"


def test_strict_dialect_reaches_the_local_cloud(start_sim, tmp_path):
    """iot-auth and the MQTT TLS listener of the local cloud accept the module's suites."""
    with CloudThread(tmp_path / "cloud") as cloud:
        registry = Registry(tmp_path / "cloud" / DB_NAME)  # this thread's own connection
        pk = registry.add_product("tls")["productKey"]
        device = registry.add_device(pk, "tls0001")
        registry.close()
        ports = cloud.info["ports"]
        sim = start_sim(
            "--strict-resolve",
            "--resolve",
            f"*.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883=127.0.0.1:{ports['mqtts']}",
            "--resolve",
            f"{AUTH_HOST}=127.0.0.1:{ports['https']}",
            "--ca",
            cloud.info["ca"],
            *STRICT,
        )
        at = _port(sim)
        _bearer(at)
        params = {"clientId": "tls0001", "deviceName": "tls0001", "productKey": pk}
        form = dict(params, sign=sign.sign(params, device["deviceSecret"], "hmacmd5"))
        match = _post(
            at, f"https://{AUTH_HOST}/auth/devicename", urllib.parse.urlencode(form).encode()
        )
        assert match.group(2) == b"200", match.group(0)
        at.send("AT+HTTPREAD")
        at.expect(rb"\+HTTPREAD: (\d+)\r\n")
        reply = json.loads(at.expect(rb"(\{.*\})\r\n").group(1))
        assert reply["code"] == 200 and reply["data"]["iotToken"]
        creds = sign.mqtt_credentials(pk, "tls0001", device["deviceSecret"], securemode=2)
        at.ok(f'AT+MCONFIG="{creds.client_id}","{creds.username}","{creds.password}"')
        at.ok(f'AT+SSLMIPSTART="{pk}.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883')
        at.expect(rb"^\r\nCONNECT OK\r\n", timeout=15)
        at.ok("AT+MCONNECT=1,60")
        at.expect(rb"^\r\nCONNACK OK\r\n", timeout=15)
        at.ok("AT+MDISCONNECT")
