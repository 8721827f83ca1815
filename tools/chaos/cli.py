"""Command line of the chaos suite (see the package notes)."""

import argparse
import json
import random
import sys
import time

from tools.chaos import parts as simkit

from . import report
from .kinds import KINDS
from .run import ChaosRun

DEFAULT_DIALECT = ("mqttmsgset_boot=cache",)  # cache mode as the module's boot default (§7.2)
DRAIN_S = 180.0  # after the last fault: time for the outbox to empty
SOAK_S = 60.0  # after the faults, this long without any: heap samples of a boot that lived
# through faults


def run_chaos(
    workdir,
    faults,
    seed,
    kinds,
    seconds=None,
    period_ms=2000,
    dialect=None,
    out=print,
    soak_s=SOAK_S,
):
    """Run the suite; the verdict dict (``problems`` empty on success) plus the records."""
    rng = random.Random(seed)
    run = ChaosRun(
        workdir, seed, kinds, period_ms, DEFAULT_DIALECT if dialect is None else dialect, out
    )
    result = None
    try:
        if not run.kinds:
            raise simkit.SimError("no applicable kind: %s" % run.not_applicable)
        run.start()
        out(
            "online after %.1f s; seed %d; %d faults of %s"
            % (run.bring_up_s / 2, seed, faults, ", ".join(k.name for k in run.kinds))
        )
        began = time.monotonic()
        stranded = None
        for index in range(faults):
            if seconds is not None and time.monotonic() - began > seconds:
                break
            kind = run.kinds[rng.randrange(len(run.kinds))]
            try:
                record = run.one(index, kind, rng)
            except simkit.SimError as exc:
                stranded = str(exc)
                break
            out(_describe(record))
            time.sleep(rng.uniform(0.0, 3.0))  # a random point in the device's work cycle
        drained = False
        if stranded is None:
            try:
                if soak_s:  # an observation window, no faults: the heap of a long boot
                    run.watch(soak_s)
                drained = run.drain(DRAIN_S)
            except simkit.SimError as exc:
                stranded = str(exc)
        if run.firmware.proc is not None:
            run.firmware.stop()
        result = report.verdict(run, drained)
        if stranded:
            result["problems"].append("run stopped: " + stranded)
        result["not applicable"] = run.not_applicable
        result["records"] = run.records
        result["seed"] = seed
        result["notable"] = [n[2] for n in run.device.notable][-50:]
        result["table"] = report.table(result, seed, run.timeouts, run.bring_up_s)
        (run.workdir / "result.json").write_text(json.dumps(result, indent=1, default=str))
    finally:
        run.close()
    return result


def _describe(record):
    if record.get("recovered") is None:
        return "#%d %s: not applicable now (%s)" % (
            record["index"],
            record["kind"],
            record["error"],
        )
    what = "recovered in %.1f s" % record["seconds"] if record["recovered"] else "NOT RECOVERED"
    attempts = record.get("failed_attempts") or []
    extra = "; failed: " + "; ".join("%s: %s" % a for a in attempts[:3]) if attempts else ""
    if record.get("connect_wait_s"):
        extra += "; injected after %.0f s for a CONNECT slot" % record["connect_wait_s"]
    if record.get("slot_wait_s"):
        extra += "; the firmware waited %.0f s for a CONNECT slot" % record["slot_wait_s"]
    return "#%d %s %s (bound %.0f s)%s" % (
        record["index"],
        record["kind"],
        what,
        record["bound_s"],
        extra,
    )


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    p.add_argument("--faults", type=int, default=50, help="faults to inject (default 50)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument("--seconds", type=float, default=None, help="stop injecting after this")
    p.add_argument("--kinds", default="", help="comma-separated fault kinds (default: all)")
    p.add_argument("--period-ms", type=int, default=2000, help="numbered message period")
    p.add_argument(
        "--dialect",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="emulator dialect option (default: %s)" % " ".join(DEFAULT_DIALECT),
    )
    p.add_argument(
        "--soak", type=float, default=SOAK_S, help="seconds without faults at the end (60)"
    )
    p.add_argument("--workdir", default=str(simkit.ROOT / "build" / "chaos"))
    p.add_argument("--list", action="store_true", help="list the fault kinds and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, kind in KINDS.items():
            print(
                "%-16s detect=%-9s failures=%s step=%s"
                % (name, kind.detect, kind.failures, kind.step)
            )
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error("unknown kind(s) %s; one of %s" % (", ".join(unknown), ", ".join(KINDS)))
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    print(
        "chaos seed %d (replay: python -m tools.chaos --seed %d --faults %d%s)"
        % (seed, seed, args.faults, " --kinds " + ",".join(kinds) if args.kinds else ""),
        flush=True,
    )
    try:
        result = run_chaos(
            args.workdir,
            args.faults,
            seed,
            kinds,
            args.seconds,
            args.period_ms,
            args.dialect,
            out=lambda text: print(text, flush=True),
            soak_s=args.soak,
        )
    except simkit.SimError as exc:
        print("chaos: %s" % exc, file=sys.stderr)
        return 2
    print()
    print(result["table"])
    print("\nlogs and result.json in %s" % args.workdir)
    return 1 if result["problems"] else 0
