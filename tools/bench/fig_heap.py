"""Figure 1, heap: the smallest ``-X heapsize`` passing the scenario for each login, by
bisection, and the peaks of ``gc.mem_alloc()`` during it (raw, and live after a collection)."""

from tools.bench import core
from tools.bench.scenario import LOGINS, scenario, scenario_again
from tools.sim.board import FIRMWARE_HEAP

BUDGET_KIB = 128  # the brief's heap budget
LIVE_AIM_KIB = 88  # the aim for the peak live heap of each login
# The live heap (after a collection) is sampled often enough to catch the login's peak, which
# lasts only as long as the HTTPS request or the signing.
LIVE_SAMPLE_MS = 5


def smallest_heap(ctx, steps, runs, auth):
    """The smallest of ``steps`` (KiB) at which the scenario passes with ``auth``, or None;
    every run is appended to ``runs``."""

    def passes(size_kib):
        # A failure that is not the heap's (no MemoryError, no crash: a link the broker
        # closed on its own, a timeout) gets one more run before it counts.
        for _ in range(2):
            res = scenario(ctx, size_kib * 1024, auth=auth)
            res["auth"] = auth
            runs.append(res)
            outcome = "pass" if res["ok"] else "FAIL: " + res["reason"]
            ctx.say("  %s heap %4dk: %s (%.1f s)" % (auth, size_kib, outcome, res["seconds"]))
            if res["ok"] or res.get("memory"):
                break
        return res["ok"]

    smallest, _ = core.bisect_smallest(steps, passes)
    # Near the threshold a run may pass by luck: the smallest must pass twice, else go up.
    while smallest is not None and not passes(smallest):
        higher = [s for s in steps if s > smallest]
        smallest = higher[0] if higher else None
    return smallest


def peak_heap_kib(found, hi_kib, step_kib):
    """The heap of the peak runs and the later figures: 128k while every login passes there;
    else the heap the project runs the firmware with (FIRMWARE_HEAP) and at least one step
    above the largest smallest heap (a smallest heap itself is marginal)."""
    largest = None if None in found.values() else max(found.values())
    if largest is not None and largest <= BUDGET_KIB:
        return BUDGET_KIB
    operating = core.parse_size(FIRMWARE_HEAP) // 1024
    return max((largest or hi_kib) + step_kib, operating)


def _outcome(res):
    return "scenario passed" if res["ok"] else "scenario FAILED: " + res["reason"]


def _peak(res, key):
    return (res["stats"] or {}).get(key)


def smallest_rows(found, runs, lo_kib, hi_kib, step_kib):
    rows = []
    for auth, words in LOGINS:
        smallest = found[auth]
        tried = len([r for r in runs if r["auth"] == auth])
        note = "bisection %d..%dk, %dk steps, %d runs" % (lo_kib, hi_kib, step_kib, tried)
        if smallest is None:
            note += "; none passes at %dk" % hi_kib
        rows.append(
            core.aim_row(
                "smallest -X heapsize passing the scenario, " + words,
                smallest,
                "KiB",
                BUDGET_KIB,
                "the %d KiB budget" % BUDGET_KIB,
                note,
            )
        )
    return rows


def peak_rows(raw, live, peak_kib):
    value = _peak(raw, "bench_peak")
    rows = [
        core.row(
            "peak gc.mem_alloc(), sampled every 20 ms, direct",
            value,
            "B",
            "the %dk heap (the collector runs when it is full)" % peak_kib,
            None if value is None else value / (peak_kib * 1024),
            _outcome(raw),
        )
    ]
    for auth, words in LOGINS:
        rows.append(
            core.aim_row(
                "peak live heap (mem_alloc after gc.collect(), every %d ms), %s"
                % (LIVE_SAMPLE_MS, words),
                _peak(live[auth], "bench_live_peak"),
                "B",
                LIVE_AIM_KIB * 1024,
                "aim %d KiB (run with a %dk heap)" % (LIVE_AIM_KIB, peak_kib),
                _outcome(live[auth]),
            )
        )
    return rows


def measure(ctx, options):
    lo_kib, hi_kib, step_kib = options.lo, options.hi, options.step
    steps = core.heap_steps(lo_kib, hi_kib, step_kib)
    runs = []
    found = {auth: smallest_heap(ctx, steps, runs, auth) for auth, _ in LOGINS}
    peak_kib = peak_heap_kib(found, hi_kib, step_kib)
    ctx.heapsize = peak_kib * 1024
    raw = scenario_again(ctx, ctx.heapsize, sample_ms=20, collect=0)
    live = {
        auth: scenario_again(ctx, ctx.heapsize, sample_ms=LIVE_SAMPLE_MS, collect=1, auth=auth)
        for auth, _ in LOGINS
    }
    rows = smallest_rows(found, runs, lo_kib, hi_kib, step_kib) + peak_rows(raw, live, peak_kib)
    detail = {"smallest": found, "runs": runs, "peak_run": raw, "live_runs": live}
    return rows, detail
