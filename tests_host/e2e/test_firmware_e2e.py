"""The firmware as a process on the MicroPython VM (128 KB heap): invalid configuration, the unix
board against the emulator (TCP and pty), and the harness starting and stopping every part."""

import json
import signal

import config
import pytest

from tools.sim.parts import device_config
from tools.sim.proc import BIN, Proc

from .harness import ROOT, WAIT, run_vm

SECRET = "Vq3xY8pLm2Nw7Rt4"
DEVICE = {"productKey": "a1B2c3D4e5F", "deviceName": "dev-001", "deviceSecret": SECRET}


def broken(**changes):
    cfg = device_config(DEVICE, uart_url="tcp://127.0.0.1:9")
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (broken(keepalive_s=5), r"E config\.json: keepalive_s: must be 30\.\.1200$"),
        (broken(auth="magic"), r"E config\.json: auth: must be one of direct, http, dynreg$"),
        (broken(colour="red"), r"E config\.json: colour: unknown field$"),
        ("{not json", r"E config\.json: \(file\): not valid JSON$"),
        (broken(uart={"url": ""}), r"E config\.json: uart\.url: required on the unix port"),
    ],
    ids=["range", "choice", "unknown", "json", "unix-uart-url"],
)
def test_invalid_config_names_the_field_and_stays_in_a_safe_state(stack, cfg, expected):
    firmware = stack.start_firmware(cfg)
    stack.wait_device(expected)
    stack.wait_device(r" E safe state: fix config\.json")
    # Still running, idle: Ctrl-C reaches main.py's handler (an exited or resetting firmware
    # would not log "stopped" with status 0).
    assert firmware.proc.stop(signal.SIGINT) == 0
    assert firmware.proc.find(r" I stopped$")
    assert not firmware.proc.find(r"reset in|unexpected error")
    assert not [text for _, _, text in stack.lines if SECRET in text]


def test_config_example_is_valid_and_shows_every_field():
    example = json.loads((ROOT / "firmware" / "config.example.json").read_text())
    cfg = config.validate(example)
    assert set(example) == set(cfg)  # validate() fills in every field of its table
    for section in ("uart", "pins"):
        assert set(example[section]) == set(cfg[section]), section
    assert cfg["echo_user_get"] is True and cfg["tls"] is True


BOARD_SCRIPT = """
import sys, asyncio
from boards.unix import Board

async def main(url):
    board = Board({"uart": {"url": url, "baud": 115200}})
    for _ in range(2):  # open, talk, close, and again: the link must be reusable
        reader, writer = await board.open_uart()
        writer.write(b"AT\\r")
        await writer.drain()
        data = b""
        while b"OK" not in data:
            chunk = await asyncio.wait_for_ms(reader.read(64), 10000)
            if not chunk:
                break
            data += chunk
        board.close_uart()
        print("REPLY", repr(data))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("endpoint", ["pty", "tcp"])
def test_unix_board_talks_to_the_emulator_on_the_vm(tmp_path, endpoint):
    argv = [BIN / "air724-sim", "--strict-resolve", "--transcript", "none"]
    argv += ["--pty"] if endpoint == "pty" else ["--listen", "tcp://127.0.0.1:0"]
    module = Proc("module", argv).start()
    try:
        _, match = module.wait_for(r'^\{.*"ready": true', WAIT, stream="out")
        ready = json.loads(match.string)
        url = ready["pty"] if endpoint == "pty" else "tcp://" + ready["tcp"]
        script = tmp_path / "board_link.py"
        script.write_text(BOARD_SCRIPT)
        proc = run_vm(script, url)
    finally:
        module.stop(signal.SIGINT)
    replies = [line for line in proc.stdout.splitlines() if line.startswith("REPLY")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(replies) == 2 and all("OK" in line for line in replies), proc.stdout


def test_stack_lays_out_the_board_and_stops_every_process(stack):
    stack.start()
    stack.wait_device(r" I firmware start \(unix\)")
    board = stack.firmware.board_dir
    assert (board / "main.py").exists() and (board / "app.mpy").exists()
    assert (board / "lib" / "aliyun" / "alink.mpy").exists()
    written = json.loads((board / "config.json").read_text())
    assert written["uart"]["url"] == stack.emulator.uart_url
    assert config.validate(written)["product_key"] == stack.device["productKey"]
    procs = [stack.cloud.proc, stack.cloud.follower, stack.emulator.proc, stack.firmware.proc]
    assert all(p.pid for p in procs)
    stack.close()
    assert all(p.popen.poll() is not None for p in procs)
