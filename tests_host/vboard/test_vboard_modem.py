"""The README's REPL session: the library on a virtual board talks to the emulated Air724UG."""

import json
import subprocess

import pytest

from tools import deploy

from .conftest import BIN, ROOT
from .test_vboard_deploy import CONFIG


@pytest.fixture
def emulator():
    cmd = [str(BIN / "air724-sim"), "--listen", "tcp://127.0.0.1:0", "--transcript", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = json.loads(proc.stdout.readline())  # printed once it listens
        yield int(ready["tcp"].rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_repl_drives_the_emulated_module(vboard, emulator, tmp_path):
    config = tmp_path / "config.json"
    # A config that works on this board: the unix port needs the module's address.
    config.write_text(json.dumps({**CONFIG, "uart": {"url": "tcp://127.0.0.1:%d" % emulator}}))
    deploy.flash(vboard.port, config, root=ROOT, reset="none", log=lambda line: None)
    lines = [
        (b"import asyncio", b""),
        (b"from air724 import Air724", b""),
        (
            b'reader, writer = asyncio.run(asyncio.open_connection("127.0.0.1", %d))' % emulator,
            b"",
        ),
        (b"modem = Air724(reader, writer)", b""),
        (b"modem.start()", b""),
        (b"asyncio.run(modem.module.sync())", b"1\r\n"),
        (b"asyncio.run(modem.module.version()).raw", b"'AirM2M_Air724UG_V409_LTE_AT'\r\n"),
        (b"asyncio.run(modem.channel.command(b'AT+CSQ', 2000, resp=None))", b"[b'+CSQ: "),
        (b"asyncio.run(modem.close())", b""),
    ]
    with vboard.console() as con:
        con.friendly()
        for line, answer in lines:
            con.send(line + b"\r")
            out = con.expect(b">>> ")
            assert out.startswith(line + b"\r\n" + answer), out
            assert b"Traceback" not in out, out
