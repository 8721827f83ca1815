"""``make flash`` (tools.deploy) onto a virtual board: layout, incremental copies, refusals.

The end-to-end run of the real firmware (emulator + local cloud) plugs in here: write a config
whose ``uart.url`` points at the emulator, ``flash_to(board, ROOT, config)``, then wait on the
board's console log for the session to come online.
"""

import json
import shutil
import socket
import subprocess
import sys

import pytest

from tools import deploy
from tools.package import lib_files

from .conftest import ROOT, write_files

SECRET = "Vb0ardS3cretValue0123456789abcdef"
CONFIG = {"product_key": "a1VbOardKey", "device_name": "vboard-1", "device_secret": SECRET}
MAIN = """import app, boards, config, vbdemo
cfg = config.load("config.json")
print("MAIN", vbdemo.hello(), app.greet(cfg), boards.BOARD, vbdemo.__file__, app.__file__)
"""


# The real config.py checks that a config can go into the module's commands with the driver's
# own rules (air724.text, aliyun.sign): the modules it imports come with it.
CONFIG_LIB = tuple(
    "lib/%s.py" % name
    for name in (
        "air724/__init__",
        "air724/text",
        "aliyun/__init__",
        "aliyun/digest",
        "aliyun/sign",
        "atmodem/__init__",
        "atmodem/channel",
        "atmodem/counted",
        "atmodem/errors",
        "atmodem/pending",
        "atmodem/scanner",
    )
)
TREE_FILES = 8 + len(CONFIG_LIB)


@pytest.fixture
def tree(tmp_path):
    """A small project: lib/ and firmware/ (with the real config schema)."""
    root = tmp_path / "src"
    write_files(
        root,
        {
            "lib/vbdemo/__init__.py": "def hello():\n    return 'hi-from-lib'\n",
            "lib/vbtool.py": "NAME = 'tool'\n",
            "firmware/boot.py": 'print("BOOT flashed")\n',
            "firmware/main.py": MAIN,
            "firmware/app.py": "def greet(cfg):\n    return 'app-' + cfg['product_key']\n",
            "firmware/boards/__init__.py": "BOARD = 'vb'\n",
        },
    )
    for name in ("firmware/config.py",) + CONFIG_LIB:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    return root


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def flash_to(board, root, config):
    """Flash, returning (counts, printed lines); the secret is never among the lines."""
    lines = []
    counts = deploy.flash(board.port, config, root=root, log=lines.append)
    assert not any(SECRET in line for line in lines)
    return counts, lines


def files_on(board):
    return sorted(p.relative_to(board.folder).as_posix() for p in board.folder.rglob("*.*"))


def test_flash_copies_mpy_and_the_board_runs_main(vboard, tree, config):
    start = len(vboard.log_text())
    counts, lines = flash_to(vboard, tree, config)
    assert counts == {"files": TREE_FILES, "copied": TREE_FILES, "removed": 0}
    assert files_on(vboard) == sorted(
        [
            "app.mpy",
            "boards/__init__.mpy",
            "boot.py",
            "config.json",
            "config.mpy",
            "lib/vbdemo/__init__.mpy",
            "lib/vbtool.mpy",
            "main.py",
        ]
        + [name[:-3] + ".mpy" for name in CONFIG_LIB]
    )
    assert json.loads((vboard.folder / "config.json").read_text()) == CONFIG
    line = "flash: %d files on %s: %d copied, 0 unchanged" % (TREE_FILES, vboard.port, TREE_FILES)
    assert line in lines
    # The hard reset runs the deployed boot.py, then main.py on the .mpy modules.
    after = vboard.wait_log("BOOT flashed", start)
    vboard.wait_log("MAIN hi-from-lib app-a1VbOardKey vb /lib/vbdemo/__init__.mpy app.mpy", after)


def test_second_flash_copies_only_what_changed(vboard, tree, config):
    flash_to(vboard, tree, config)
    counts, lines = flash_to(vboard, tree, config)
    assert counts["copied"] == 0
    line = "flash: %d files on %s: 0 copied, %d unchanged" % (TREE_FILES, vboard.port, TREE_FILES)
    assert line in lines

    (tree / "firmware" / "app.py").write_text("def greet(cfg):\n    return 'changed'\n")
    write_files(vboard.folder, {"lib/vbtool.py": "NAME = 'stale source'\n"})  # would shadow
    start = len(vboard.log_text())
    counts, lines = flash_to(vboard, tree, config)
    assert counts == {"files": TREE_FILES, "copied": 1, "removed": 1}
    assert "  copy /app.mpy" in lines
    assert not (vboard.folder / "lib" / "vbtool.py").exists()
    vboard.wait_log("MAIN hi-from-lib changed vb", start)


def _flash_cli(*args):
    cmd = [sys.executable, "-m", "tools.deploy", "flash", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (None, "not found"),
        ("{not json", "(file): not valid JSON"),
        ({"device_secret": SECRET}, "product_key: required"),
        ({**CONFIG, "keepalive_s": 5}, "keepalive_s: must be 30..1200"),
        ({**CONFIG, "device_secret": SECRET + '"'}, "device_secret: must be printable"),
    ],
)
def test_flash_refuses_a_missing_or_invalid_config(tmp_path, content, field):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    # The port does not exist: the refusal comes before any board is touched.
    proc = _flash_cli("--port", str(tmp_path / "no-such-port"), "--config", str(path))
    assert proc.returncode == 2
    assert f"flash: refused: {path}" in proc.stderr and field in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_flash_the_project_itself(vboard, tmp_path, listener):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**CONFIG, "uart": {"url": listener}}))
    counts, _ = flash_to(vboard, ROOT, config)
    assert counts["files"] == counts["copied"]
    on_board = set(files_on(vboard))
    expected_lib = {"lib/" + name[:-3] + ".mpy" for name in lib_files()}
    assert expected_lib <= on_board
    assert not any(name.endswith(".py") for name in on_board - {"boot.py", "main.py"})
    firmware = {
        p.relative_to(ROOT / "firmware").as_posix() for p in (ROOT / "firmware").rglob("*.py")
    }
    for name in firmware:
        kept = name if name in ("boot.py", "main.py") else name[:-3] + ".mpy"
        assert kept in on_board, f"{name} not deployed"
    out = vboard.exec("import aliyun.sign, config; print(aliyun.sign.__file__, config.__file__)")
    assert out.split() == ["/lib/aliyun/sign.mpy", "config.mpy"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "uart.url: empty, but this board is the MicroPython unix port"),
        ("/dev/no-such-adapter", "uart.url: /dev/no-such-adapter does not exist on the board"),
        ("tcp://127.0.0.1", "uart.url: required on the unix port: tcp://HOST:PORT"),
    ],
)
def test_flash_refuses_a_config_that_cannot_work_on_the_board(vboard, tmp_path, url, reason):
    # The example config as a newcomer copies it: valid, but this board (the unix port) cannot
    # reach a module without uart.url. The refusal names the reason and copies nothing.
    example = json.loads((ROOT / "firmware" / "config.example.json").read_text())
    example["uart"]["url"] = url
    path = tmp_path / "config.json"
    path.write_text(json.dumps(example))
    proc = _flash_cli("--port", vboard.port, "--config", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"flash: refused: {path}: {reason}" in proc.stderr
    assert "copy" not in proc.stdout
    assert not (vboard.folder / "config.json").exists()


def test_flash_refuses_a_tcp_address_nobody_listens_on(vboard, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]  # closed below: nothing listens there any more
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, "uart": {"url": "tcp://127.0.0.1:%d" % port}}))
    proc = _flash_cli("--port", vboard.port, "--config", str(path))
    assert proc.returncode == 2
    assert "nothing accepts a connection at tcp://127.0.0.1:%d" % port in proc.stderr
