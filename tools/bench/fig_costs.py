"""Figure 8, downlink and publish cost: heap bytes and time per real ``+MSUB`` downlink and
per QoS0 publish through the library, by payload size, and per downlink routed by
``Thing.dispatch`` at 1, 10 and 50 subscriptions (tools/bench/vm_costs.py on the in-memory
UART shim; its inputs in a JSON file)."""

import json

from tools.bench import core
from tools.bench.context import BenchError, run_vm

PATH = ".frozen:build/lib:tests_host/portable"
SIZES = (16, 107, 256, 1024, 4096)
BYTEWISE_SIZES = (16, 256)
SUBSCRIPTIONS = (1, 10, 50)
SCALING_SIZE = 107
DOWNLINK_AIM = 64  # bytes beyond the payload per downlink
PUBLISH_AIM = 256  # bytes per QoS0 publish (of a 107 B property post)
COMMAND = "MICROPYPATH=%s .venv/bin/micropython -X heapsize=8m tools/bench/vm_costs.py PLAN" % PATH


def run(ctx):
    plan = {
        "sizes": list(SIZES),
        "bytewise_sizes": list(BYTEWISE_SIZES),
        "subscriptions": list(SUBSCRIPTIONS),
        "scaling_size": SCALING_SIZE,
        "counts": [20, 100],
        "bytewise_counts": [5, 25],
    }
    path = ctx.workdir / "costs.json"
    path.write_text(json.dumps(plan))
    out = run_vm(["-X", "heapsize=8m", "tools/bench/vm_costs.py", path], PATH, 300)
    found = core.parse_bench_line(out.stdout, "costs")
    if found is None:
        raise BenchError("vm_costs: %s" % (out.stderr or out.stdout).strip()[-300:])
    return found


def downlink_rows(found):
    rows = []
    cases = [(size, "") for size in SIZES] + [(size, " bytewise") for size in BYTEWISE_SIZES]
    for size, mode in cases:
        got, shim = found["downlink %d%s" % (size, mode)], found["harness %d%s" % (size, mode)]
        beyond = got["bytes"] - size - shim["bytes"]
        how = "one byte per read" if mode else "delivered alone"
        rows.append(
            core.aim_row(
                "+MSUB downlink of %d B, %s: bytes beyond payload and shim" % (size, how),
                beyond,
                "B",
                DOWNLINK_AIM,
                "aim %d B; total %d B, of which the test UART shim and the wait %d B"
                % (DOWNLINK_AIM, got["bytes"], shim["bytes"]),
                "%.0f us each" % got["us"],
            )
        )
    return rows


def publish_rows(found):
    rows = []
    for size in SIZES:
        got = found["publish %d" % size]
        rows.append(
            core.aim_row(
                "QoS0 publish of %d B: bytes allocated beyond the payload" % size,
                got["bytes"] - size,
                "B",
                PUBLISH_AIM,
                "aim %d B (set for a 107 B property post); total %d B"
                % (PUBLISH_AIM, got["bytes"]),
                "%.0f us each" % got["us"],
            )
        )
    return rows


def scaling_rows(found):
    one = found["subscriptions %d" % SUBSCRIPTIONS[0]]
    rows = []
    for count in SUBSCRIPTIONS:
        got = found["subscriptions %d" % count]
        rows.append(
            core.aim_row(
                "downlink of %d B through Thing.dispatch, %d subscription(s), one matching"
                % (SCALING_SIZE, count),
                got["bytes"],
                "B",
                one["bytes"],
                "aim: the cost at 1 subscription, %d B (0 B per subscription that does not "
                "match)" % one["bytes"],
                "%.0f us each" % got["us"],
            )
        )
    last = found["subscriptions %d" % SUBSCRIPTIONS[-1]]
    slope = (last["bytes"] - one["bytes"]) / (SUBSCRIPTIONS[-1] - SUBSCRIPTIONS[0])
    rows.append(core.aim_row("  per subscription that does not match", slope, "B", 0, "aim 0 B"))
    return rows


def measure(ctx, options):
    found = run(ctx)
    return downlink_rows(found) + publish_rows(found) + scaling_rows(found), found
