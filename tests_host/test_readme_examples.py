"""The README's examples run as written: every console block marked ``<!-- example -->``.

A ``$ command`` block runs each command in bash (``.venv/bin`` on the PATH, the repository as
the working folder, stderr with stdout) and compares what it prints with the lines under it. A
``>>>`` block runs each statement on the MicroPython VM with ``lib/`` on its path, as the REPL
would, and compares the printed results. In the expected text a line that is only ``…`` stands
for any lines and ``…`` inside a line for any text; everything else must match exactly.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MARKER = "<!-- example -->"
ANY = "…"


def examples(text: str) -> list:
    """(line number, block lines) of every console block right after the marker."""
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        assert lines[i + 1] == "```console", f"README line {i + 2}: the marker needs ```console"
        end = lines.index("```", i + 2)
        found.append((i + 3, lines[i + 2 : end]))
    return found


def parse_shell(block: list) -> list:
    """[(command, expected lines)] of a ``$`` block; ``\\`` continues a command."""
    steps = []
    for line in block:
        if line.startswith("$ "):
            steps.append([line[2:], []])
        elif steps and steps[-1][0].endswith("\\") and not steps[-1][1]:
            steps[-1][0] += "\n" + line
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return [(command, expected) for command, expected in steps]


def parse_repl(block: list) -> list:
    """[(source, expected lines)] of a ``>>>`` block; ``...`` continues a statement."""
    steps = []
    for line in block:
        if line.startswith(">>> "):
            steps.append([line[4:], []])
        elif line.startswith("... ") and steps and not steps[-1][1]:
            steps[-1][0] += "\n" + line[4:]
        else:
            assert steps, f"output before the first statement: {line!r}"
            steps[-1][1].append(line)
    return [(source, expected) for source, expected in steps]


def pattern(expected: list) -> "re.Pattern":
    parts = []
    for line in expected:
        if line == ANY:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split(ANY)) + r"\n")
    return re.compile("".join(parts))


def agrees(expected: list, actual: str) -> bool:
    if actual and not actual.endswith("\n"):
        actual += "\n"
    return pattern(expected).fullmatch(actual) is not None


def run_shell(steps: list) -> list:
    """Each command's output (one bash script, so ``$?`` refers to the command before)."""
    marks = ["@@readme-example-%d@@" % i for i in range(len(steps))]
    script = ["exec 2>&1"]
    for mark, (command, _) in zip(marks, steps):
        # The marker's echo keeps the status of the command before it, for a ``$?``.
        script += ["_status=$?; echo %s; (exit $_status)" % mark, command]
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    outputs = []
    for i, mark in enumerate(marks):
        start = out.index(mark + "\n") + len(mark) + 1
        end = out.index(marks[i + 1] + "\n") if i + 1 < len(marks) else len(out)
        outputs.append(out[start:end])
    return outputs


_REPL_DRIVER = """import json, sys
g = {"__name__": "__main__"}
for src in json.loads(open(sys.argv[1]).read()):
    print("@@readme-example@@")
    exec(compile(src, "<stdin>", "single"), g)
"""


def run_repl(steps: list, tmp_path: Path) -> list:
    """Each statement's printed output, on the MicroPython VM with ``lib/`` on its path."""
    source = tmp_path / "statements.json"
    source.write_text(json.dumps([src for src, _ in steps]))
    driver = tmp_path / "driver.py"
    driver.write_text(_REPL_DRIVER)
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(ROOT / "lib"))
    proc = subprocess.run(
        [str(BIN / "micropython"), str(driver), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split("@@readme-example@@\n")[1:]


BLOCKS = examples(README.read_text())


def test_the_readme_has_examples():
    kinds = {"repl" if block[0].startswith(">>> ") else "shell" for _, block in BLOCKS}
    assert kinds == {"repl", "shell"} and len(BLOCKS) >= 5


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_readme_example(line, block, tmp_path):
    if block[0].startswith(">>> "):
        steps = parse_repl(block)
        outputs = run_repl(steps, tmp_path)
        shown = ">>> "
    else:
        steps = parse_shell(block)
        outputs = run_shell(steps)
        shown = "$ "
    assert len(outputs) == len(steps)
    for (command, expected), actual in zip(steps, outputs):
        assert agrees(expected, actual), (
            f"README line {line}: {shown}{command}\nREADME shows:\n"
            + "\n".join(expected)
            + f"\nthe program prints:\n{actual}"
        )


def test_the_placeholders_match_only_what_they_stand_for():
    assert agrees(["a", ANY, "z"], "a\nb\nc\nz\n")
    assert agrees(["a", ANY, "z"], "a\nz\n")
    assert agrees(["x = …;"], "x = 42;\n")
    assert not agrees(["x = …;"], "x = 42\n")
    assert not agrees(["a", "z"], "a\nb\nz\n")
    assert not agrees(["a"], "a\nmore\n")


def test_the_figures_the_prose_repeats():
    from tools import deploy
    from tools.sim import board

    text = README.read_text()
    heap = int(board.FIRMWARE_HEAP.rstrip("k"))
    heaps = re.findall(r"(\d+) KB heap[ ,]+\(?see \[Memory\]", text)
    assert heaps and set(heaps) == {str(heap)}, heaps
    # make flash's file count: the plan (lib/, firmware/) plus config.json.
    files = len(deploy.plan(ROOT)) + 1
    counts = re.findall(r"flash: (\d+) files on \S+: (\d+) copied, (\d+) unchanged", text)
    assert counts
    for total, copied, unchanged in counts:
        assert int(total) == files and int(copied) + int(unchanged) == files
