"""tools/layers.py: the import graph check on synthetic trees and on the project itself."""

import subprocess
import sys

from tools import layers


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


CLEAN = {
    "lib/atmodem/__init__.py": "from atmodem.errors import ATError\n",
    "lib/atmodem/errors.py": "class ATError(Exception):\n    pass\n",
    "lib/air724/__init__.py": "import asyncio\n\nfrom atmodem import errors\n",
    "lib/air724/mqtt.py": "from air724.text import quote\n",
    "lib/air724/text.py": "from atmodem.errors import ATError\n",
    "lib/aliyun/session.py": "def f():\n    from air724 import mqtt\n",
    "firmware/main.py": "import time\nfrom aliyun.session import f\nimport boards.unix\n",
    "firmware/boards/__init__.py": "",
    "firmware/boards/unix.py": "import config\n",
    "firmware/config.py": "",
}


def test_a_clean_tree_passes_and_is_printed_by_layer(tmp_path):
    write(tmp_path, CLEAN)
    report, problems = layers.check(tmp_path)
    assert problems == []
    assert report.index("1 air724") < report.index("    air724.mqtt -> air724.text")
    assert "    air724 -> atmodem.errors" in report  # "from atmodem import errors": the module
    assert "    aliyun.session -> air724.mqtt" in report  # a lazy import is an arrow too
    assert "    main -> aliyun.session, boards.unix" in report  # not time: outside the trees
    assert "    boards.unix -> config" in report  # boards are inside the firmware layer


def test_an_upward_arrow_fails(tmp_path):
    write(tmp_path, dict(CLEAN, **{"lib/atmodem/errors.py": "def f():\n    import air724\n"}))
    _, problems = layers.check(tmp_path)
    assert problems == [
        "upward: atmodem.errors (atmodem) imports air724 (air724)",
        "cycle: air724 <-> atmodem.errors",  # air724 imports it: the arrow closes a loop
    ]


def test_a_cycle_fails_even_through_a_package(tmp_path):
    write(tmp_path, dict(CLEAN, **{"lib/air724/text.py": "from air724 import mqtt\n"}))
    _, problems = layers.check(tmp_path)
    assert problems == ["cycle: air724.mqtt <-> air724.text"]
    # The package's facade creates a part lazily, the part takes a helper from the facade.
    facade = {"lib/air724/__init__.py": "def m():\n    from air724 import mqtt\n"}
    write(tmp_path, dict(CLEAN, **facade, **{"lib/air724/mqtt.py": "from air724 import x\n"}))
    _, problems = layers.check(tmp_path)
    assert problems == ["cycle: air724 <-> air724.mqtt"]


def test_long_modules_and_functions_and_unknown_packages_fail(tmp_path):
    body = "def f():\n" + "    x = 1\n" * 50
    write(tmp_path, dict(CLEAN, **{"lib/air724/text.py": body, "lib/extra/x.py": "\n" * 301}))
    _, problems = layers.check(tmp_path)
    assert problems == [
        "size: lib/air724/text.py:1 f() has 51 lines (> 50)",
        "layer: extra.x is in no layer (atmodem, air724, aliyun, firmware)",
        "size: lib/extra/x.py has 301 lines (> 300)",
    ]


def test_the_command_exits_non_zero_on_a_problem_and_zero_on_this_project(tmp_path):
    write(tmp_path, dict(CLEAN, **{"lib/atmodem/errors.py": "import aliyun.session\n"}))
    bad = subprocess.run(
        [sys.executable, "-m", "tools.layers", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "upward: atmodem.errors" in bad.stdout
    good = subprocess.run([sys.executable, "-m", "tools.layers"], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    assert good.stdout.splitlines()[-1] == "layers: ok"
