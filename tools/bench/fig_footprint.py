"""Figure 2, footprint: ``.mpy`` bytes of lib/ and firmware/, and the heap each module set
takes once imported (tools/bench/vm_imports.py)."""

from tools import mpy_build
from tools.bench import core
from tools.bench.context import HERE, MPY_PATH, ROOT, run_vm, vm_failed

BUDGET = 128 * 1024
IMPORT_SETS = (
    ("firmware", "firmware/ modules (logger, boards, app)"),
    ("online", "library kept while online (session, alink, thing, air724, mqtt, atmodem)"),
    ("bring_up", "air724.module (bring-up checks)"),
    ("login", "login set (login, sign, digest, auth, dynreg, http, bearer), unloaded later"),
)


def size_rows(detail):
    rows = []
    for top in ("lib", "firmware"):
        mpys = sorted((ROOT / "build" / top).rglob("*.mpy"))
        size = sum(p.stat().st_size for p in mpys)
        source = sum(
            (ROOT / top / p.relative_to(ROOT / "build" / top)).with_suffix(".py").stat().st_size
            for p in mpys
        )
        detail[top] = {"mpy_bytes": size, "files": len(mpys), "source_bytes": source}
        rows.append(
            core.aim_row(
                "%s/ as .mpy (%d files)" % (top, len(mpys)),
                size,
                "B",
                source,
                "its .py sources (%s B)" % core.fmt_value(source),
            )
        )
    whole = detail["lib"]["mpy_bytes"]
    for package in sorted(p.name for p in (ROOT / "build" / "lib").iterdir() if p.is_dir()):
        size = sum(p.stat().st_size for p in (ROOT / "build" / "lib" / package).rglob("*.mpy"))
        detail["lib/" + package] = size
        rows.append(core.aim_row("  lib/%s/" % package, size, "B", whole, "its share of lib/"))
    return rows


def import_rows(detail):
    """The same code in RAM: what importing it from .mpy takes of the heap (a board with lib/
    frozen keeps the bytecode in flash)."""
    out = run_vm(["-X", "heapsize=512k", HERE / "vm_imports.py"], MPY_PATH + ":build/firmware", 60)
    heap = core.parse_bench_line(out.stdout, "imports")
    if heap is None:
        raise vm_failed("vm_imports", out)
    detail["import_heap"] = heap
    return [
        core.aim_row(
            "heap taken by importing the " + what,
            heap[key],
            "B",
            BUDGET,
            "the 128 KiB budget",
            "from .mpy, after gc.collect()" if key == "firmware" else "",
        )
        for key, what in IMPORT_SETS
    ]


def measure(ctx, options):
    mpy_build.build()
    detail = {}
    rows = size_rows(detail) + import_rows(detail)
    return rows, detail
