"""The two-runtime mechanism reports failures honestly (a broken test must not pass on the VM)."""

from conftest import PORTABLE, _parse_report, run_micropython


def test_vm_reports_pass_fail_and_crash(tmp_path):
    (tmp_path / "ptest_probe.py").write_text(
        "import aliyun\n"
        "def test_ok():\n    assert True\n"
        "def test_bad():\n    assert 1 == 2, 'one is not two'\n"
        "async def test_async_bad():\n    raise ValueError('inside coroutine')\n"
    )
    lib = PORTABLE.parent.parent / "lib"
    proc = run_micropython(PORTABLE / "prun.py", "ptest_probe", path=(lib, tmp_path, PORTABLE))
    report = _parse_report(proc)
    assert report["done"]
    assert report["results"]["test_ok"] is None
    assert "one is not two" in report["results"]["test_bad"]
    assert "inside coroutine" in report["results"]["test_async_bad"]
    assert report["modules"]["aliyun"].endswith("aliyun/__init__.py")


def test_vm_crash_is_not_done(tmp_path):
    (tmp_path / "ptest_crash.py").write_text("import does_not_exist\n")
    report = _parse_report(run_micropython(PORTABLE / "prun.py", "ptest_crash", path=(tmp_path,)))
    assert not report["done"] and report["results"] == {}
    assert report["proc"].returncode != 0
