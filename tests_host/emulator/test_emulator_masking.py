"""Masking of the HTTPS secrets in the AT transcript: the form's ``sign``, the ``iotToken`` and a
registered ``deviceSecret`` (and ``deviceToken``) in the cloud's answers; ``--show-secrets``."""

import io

import pytest

from tools.emulator.transcript import Transcript, mask_secrets

from .support import AUTH_HOST, AUTH_REPLY

SIGN = "1eb96463ad2345b6c261e2f7cc78a7a0"
TOKEN = "613d9cb0946741df98db1c50255a9dd0"
FORM = (
    b"productKey=b0FMK1Ga5cp&sign=" + SIGN.encode() + b"&clientId=862991419835241"
    b"&deviceName=862991419835241"
)
REGISTERED = (
    b'{"code":200,"data":{"productKey":"pk","deviceName":"dn","deviceSecret":"Zq8Xw3Rt5Yu7"}}'
)


@pytest.mark.parametrize(
    "line, masked",
    [
        ("productKey=pk&sign=abc123&clientId=c", "productKey=pk&sign=***&clientId=c"),
        ("sign=abc123&signmethod=hmacmd5", "sign=***&signmethod=hmacmd5"),
        (
            'AT+HTTPPARA="URL","https://h/auth?x=1&sign=abc"',
            'AT+HTTPPARA="URL","https://h/auth?x=1&sign=***"',
        ),
        ('{"iotId":"id1","iotToken":"tok"}', '{"iotId":"id1","iotToken":"***"}'),
        (
            '{"deviceSecret": "s3cr3t", "deviceToken":"t0k"}',
            '{"deviceSecret": "***", "deviceToken":"***"}',
        ),
        (
            '+MSUB: "/ext/register",40 byte,{"deviceSecret":"abc"}',
            '+MSUB: "/ext/register",40 byte,{"deviceSecret":"***"}',
        ),
        ("resign=keep&design=keep", "resign=keep&design=keep"),  # not the field
        ("signmethod=hmacmd5", "signmethod=hmacmd5"),
        ('{"payload": "{\\"iotToken\\":\\"tok\\"}"}', '{"payload": "{\\"iotToken\\":\\"***\\"}"}'),
    ],
)
def test_mask_secrets(line, masked):
    assert mask_secrets(line) == masked


def _transcript(show=False):
    stream = io.StringIO()
    return Transcript(stream, show_secrets=show), stream


def test_a_secret_split_across_pieces_never_shows():
    """Data without CRLF is written in pieces on idle; each piece is masked with the line."""
    transcript, stream = _transcript()
    secret = "Zq8Xw3Rt5Yu7Pp"
    pieces = [b"productKey=pk&si", b"gn=Zq8Xw3", b"Rt5Yu7", b"Pp&clientId=c1", b"\r\n"]
    for piece in pieces:
        transcript.host(piece)
        transcript.flush("host")  # what the idle timer does
    text = stream.getvalue()
    assert not any(secret[i : i + 3] in text for i in range(len(secret) - 2)), text
    assert "gn=***" in text  # the piece that started the value shows it masked
    assert "&clientId=c1" in text


def test_show_secrets_shows_them():
    transcript, stream = _transcript(show=True)
    transcript.host(FORM + b"\r\n")
    transcript.module(AUTH_REPLY + b"\r\n")
    assert SIGN in stream.getvalue() and TOKEN in stream.getvalue()


def _https_session(sim):
    at = sim.port()
    at.train()
    at.ok("ATE0")
    at.ok('AT+SAPBR=3,1,"CONTYPE","GPRS"')
    at.ok("AT+SAPBR=1,1")
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","https://{AUTH_HOST}/auth/devicename"')
    at.send(f"AT+HTTPDATA={len(FORM)},20000")
    at.expect(rb"\r\nDOWNLOAD\r\n")
    at.write(FORM)
    at.expect(rb"^\r\nOK\r\n")
    at.ok("AT+HTTPACTION=1")
    at.expect(rb"\+HTTPACTION: 1,200,%d\r\n" % len(AUTH_REPLY), timeout=10)
    at.send("AT+HTTPREAD")
    at.expect(rb"\+HTTPREAD: 128\r\n")
    assert at.read_exact(128) == AUTH_REPLY
    at.expect(rb"^\r\nOK\r\n")
    at.ok("AT+HTTPTERM")
    at.ok('AT+MCONFIG="masking","u","p"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"\r\nCONNACK OK\r\n")
    sim.ctl("downlink", topic="/ext/register", payload=REGISTERED.decode())  # as after §3.2
    at.expect(rb'\+MSUB: "/ext/register",%d byte,' % len(REGISTERED))
    assert at.read_exact(len(REGISTERED)) == REGISTERED


def test_emulator_transcript_masks_the_https_secrets(start_sim, resolve_args):
    sim = start_sim(*resolve_args)
    _https_session(sim)
    sim.stop()
    text = sim.transcript_text()
    assert SIGN not in text and TOKEN not in text and "Zq8Xw3Rt5Yu7" not in text
    assert "&sign=***&" in text and '"iotToken":"***"' in text and '"deviceSecret":"***"' in text
    assert '"iotId":"jlvFGfQ11FIGOEJ4RoZU001013ba00"' in text  # not a secret: shown


def test_emulator_transcript_with_show_secrets(start_sim, resolve_args):
    sim = start_sim(*resolve_args, "--show-secrets")
    _https_session(sim)
    sim.stop()
    text = sim.transcript_text()
    assert SIGN in text and TOKEN in text and "Zq8Xw3Rt5Yu7" in text
