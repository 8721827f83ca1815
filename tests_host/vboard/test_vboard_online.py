"""`make flash` onto the virtual board, then the board comes online on the local cloud.

The whole chain a user runs with hardware: deploy over mpremote (``tools.deploy``, what
``make flash PORT=…`` calls), a soft reset, ``main.py`` importing the deployed ``.mpy`` files,
the emulated Air724UG on a TCP "UART" and the local cloud behind the real Aliyun host names.
"""

import json

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
