"""`make flash` onto the virtual board, then the board comes online on the local cloud; and
``make vboard ONLINE=1``, which starts the cloud and the emulator itself.

The whole chain a user runs with hardware: deploy over mpremote (``tools.deploy``, what
``make flash PORT=…`` calls), a soft reset, ``main.py`` importing the deployed ``.mpy`` files,
the emulated Air724UG on a TCP "UART" and the local cloud behind the real Aliyun host names.
"""

import json
import socket
import subprocess
from pathlib import Path

from e2e.harness import Stack

from tools import deploy
from tools.sim.board import FIRMWARE_HEAP

from .conftest import ROOT


def test_flashed_board_comes_online(start_vboard, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))
    board = start_vboard("--heapsize", FIRMWARE_HEAP)
    stack = Stack(tmp_path / "stack")
    try:
        stack.start_cloud()
        stack.start_emulator()
        config = tmp_path / "config.json"
        config.write_text(json.dumps(stack.config("direct", telemetry_interval_s=5)))
        start = len(board.log_text())
        counts = deploy.flash(board.port, config, root=ROOT, reset="soft", log=lambda s: None)
        assert counts["copied"] == counts["files"]
        end = board.wait_log("I state online", start, timeout=60)
        stack.wait_row(type="up", topic="/thing/event/property/post", status=200)
        out = board.log_text()[start:end]
        assert "firmware start (unix)" in out
        # The board ran the deployed build: modules from /lib as .mpy, never the sources.
        code = "import sys; print(sys.modules['aliyun.session'].__file__)"
        where = board.exec(code, resume=True)
        assert where.strip() == "/lib/aliyun/session.mpy"
    finally:
        stack.close()
    assert not stack.secrets_seen()


def test_vboard_online_flash_line_gives_a_device_online_whose_log_shows_on_the_console(
    start_vboard, tmp_path, monkeypatch
):
    """``make vboard ONLINE=1``, then the line it prints, as a newcomer runs them."""
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))
    board = start_vboard("--online", "--heapsize", FIRMWARE_HEAP)
    found = board.wait_err(r"^vboard: flash it:  (make flash PORT=(\S+) CONFIG=(\S+))$", 60)
    line, port, config_path = found.groups()
    assert port == board.port
    cfg = json.loads(Path(config_path).read_text())
    uart = cfg["uart"]["url"]
    assert uart.startswith("/dev/pts/")  # the emulator's pty, as /dev/ttyUSB0 for a real module
    assert f"an emulated Air724UG on {uart}, the board's UART" in board.err_text()
    start = len(board.log_text())
    # The printed line itself, through make (its install step taken as done).
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed-stamp", *line.split()[1:]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"flash: {config_path}: works on this board (linux)" in proc.stdout
    end = board.wait_log("I state online", start, timeout=60)
    assert "firmware start (unix)" in board.log_text()[start:end]
    # The cloud's message log on the vboard's stderr: the device's report arrived.
    board.wait_err(r"^cloud .*device→cloud .* 200 .*/thing/event/property/post ", 30)
    # What `make repl` shows: the console, opened after the device came online, shows its log
    # (telemetry every 10 s in the printed config).
    with board.console() as con:
        con.expect(b" I up properties: 200", timeout=30)
    secret = cfg["device_secret"]
    assert secret not in board.log_text() and secret not in board.err_text()


def test_the_console_opened_later_says_why_the_board_waits(start_vboard, tmp_path):
    # The newcomer's first try: the example config on the unix port. Flash now refuses it, so
    # it is put there by hand; the console opened afterwards still shows the reason soon.
    board = start_vboard()
    with socket.create_server(("127.0.0.1", 0)) as server:
        cfg = {**json.loads((ROOT / "firmware" / "config.example.json").read_text())}
        cfg["uart"] = {"url": "tcp://127.0.0.1:%d" % server.getsockname()[1]}
        config = tmp_path / "config.json"
        config.write_text(json.dumps(cfg))
        deploy.flash(board.port, config, root=ROOT, reset="none", log=lambda s: None)
    example = (ROOT / "firmware" / "config.example.json").read_text()
    (board.folder / "config.json").write_text(example)
    board.mpremote("reset")
    with board.console() as con:
        out = con.expect(b"E safe state: fix config.json, then reset the board (", timeout=30)
        out += con.expect(b")\r\n")
    assert b"config.json: uart.url: required on the unix port" in out


def test_vboard_online_keeps_its_device_from_run_to_run(start_vboard, tmp_path, monkeypatch):
    # A board flashed once keeps working after a restart: same product, device and secret.
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))
    pattern = r"^vboard: online mode: a local cloud \(product (\S+), device (\S+)\)"
    seen = []
    for _ in range(2):
        board = start_vboard("--online", name="board")
        seen.append(board.wait_err(pattern, 60).groups())
        config = json.loads((tmp_path / "board-online" / "config.json").read_text())
        seen[-1] += (config["device_secret"],)
        board.stop()
    assert seen[0] == seen[1]
