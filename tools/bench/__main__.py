"""``python -m tools.bench [FIGURE …]``: run the benchmark, print the table, write the JSON.

See tools/bench/__init__.py for what each figure measures.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tools.bench import FIGURES, core, runs

PY = ".venv/bin/python -m tools.bench"


def command(name):
    if name == "atmodem":
        return runs.ATMODEM_COMMAND
    if name == "heap":
        return "%s heap (one size: %s scenario --heapsize 128k --auth http)" % (PY, PY)
    return "%s %s" % (PY, name)


def measure(ctx, name, options, say):
    """``(rows, detail)`` of one figure."""
    if name == "heap":
        return runs.figure_heap(ctx, options.lo, options.hi, options.step)
    if name == "footprint":
        return runs.figure_footprint(ctx)
    if name == "throughput":
        return runs.figure_throughput(ctx)
    if name == "latency":
        return runs.figure_latency(ctx)
    if name == "atmodem":
        return runs.figure_atmodem(ctx)
    raise ValueError(name)


def run_all(ctx, names, options, say):
    figures = {}
    details = {}

    def record(name, rows, detail, error=""):
        figures[name] = {
            "id": FIGURES[name][0],
            "title": FIGURES[name][1],
            "command": command(name),
            "rows": rows,
            "error": error,
        }
        details[name] = detail

    if "heap" not in names:  # the heap figure picks the heap of the later runs itself
        ctx.heapsize = core.parse_size(options.heapsize)
    for name in ("footprint", "atmodem", "throughput", "heap", "latency"):
        if name not in names:
            continue
        say("bench: %s ..." % name)
        began = time.monotonic()
        try:
            rows, detail = measure(ctx, name, options, say)
            record(name, rows, detail)
        except Exception as exc:
            say(traceback.format_exc().rstrip())
            record(name, [], None, "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0]))
        say("bench: %s done in %.0f s" % (name, time.monotonic() - began))
    if ctx.heapsize is None:
        ctx.heapsize = core.parse_size(options.heapsize)
    # Boot to online and the idle window mostly wait: they run side by side.
    extra = {}
    if "idle" in names:
        extra["idle"] = lambda: runs.figure_idle(ctx, options.idle_window)
    if "boot" in names or extra:
        say("bench: %s ..." % " and ".join(n for n in ("boot", "idle") if n in names))
        began = time.monotonic()
        if "boot" in names:
            try:
                rows, detail, errors, others = runs.figure_boot(ctx, extra)
                record("boot", rows, detail, "; ".join("%s: %s" % e for e in errors.items()))
            except Exception as exc:
                say(traceback.format_exc().rstrip())
                record("boot", [], None, "%s: %s" % (type(exc).__name__, exc))
                others = {}
        else:
            others = runs.run_parallel(extra)
        if "idle" in names:
            res = others.get("idle")
            if isinstance(res, tuple):
                record("idle", res[0], res[1])
            else:
                record("idle", [], None, "%s: %s" % (type(res).__name__, res))
        say("bench: done in %.0f s" % (time.monotonic() - began))
    order = sorted(figures.values(), key=lambda f: f["id"])
    return order, details


def build_parser():
    p = argparse.ArgumentParser(prog=PY, description=__doc__.split("\n")[0])
    p.add_argument(
        "figures",
        nargs="*",
        metavar="FIGURE",
        help="any of: %s, or 'scenario' (one heap run, with --heapsize); default: all"
        % ", ".join(FIGURES),
    )
    p.add_argument("--json", default="build/bench.json", help="where to write the figures")
    p.add_argument(
        "--heapsize",
        default="128k",
        help="scenario: the heap to try; other runs: the heap when 'heap' is not run",
    )
    p.add_argument(
        "--auth",
        default="direct",
        choices=[auth for auth, _ in runs.LOGINS],
        help="scenario: how the firmware logs in",
    )
    p.add_argument("--lo", type=int, default=48, help="bisection: smallest heap, KiB")
    p.add_argument("--hi", type=int, default=256, help="bisection: largest heap, KiB")
    p.add_argument("--step", type=int, default=8, help="bisection: step, KiB")
    p.add_argument("--idle-window", type=float, default=60.0, help="idle: seconds measured")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    options = build_parser().parse_args(argv)
    names = options.figures or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES and n != "scenario"]
    if unknown:
        build_parser().error("unknown figure %s" % ", ".join(unknown))
    signal.signal(signal.SIGTERM, _terminate)
    os.chdir(runs.ROOT)

    def say(text):
        print(text, flush=True)

    workdir = tempfile.mkdtemp(prefix="air724-bench-")
    ctx = runs.Context(workdir, say)
    began = time.monotonic()
    try:
        if names == ["scenario"]:
            res = runs.scenario(ctx, core.parse_size(options.heapsize), auth=options.auth)
            say(json.dumps(res))
            return 0 if res["ok"] else 1
        runs.mpy_build.build()
        figures, details = run_all(ctx, names, options, say)
    except KeyboardInterrupt:
        say("bench: interrupted")
        return 130
    finally:
        ctx.close()
        if options.keep:
            say("bench: kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - began
    say("")
    for line in core.render(figures):
        say(line)
    say("")
    say("bench: %d figures in %.0f s; %s" % (len(figures), seconds, options.json))
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.system(),
        },
        "figures": figures,
        "details": details,
        "markdown": core.markdown(figures),
    }
    path = Path(options.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 1 if any(f.get("error") for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
