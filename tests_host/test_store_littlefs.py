"""The persistent queue on a real littlefs (the VM's ``vfs.VfsLfs2``), power cut at every flash
operation of a workload (tools/bench/vm_store.py): after each cut the remounted store holds
every record accepted and not yet sent, in order, nothing invented."""

import json

from conftest import ROOT, run_micropython


def _run(mode, top):
    path = (ROOT / top / "lib",)
    proc = run_micropython(
        ROOT / "tools" / "bench" / "vm_store.py", mode, path=path, heapsize="8m", cwd=ROOT
    )
    prefix = "store %s " % mode
    lines = [line for line in proc.stdout.splitlines() if line.startswith(prefix)]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(lines[0][len(prefix) :])


def test_power_cut_at_every_flash_operation_loses_nothing_accepted():
    report = _run("powercut", ".")
    assert report["operations"] > 50  # appends, segment rolls and deletions, pointer writes
    assert report["cuts"] == report["operations"]
    assert report["failures"] == []
    assert 0 < report["max_duplicates"] <= 4  # at most ack_every sent again


def test_figures_run_on_the_mpy_build():
    from tools import mpy_build

    mpy_build.build()
    rows = _run("figures", "build")
    assert {(r["segment_bytes"], r["online"]) for r in rows} == {
        (1024, False),
        (1024, True),
        (4096, False),
        (4096, True),
    }
    for row in rows:
        assert row["erases_per_record"] > 0 and row["amplification"] > 1
