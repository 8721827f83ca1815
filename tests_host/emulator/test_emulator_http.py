"""The HTTP command set against real local HTTP(S) servers (the seed's device-auth flow)."""

import socket

from .support import AUTH_HOST, AUTH_REPLY

FORM = (
    b"productKey=b0FMK1Ga5cp&sign=1eb96463ad2345b6c261e2f7cc78a7a0"
    b"&clientId=862991419835241&deviceName=862991419835241"
)


def _bearer(at):
    at.ok('AT+SAPBR=3,1,"CONTYPE","GPRS"')
    at.ok('AT+SAPBR=3,1,"APN",""')
    at.ok("AT+SAPBR=1,1")


def _action(at, method, status, length=None):
    at.ok(f"AT+HTTPACTION={method}")
    match = at.expect(rb"\r\n\+HTTPACTION: (\d),(\d+),(\d+)\r\n", timeout=10)
    assert (int(match.group(1)), int(match.group(2))) == (method, status), match.group(0)
    if length is not None:
        assert int(match.group(3)) == length
    return int(match.group(3))


def test_seed_https_auth_flow(sim, https_server):
    """Seed §三 / reference §6.2: POST of the form body, +HTTPACTION: 1,200,len, +HTTPREAD."""
    at = sim.port()
    at.train()  # echo stays on, as in the seed's session
    assert len(FORM) == 112
    _bearer(at)
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL",https://{AUTH_HOST}/auth/devicename')  # unquoted, as in the log
    at.ok('AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"')
    at.send("AT+HTTPDATA=112,20000")
    at.expect(rb"AT\+HTTPDATA=112,20000\r\r\nDOWNLOAD\r\n")
    at.write(FORM)
    at.expect(rb"^\r\nOK\r\n")
    _action(at, 1, 200, len(AUTH_REPLY))
    at.send("AT+HTTPREAD")
    at.expect(rb"AT\+HTTPREAD\r\r\n\+HTTPREAD: 128\r\n")
    assert at.read_exact(128) == AUTH_REPLY
    at.expect(rb"^\r\nOK\r\n")
    at.ok("AT+HTTPTERM")
    request = https_server.requests[-1]
    assert request["method"] == "POST" and request["path"] == "/auth/devicename"
    assert request["body"] == FORM
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["headers"]["Host"] == AUTH_HOST  # the real name travels to the server
    assert request["headers"]["User-Agent"] == "AM_MODULE"


def test_get_chunked_read_head_and_redirect(port, http_server):
    _bearer(port)
    port.ok("AT+HTTPINIT")
    port.ok('AT+HTTPPARA="CID",1')
    port.ok('AT+HTTPPARA="URL","plain.example.com/bytes/3000"')  # no scheme: http (§6.1)
    _action(port, 0, 200, 3000)
    expected = bytes((i * 7 + 13) % 256 for i in range(3000))
    port.send("AT+HTTPREAD=0,1000")
    port.expect(rb"^\r\n\+HTTPREAD: 1000\r\n")
    assert port.read_exact(1000) == expected[:1000]
    port.expect(rb"^\r\nOK\r\n")
    port.send("AT+HTTPREAD=1000,5000")
    port.expect(rb"^\r\n\+HTTPREAD: 2000\r\n")
    assert port.read_exact(2000) == expected[1000:]
    port.expect(rb"^\r\nOK\r\n")
    assert _action(port, 2, 200) == 3000  # HEAD: the length comes from Content-Length
    port.send("AT+HTTPHEAD")
    match = port.expect(rb"^\r\n\+HTTPHEAD: (\d+)\r\n")
    head = port.read_exact(int(match.group(1)))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 3000\r\n" in head
    port.expect(rb"^\r\nOK\r\n")
    port.ok('AT+HTTPPARA="URL","http://plain.example.com/redirect"')
    _action(port, 0, 302)
    port.ok('AT+HTTPPARA="REDIR",1')
    _action(port, 0, 200, 5)
    assert [r["method"] for r in http_server.requests[-5:]] == ["GET", "HEAD", "GET", "GET", "GET"]
    port.ok("AT+HTTPTERM")


def test_body_with_crlf_and_at_text_is_counted(port, https_server):
    body = b"line1\r\nAT+RESET\r\nOK\r\n" + bytes(range(256))
    _bearer(port)
    port.ok("AT+HTTPINIT")
    port.ok(f'AT+HTTPPARA="URL","https://{AUTH_HOST}/bytes/0"')
    port.ok('AT+HTTPPARA="USER_DEFINED","X-Quote: \\22q\\22"')
    port.ok('AT+HTTPPARA="USER_DEFINED","X-Second: 2"')  # headers accumulate (§6.1)
    port.write(f"AT+HTTPDATA={len(body)},5000\r\n".encode())
    port.expect(rb"^\r\nDOWNLOAD\r\n")
    port.write(body)
    port.expect(rb"^\r\nOK\r\n")
    _action(port, 1, 200, 0)
    request = https_server.requests[-1]
    assert request["body"] == body
    assert request["headers"]["X-Quote"] == '"q"' and request["headers"]["X-Second"] == "2"
    port.ok("AT+HTTPTERM")


def test_session_rules_and_parameters(port):
    assert port.command('AT+HTTPPARA="URL","x"')[1] == "ERROR"  # before HTTPINIT
    assert port.command("AT+HTTPREAD")[1] == "ERROR"
    port.ok("AT+HTTPINIT")
    assert port.command("AT+HTTPINIT")[1] == "ERROR"  # one session only
    assert port.command("AT+HTTPACTION=0")[1] == "ERROR"  # no URL yet
    assert port.command('AT+HTTPPARA="NOSUCH","x"')[1] == "ERROR"
    assert port.command("AT+HTTPDATA=10,500")[1] == "ERROR"  # window 1000-120000 ms
    assert port.command("AT+HTTPDATA=319489,5000")[1] == "ERROR"  # Air724 limit
    port.ok('AT+HTTPPARA="URL","http://plain.example.com/x"')
    port.ok("AT+HTTPSSL=1")
    assert port.ok("AT+HTTPSSL?") == "\r\n+ HTTPSSL: 1\r\n"  # sic (§6.1)
    assert "URL: http://plain.example.com/x" in port.ok("AT+HTTPPARA?")
    port.ok("AT+HTTPTERM")
    assert port.command("AT+HTTPTERM")[1] == "ERROR"


def test_module_status_codes_from_real_failures(port, https_server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    port.ok("AT+HTTPINIT")
    port.ok(f'AT+HTTPPARA="URL","https://{AUTH_HOST}/auth/devicename"')
    _action(port, 0, 601, 0)  # bearer not open
    _bearer(port)
    port.ok('AT+HTTPPARA="URL","http://unmapped.example.com/"')
    _action(port, 0, 603, 0)  # DNS (strict resolve)
    port.ok(f'AT+HTTPPARA="URL","http://127.0.0.1:{closed_port}/"')
    _action(port, 0, 601, 0)  # connection refused
    port.ok('AT+HTTPPARA="URL","http://plain.example.com/"')
    port.ok("AT+HTTPSSL=1")
    _action(port, 0, 605, 0)  # TLS to a plain HTTP server
    port.ok("AT+HTTPSSL=0")
    _action(port, 0, 404)
    port.send("AT+HTTPREAD")
    port.expect(rb"^\r\n\+HTTPREAD: 17\r\nnot found\r\n\r\nOK\r\n\r\nOK\r\n")
    port.ok("AT+HTTPTERM")


def test_tls_verified_with_ca(start_sim, resolve_args, certs):
    sim = start_sim(*resolve_args, "--ca", certs["ca"])
    at = sim.port()
    at.train()
    at.ok("ATE0")
    _bearer(at)
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","https://{AUTH_HOST}/auth/devicename"')
    _action(at, 0, 200, len(AUTH_REPLY))  # the certificate names the original host
    at.ok('AT+HTTPPARA="URL","https://other.example.com/auth/devicename"')
    _action(at, 0, 605, 0)  # same server, a name its certificate does not carry
    at.ok("AT+HTTPTERM")


def test_ranged_get_passes_break_and_206_through(port, http_server):
    """§6.4: BREAK/BREAKEND ask for a byte range (end inclusive); the 206 and the range's
    length come back in +HTTPACTION, AT+HTTPREAD=<start>,<size> reads it in pieces."""
    _bearer(port)
    port.ok("AT+HTTPINIT")
    port.ok('AT+HTTPPARA="URL","http://plain.example.com/range/5000"')
    port.ok('AT+HTTPPARA="BREAK",1000')
    port.ok('AT+HTTPPARA="BREAKEND",2999')
    _action(port, 0, 206, 2000)
    assert http_server.requests[-1]["headers"]["Range"] == "bytes=1000-2999"
    expected = bytes((i * 7 + 13) % 256 for i in range(5000))
    port.send("AT+HTTPREAD=0,1500")
    port.expect(rb"^\r\n\+HTTPREAD: 1500\r\n")
    assert port.read_exact(1500) == expected[1000:2500]
    port.expect(rb"^\r\nOK\r\n")
    port.send("AT+HTTPREAD=1500,1500")
    port.expect(rb"^\r\n\+HTTPREAD: 500\r\n")
    assert port.read_exact(500) == expected[2500:3000]
    port.expect(rb"^\r\nOK\r\n")
    port.ok("AT+HTTPTERM")
    port.ok("AT+HTTPINIT")  # a new session asks for the whole resource again
    port.ok('AT+HTTPPARA="URL","http://plain.example.com/range/5000"')
    _action(port, 0, 200, 5000)
    assert "Range" not in http_server.requests[-1]["headers"]
    assert port.command('AT+HTTPPARA="BREAK",-1')[1] == "ERROR"
    port.ok("AT+HTTPTERM")
