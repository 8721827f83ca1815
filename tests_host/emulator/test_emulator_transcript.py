"""The transcript: timestamps, directions, colours, and the masked AT+MCONFIG password."""

import re

from tools.emulator.transcript import mask_secrets, printable

SECRET = "613d9cb0946741df98db1c50255a9dd0"
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (-->|<--|\*\*\*) (.*)$")


def _session(sim):
    at = sim.port()
    at.train()  # echo on: the password is echoed too
    at.ok(f'AT+MCONFIG="862991419835241","jlvFGfQ11FIGOEJ4RoZU001013ba00","{SECRET}"')
    at.ok("AT+CSQ")
    sim.ctl("urc", text="+HELLO")
    at.expect(rb"\+HELLO\r\n")
    sim.ctl("garbage", hex="07ff")
    at.expect(rb"\x07\xff")
    at.ok("AT")
    return at


def test_file_transcript_masks_the_password(start_sim):
    sim = start_sim()
    _session(sim)
    sim.stop()
    text = sim.transcript_text()
    entries = [LINE.match(line) for line in text.splitlines()]
    assert all(entries), text
    pairs = [(m.group(1), m.group(2)) for m in entries]
    assert ("-->", 'AT+MCONFIG="862991419835241","jlvFGfQ11FIGOEJ4RoZU001013ba00","***"') in pairs
    assert ("<--", 'AT+MCONFIG="862991419835241","jlvFGfQ11FIGOEJ4RoZU001013ba00","***"') in pairs
    assert SECRET not in text
    assert ("-->", "AT+CSQ") in pairs and ("<--", "+CSQ: 24,99") in pairs
    assert ("<--", "+HELLO") in pairs
    assert ("<--", "\\x07\\xffAT") in pairs  # garbage, then the echo of the next command
    assert any(arrow == "***" and "fault: urc" in note for arrow, note in pairs)


def test_show_secrets_and_colours_on_stderr(start_sim):
    sim = start_sim("--transcript", "-", "--show-secrets", "--color", "always")
    _session(sim)
    sim.stop()
    text = sim.stderr()
    assert SECRET in text
    assert "\x1b[31mAT+CSQ\x1b[0m" in text  # host → module in red, as in the seed
    assert "\x1b[32m+CSQ: 24,99\x1b[0m" in text  # module → host in green
    assert "\x1b[33m" in text  # emulator events


def test_no_transcript(start_sim):
    sim = start_sim("--transcript", "none")
    _session(sim)
    sim.stop()
    assert sim.transcript_text() == "" and sim.stderr() == ""


def test_mask_rules():
    assert mask_secrets('AT+MCONFIG="c","u","p"') == 'AT+MCONFIG="c","u","***"'
    assert mask_secrets('at+mconfig=c,u,p,1,0,"w","m"') == 'at+mconfig=c,u,"***",1,0,"w","m"'
    assert mask_secrets('AT+MCONFIG="c","u') == "AT+MCONFIG=***"  # unparsable: all hidden
    assert mask_secrets("AT+MCONFIG=c") == "AT+MCONFIG=c"
    assert mask_secrets("AT+CSQ") == "AT+CSQ"
    assert printable(b"a\x00\tb\xe4") == "a\\x00\tb\\xe4"
    assert printable("你好\x1b".encode()) == "你好\\x1b"
