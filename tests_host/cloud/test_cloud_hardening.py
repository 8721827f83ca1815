"""The local cloud as a network service: iot-auth throttling, escaped human output (log
injection), control API answers for malformed requests."""

import json
import logging
import signal
import socket
import subprocess

from tools.cloud import cli
from tools.cloud.server import read_server_file

from .helpers import WAIT, raw_connect, raw_socket, read_until_closed
from .test_cloud_cli import EXE, Lines
from .test_cloud_https import auth_fields, post

FORGED = "2026-01-01 00:00:00.000  device status  forged/line  online"
EVIL_USER = "evil\n" + FORGED + "\x1b[2J\x1b]0;title\x07\x9b31m\u202e&pk"


# iot-auth -------------------------------------------------------------------------------------


def test_iot_auth_throttles_a_device_after_repeated_failures(cloud):
    device, other = cloud.device(), cloud.device()
    wrong = dict(auth_fields(device), sign="0" * 32)
    codes = [post(cloud, "/auth/devicename", wrong)[1]["code"] for _ in range(5)]
    assert codes == [401] * 5
    status, reply = post(cloud, "/auth/devicename", auth_fields(device))  # right sign now
    assert (status, reply) == (200, {"code": 429, "message": "too many requests"})
    assert post(cloud, "/auth/devicename", auth_fields(other))[1]["code"] == 200  # per device
    row = cloud.watcher.wait(lambda r: r["type"] == "api" and r["status"] == "429")
    assert "more than 5 failed requests" in row["content"]


def test_iot_auth_counts_failures_of_dynamic_registration_too(cloud):
    product = cloud.product(dynamic_register=True)
    device = cloud.registry.add_device(product["productKey"], "dynreg01")
    fields = {
        "productKey": product["productKey"],
        "deviceName": device["deviceName"],
        "random": "123",
        "sign": "0" * 64,
        "signMethod": "hmacsha256",
    }
    codes = [post(cloud, "/auth/register/device", fields)[1]["code"] for _ in range(6)]
    assert codes == [401] * 5 + [429]


# log injection --------------------------------------------------------------------------------


def refused_connect(cloud, username):
    with raw_socket(cloud) as sock:
        sock.sendall(raw_connect("c1|securemode=3,signmethod=hmacsha256|", username, "x" * 64))
        assert read_until_closed(sock)[:2] == b"\x20\x02"  # a CONNACK refusal


def assert_escaped(text):
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "\u202e" not in text
    assert not any(line.startswith(FORGED[:23]) for line in text.splitlines())
    assert "\\x1b[2J" in text and "\\n2026-01-01" in text  # shown, escaped


def test_text_log_escapes_a_refused_username(cloud, capsys):
    mark = cloud.watcher.mark()
    refused_connect(cloud, EVIL_USER)
    row = cloud.watcher.wait(lambda r: r["status"].startswith("rc="), mark)
    line = cli.log_line(row)
    assert len(line.splitlines()) == 1
    assert_escaped(line)
    assert cli.main(["--state-dir", str(cloud.state_dir), "log", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert_escaped(out)
    assert cli.main(["--state-dir", str(cloud.state_dir), "log", "--limit", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert json.loads(row["content"])["username"] == EVIL_USER  # JSON keeps it, encoded


def test_serve_stderr_escapes_device_strings(tmp_path):
    """The server's stderr (the echoed log, and library logs with -v) is escaped too."""
    state = tmp_path / "state"
    errors = open(tmp_path / "serve.err", "w")
    serve = subprocess.Popen(
        [EXE, "serve", "-v", "--state-dir", str(state)]
        + ["--mqtt-port", "0", "--mqtts-port", "0", "--https-port", "0"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        info = json.loads(Lines(serve).next())
        with socket.create_connection(("127.0.0.1", info["ports"]["mqtt"]), WAIT) as sock:
            sock.sendall(raw_connect("c1|securemode=3,signmethod=hmacsha256|", EVIL_USER, "x"))
            assert read_until_closed(sock)[:2] == b"\x20\x02"
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(WAIT) == 0
        serve.stdout.close()
        errors.close()
    echoed = (tmp_path / "serve.err").read_text()
    assert "CONNECT refused" in echoed  # the -v library log line
    assert_escaped(echoed)


def test_printable_formatter_escapes_log_records():
    record = logging.LogRecord("x", logging.INFO, "f", 1, "user %s", (EVIL_USER,), None)
    text = cli.PrintableFormatter("%(message)s").format(record)
    assert len(text.splitlines()) == 1
    assert_escaped(text)


# control API ----------------------------------------------------------------------------------


def control_raw(cloud, request: bytes) -> bytes:
    port = read_server_file(cloud.state_dir)["ports"]["control"]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        return read_until_closed(sock)


def control_post(cloud, path, body, token=None) -> bytes:
    token = token or read_server_file(cloud.state_dir)["token"].encode()
    data = json.dumps(body).encode()
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (path.encode(), token)
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data)
    return control_raw(cloud, head + data)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_control_api_answers_401_to_a_non_ascii_authorization(cloud):
    for token in ("tökén".encode(), "令牌".encode(), b"\xff\xfe", b"caf\xe9"):
        reply = control_post(cloud, "/pub", {"topic": "/x"}, token=token)
        assert status_of(reply) == 401, reply


def test_control_api_answers_400_to_non_string_device_fields(cloud, online):
    device = cloud.device()
    online(device)
    bodies = [
        {"productKey": 5, "deviceName": device["deviceName"], "params": {"A": 1}},
        {"productKey": device["productKey"], "deviceName": {"a": 1}, "params": {"A": 1}},
        {"productKey": [1], "deviceName": None, "params": {"A": 1}},
        ["not", "an", "object"],
    ]
    for body in bodies:
        reply = control_post(cloud, "/set-property", body)
        assert status_of(reply) == 400, reply
        assert b"must be" in reply
    for body in bodies[:3] + [{"productKey": "a", "deviceName": "b", "reason": 7}]:
        assert status_of(control_post(cloud, "/kick", body)) == 400
    good = {"productKey": device["productKey"], "deviceName": device["deviceName"]}
    assert json.loads(control_post(cloud, "/kick", good).split(b"\r\n\r\n", 1)[1])["kicked"]
