"""``python -m tools.bench [FIGURE …]``: run the benchmark, print the table, write the JSON.

The figures and what each measures: ``tools.bench.FIGURES``.
"""

import argparse
import importlib
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

from tools import mpy_build
from tools.bench import FIGURES, PY, core
from tools.bench.context import ROOT, Context, run_parallel
from tools.bench.scenario import LOGINS, scenario


def command(name):
    return FIGURES[name].command or "%s %s" % (PY, name)


def measure(ctx, name, options):
    """``(rows, detail)`` of one figure, from the module the table names."""
    module = importlib.import_module("tools.bench." + FIGURES[name].module)
    return module.measure(ctx, options)


def entry(name, rows, error=""):
    fig = FIGURES[name]
    return {
        "id": fig.number,
        "title": fig.title,
        "command": command(name),
        "rows": rows,
        "error": error,
    }


def failure(exc):
    return "%s: %s" % (type(exc).__name__, (str(exc).splitlines() or [""])[0])


def run_all(ctx, names, options, say):
    """Every figure of ``names`` by stage: one after the other, the last stage side by side."""
    figures, details = {}, {}
    ctx.heapsize = core.parse_size(options.heapsize)  # figure 1 sets it when it runs
    stages = sorted({FIGURES[n].stage for n in names})
    for stage in stages:
        chosen = [n for n in FIGURES if n in names and FIGURES[n].stage == stage]
        say("bench: %s ..." % ", ".join(chosen))
        began = time.monotonic()
        if stage == max(FIGURES[n].stage for n in FIGURES):
            jobs = {n: (lambda n=n: measure(ctx, n, options)) for n in chosen}
            results = run_parallel(jobs)
        else:
            results = {}
            for name in chosen:
                try:
                    results[name] = measure(ctx, name, options)
                except Exception as exc:
                    results[name] = exc
        for name, result in results.items():
            if isinstance(result, Exception):
                say("".join(traceback.format_exception(result)).rstrip())
                figures[name], details[name] = entry(name, [], failure(result)), None
            else:
                figures[name], details[name] = entry(name, result[0]), result[1]
        say("bench: %s done in %.0f s" % (", ".join(chosen), time.monotonic() - began))
    return sorted(figures.values(), key=lambda f: f["id"]), details


def build_parser():
    figures = "; ".join("%s: %s" % (name, fig.description) for name, fig in FIGURES.items())
    p = argparse.ArgumentParser(
        prog=PY, description=__doc__.split("\n")[0], epilog="figures: " + figures
    )
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
        choices=[auth for auth, _ in LOGINS],
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


def report(figures, details, seconds):
    return {
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


def run(ctx, names, options, say):
    """The figures and their details, or the exit status of a single scenario run."""
    if names == ["scenario"]:
        res = scenario(ctx, core.parse_size(options.heapsize), auth=options.auth)
        say(json.dumps(res))
        return 0 if res["ok"] else 1
    mpy_build.build()
    return run_all(ctx, names, options, say)


def main(argv=None):
    options = build_parser().parse_args(argv)
    names = options.figures or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES and n != "scenario"]
    if unknown:
        build_parser().error("unknown figure %s" % ", ".join(unknown))
    signal.signal(signal.SIGTERM, _terminate)
    os.chdir(ROOT)

    def say(text):
        print(text, flush=True)

    workdir = tempfile.mkdtemp(prefix="air724-bench-")
    ctx = Context(workdir, say)
    began = time.monotonic()
    try:
        result = run(ctx, names, options, say)
    except KeyboardInterrupt:
        say("bench: interrupted")
        return 130
    finally:
        ctx.close()
        if options.keep:
            say("bench: kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if isinstance(result, int):
        return result
    figures, details = result
    seconds = time.monotonic() - began
    say("")
    for line in core.render(figures):
        say(line)
    say("")
    say("bench: %d figures in %.0f s; %s" % (len(figures), seconds, options.json))
    path = Path(options.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report(figures, details, seconds), indent=1, default=str) + "\n")
    return 1 if any(f.get("error") for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
