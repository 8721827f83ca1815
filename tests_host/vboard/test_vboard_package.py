"""MicroPython packaging of lib/: package.json for mip, manifest.py for freezing."""

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from tools import package

from .conftest import ROOT

STALE = "run `.venv/bin/python -m tools.package` and commit package.json and manifest.py"


def test_committed_files_match_lib():
    stale = package.stale()
    assert not stale, f"{', '.join(stale)} out of date with lib/: {STALE}"


def test_package_json_maps_every_lib_file():
    meta = json.loads((ROOT / "package.json").read_text())
    assert meta["version"] == package.version()
    targets = [target for target, _ in meta["urls"]]
    assert targets == package.lib_files()
    for target, source in meta["urls"]:
        assert source == "lib/" + target and (ROOT / source).is_file()


def _manifest_files(manifest: Path) -> tuple[set, dict]:
    """Run manifest.py with MicroPython's manifest functions; the frozen files by target path."""
    frozen, meta = {}, {}

    def package_(package_path, files=None, base_path=".", opt=None):
        assert files is not None, "name every file of the package"
        for rel in files:
            frozen[f"{package_path}/{rel}"] = manifest.parent / base_path / package_path / rel

    def module(module_path, base_path=".", opt=None):
        frozen[module_path] = manifest.parent / base_path / module_path

    def metadata(**kwargs):
        meta.update(kwargs)

    api = {"package": package_, "module": module, "metadata": metadata}
    exec(compile(manifest.read_text(), str(manifest), "exec"), api)
    return frozen, meta


def test_manifest_freezes_exactly_lib(tmp_path):
    files, meta = _manifest_files(ROOT / "manifest.py")
    assert sorted(files) == package.lib_files()
    assert all(path.is_file() for path in files.values())
    assert meta["version"] == package.version()
    # A module at the top of lib/ is frozen with module(), a package with package().
    (tmp_path / "lib" / "pkg").mkdir(parents=True)
    for name in ("lib/pkg/__init__.py", "lib/pkg/a.py", "lib/solo.py"):
        (tmp_path / name).write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "manifest.py").write_text(package.manifest_py(tmp_path))
    files, _ = _manifest_files(tmp_path / "manifest.py")
    assert sorted(files) == ["pkg/__init__.py", "pkg/a.py", "solo.py"]


@pytest.fixture
def served(tmp_path):
    """package.json (as tools.package makes it now) and lib/ over HTTP on 127.0.0.1."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "package.json").write_text(package.package_json())
    for name in package.lib_files():
        (site / "lib" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "lib" / name, site / "lib" / name)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_mip_install_puts_lib_where_import_finds_it(vboard, served):
    out = vboard.mpremote("mip", "install", served + "/package.json", timeout=60).stdout
    assert "Installing http://127.0.0.1" in out and "to /lib" in out
    installed = sorted(
        p.relative_to(vboard.folder / "lib").as_posix()
        for p in (vboard.folder / "lib").rglob("*.py")
    )
    assert installed == package.lib_files()
    out = vboard.exec("import aliyun.sign as s; print(s.__file__, s.sign.__name__)")
    assert out.split() == ["/lib/aliyun/sign.py", "sign"]
