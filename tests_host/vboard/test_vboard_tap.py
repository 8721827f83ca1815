"""The transcript tap in front of a serial device, with ``air724-sim --pty`` as the device."""

import json
import re
import subprocess
import sys

import pytest
import serial

from .conftest import BIN


@pytest.fixture
def device():
    """``air724-sim --pty``: stands in for a module on /dev/ttyUSB0."""
    cmd = [str(BIN / "air724-sim"), "--pty", "--transcript", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield json.loads(proc.stdout.readline())["pty"]  # printed once it serves
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_tap_passes_bytes_both_ways_and_writes_the_transcript(device, tmp_path):
    transcript = tmp_path / "at.log"
    cmd = [sys.executable, "-m", "tools.vboard.tap", device, "--transcript", str(transcript)]
    tap = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        pty = tap.stdout.readline().strip()
        assert pty.startswith("/dev/pts/")
        with serial.Serial(pty, 115200, timeout=5) as port:
            port.write(b"AT\r")
            assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
            port.write(b'AT+MCONFIG="cid","user","s3cret-password"\r')
            assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
    finally:
        tap.terminate()
        assert tap.wait(timeout=10) == 0
    text = transcript.read_text()
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} --> AT$", text, re.M), text
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} <-- OK$", text, re.M), text
    assert '--> AT+MCONFIG="cid","user","***"' in text
    assert "s3cret-password" not in text
