"""The device's side of a run: a board folder laid out like the device (main.py and boot.py
as source, everything else ``.mpy`` or ``.py``, lib/ beside them, a generated config.json) and
firmware/main.py on the ``micropython`` VM (``-X heapsize``) in it.
"""

import json
import os
import shutil
import signal
from pathlib import Path

from tools.sim.proc import BIN, CTRL_C, ROOT, Proc, SimError

# MicroPython heap of the firmware under make sim, the end-to-end tests and the virtual board, on
# this 64-bit port (see README "Memory": the brief's budget is 128k, today's firmware needs more).
FIRMWARE_HEAP = "160k"
# The opt-in features, measured by their end-to-end tests: the flash store's catch-up batches and
# an update's download and install need more than FIRMWARE_HEAP leaves (README "Memory").
STORE_HEAP = "192k"
OTA_HEAP = "192k"


def layout_board(board_dir, mpy=True):
    """Lay out the device's filesystem in ``board_dir``: main.py and boot.py as source, the
    other firmware modules and lib/ as .mpy (``mpy``) or .py. Returns ``board_dir``."""
    board = Path(board_dir)
    if board.exists():
        shutil.rmtree(board)
    board.mkdir(parents=True)
    if mpy:
        from tools import mpy_build

        mpy_build.build()
        base, ext = ROOT / "build", "*.mpy"
    else:
        base, ext = ROOT, "*.py"
    for src in sorted((base / "firmware").rglob(ext)):
        rel = src.relative_to(base / "firmware")
        if rel.stem in ("main", "boot") and rel.parent == Path("."):
            continue
        _copy(src, board / rel)
    for name in ("main.py", "boot.py"):
        _copy(ROOT / "firmware" / name, board / name)
    for src in sorted((base / "lib").rglob(ext)):
        rel = src.relative_to(base / "lib")
        if rel.parts[0].endswith(".egg-info"):
            continue
        _copy(src, board / "lib" / rel)
    return board


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


class Firmware:
    """firmware/main.py on the micropython VM in a board folder with ``config``."""

    def __init__(self, board_dir, config, heapsize=FIRMWARE_HEAP, mpy=True, on_line=None):
        self.board_dir = Path(board_dir)
        self.config = config
        self.heapsize = heapsize
        self.mpy = mpy
        self.on_line = on_line
        self.proc = None

    def prepare(self):
        layout_board(self.board_dir, self.mpy)
        self.write_config(self.config)
        return self

    def write_config(self, config):
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        (self.board_dir / "config.json").write_text(text)

    def start(self):
        return self.launch(["main.py"])

    def launch(self, args):
        """Run the VM in the board folder with ``args``, the board's paths and a console that
        ``stop`` can send Ctrl-C to (FIRMWARE_STOP=stdin, see firmware/boards/unix.py)."""
        path = [".frozen", self.board_dir / "lib", self.board_dir]
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(map(str, path)), FIRMWARE_STOP="stdin")
        argv = [BIN / "micropython", "-X", "heapsize=" + self.heapsize] + args
        self.proc = Proc("device", argv, self.board_dir, env, self.on_line, stdin=True)
        return self.proc.start()

    def wait_for(self, pattern, timeout=60, since=0):
        return self.proc.wait_for(pattern, timeout, since=since)

    def stats(self):
        """The ``stats {json}`` line main.py logs when stopped, or None."""
        found = self.proc.find(r" I stats (\{.*\})$") if self.proc else []
        return json.loads(found[-1].group(1)) if found else None

    def stop(self, grace=10.0):
        """Ctrl-C on the console (the stats line); SIGINT, then kill, if it still runs after
        ``grace`` s each; the exit status."""
        if self.proc is None:
            return None
        if self.proc.running() and self.proc.send(CTRL_C):
            try:
                self.proc.wait_exit(grace)
            except SimError:
                pass  # SIGINT next
        return self.proc.stop(signal.SIGINT, grace)

    close = stop
