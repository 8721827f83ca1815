"""Figure 9, the cost of an update over the air (OTA): ``figure_ota()`` -> ``(rows, detail)``.

One update 1.0.0 -> 1.1.0 of a full package (every file sent, so the download is long enough
to time) on the emulator paced at 115200 baud, with the firmware (.mpy build, at ``OTA_HEAP``)
on the VM and the local cloud:

- bytes over the air (the HTTP bodies the module received) against the package size;
- UART bytes to the host during the download against the body bytes (the AT framing:
  ``+HTTPREAD`` headers, the per-range commands, the MQTT progress traffic);
- the download's time (first range request to the verified package, from the firmware's own
  log) against the UART bound (the bytes to the host at 10 bits per byte);
- the live heap during the download: the heap size less the smallest free heap after the
  garbage collection the worker runs before each chunk (a lower bound of the peak);
- the delta package's size (only the changed app.mpy sent) against the full one.

``python -m tools.bench ota`` measures it with the other figures; ``python -m
tools.bench.fig_ota`` prints its rows alone as JSON.
"""

import json
import re
import sys
import tempfile
from pathlib import Path

from tools.bench import core
from tools.cloud.ota import build_package
from tools.otademo import make_version
from tools.sim.board import OTA_HEAP
from tools.sim.proc import ROOT

BAUD = 115200
HEAP = OTA_HEAP  # as the OTA end-to-end tests (tools/sim/board.py, README "Updating devices")
WAIT = 180
_TIME = re.compile(r"^\s*(\d+\.\d+) ")


def _when(stack_lines, pattern):
    """Firmware log time (s since its start) of the first line matching ``pattern``."""
    regex = re.compile(pattern)
    for source, _, text in stack_lines:
        if source == "device" and regex.search(text):
            return float(_TIME.match(text).group(1))
    return None


def figure_ota(workdir=None):
    """Run the update once; ``(rows, detail)`` as the other figures of ``make bench``."""
    sys.path.insert(0, str(ROOT / "tests_host"))
    from e2e.harness import Stack  # the end-to-end harness: same plumbing, same waits

    work = Path(workdir or tempfile.mkdtemp(prefix="bench-ota-"))
    work.mkdir(parents=True, exist_ok=True)
    stack = Stack(work)
    try:
        stack.start_cloud()
        stack.start_emulator(args=("--baud", str(BAUD)))
        config = stack.config(ota=True, ota_trial_s=10, log_level="debug")
        stack.start_firmware(config, heapsize=HEAP)
        stack.wait_device(r" I state online", WAIT)
        pk, dn = stack.product["productKey"], stack.device["deviceName"]
        build = make_version(work / "build-1.1.0", "1.1.0")
        full = build_package(build, "1.1.0", work / "full.bin")
        delta = build_package(build, "1.1.0", work / "delta.bin", ROOT / "build")
        stack.cloud.cli("ota", "add", pk, str(work / "full.bin"), "--version", "1.1.0")
        before = stack.emulator.ctl("status")["state"]
        stack.cloud.cli("ota", "deploy", pk, "1.1.0", "--device", dn)
        stack.wait_device(r" I ota: package verified", WAIT)
        after = stack.emulator.ctl("status")["state"]
        stack.wait_device(r" I ota: \d+ files installed", WAIT)
        start = _when(stack.lines, r" I ota: download 1\.1\.0 from byte 0 ")
        end = _when(stack.lines, r" I ota: package verified")
        frees = [int(m.group(1)) for m in stack.firmware.proc.find(r"heap free (\d+)$")]
    finally:
        stack.close()
    body = after["http_served"] - before["http_served"]
    to_host = after["uart"]["to_host"] - before["uart"]["to_host"]
    from_host = after["uart"]["from_host"] - before["uart"]["from_host"]
    seconds = end - start if start is not None and end is not None else None
    bound = to_host * 10 / BAUD
    heap = core.parse_size(HEAP)
    peak = heap - min(frees) if frees else None
    rows = [
        core.row("package (full: every file)", full["size"], "B"),
        core.row("bytes over the air (HTTP bodies)", body, "B", "package", body / full["size"]),
        core.row("UART bytes to the host", to_host, "B", "HTTP bodies", to_host / body),
        core.row("UART bytes from the host", from_host, "B"),
        core.row(
            "download time at %d baud" % BAUD,
            seconds,
            "s",
            "UART bound %.2f s" % bound,
            seconds / bound if seconds else None,
        ),
        core.row(
            "live heap during the download",
            peak,
            "B",
            "heap %s" % HEAP,
            peak / heap if peak else None,
            note="heap less the smallest free heap after each chunk's collection",
        ),
        core.row(
            "package (delta: changed files)",
            delta["size"],
            "B",
            "full package",
            delta["size"] / full["size"],
            note="%d of %d files sent" % (delta["changed"], len(delta["files"])),
        ),
    ]
    detail = {"full": full["size"], "delta": delta["size"], "frees": frees, "body": body}
    return rows, detail


def measure(ctx, options):
    return figure_ota(ctx.workdir / "ota")


def main():
    rows, detail = figure_ota()
    print(json.dumps({"rows": rows, "detail": detail}, indent=2))


if __name__ == "__main__":
    main()
