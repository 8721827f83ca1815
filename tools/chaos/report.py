"""The chaos run's verdict: per fault kind (injected, recovered, median and max recovery time,
bound), the message accounting (accepted, delivered, lost, duplicated, drops by cause) and the
heap trend; ``problems`` lists every reason the run fails.

Messages are numbered per boot (``<boot>.<n>``) and the outbox sends them in order, so in one boot
every message before the last delivered one should have arrived: a missing one there is a gap,
explained only by an outbox overflow the device reported (``full``, or the session's ``outbox
full`` warning: a property post's put drops the oldest message too). Messages after the last
delivered one of a boot that was killed were in RAM when the power went: lost to the power cut,
a cause of its own. In the last boot the run drains the outbox first, so nothing may be missing
there. ``lost`` = gaps no reported overflow explains + what the last boot never delivered.
"""

import re
import statistics

# A bring-up step failing with one of these is a bug, not a fault of the module.
_PROGRAMMING_ERRORS = ("NameError", "AttributeError", "TypeError", "KeyError", "IndexError")
HEAP_LEAK_BYTES = 4096  # free heap shrinking by more than this over a boot counts as growth
_MIN_HEAP_SAMPLES = 8


def messages(device, cloud, last_boot, cutoff=None):
    late = set()  # accepted by the last boot after the drain began: in flight at the stop
    if cutoff is not None:
        late = {k for k, t in device.accepted.items() if k[0] == last_boot and t > cutoff}
    accepted = set(device.accepted) | set(cloud.delivered)
    delivered = set(cloud.delivered)
    full = {}
    for boot, _ in device.full:
        full[boot] = full.get(boot, 0) + 1
    # The session warns of every message a put pushed out, whoever put (a property post too):
    # that many of a boot's gaps are reported drops, even where the chaos line says no "full".
    for boot, count in getattr(device, "overflows", {}).items():
        full[boot] = max(full.get(boot, 0), count)
    lost = power_cut = phantom = overflow = 0
    for boot in sorted({k[0] for k in accepted}):
        mine = sorted(n for b, n in accepted if b == boot)
        got = [n for n in mine if (boot, n) in delivered]
        last = max(got) if got else 0
        gaps = [n for n in mine if n < last and (boot, n) not in delivered]
        tail = [n for n in mine if n > last]
        reported = full.get(boot, 0)
        overflow += reported
        explained = min(reported, len(gaps))
        lost += len(gaps) - explained
        if boot == last_boot:
            lost += sum(1 for n in tail if (boot, n) not in late)
            phantom += reported - explained
        else:
            power_cut += len(tail)
            phantom += max(0, reported - explained - len(tail))
    return {
        "accepted": len(accepted),
        "delivered": len(delivered),
        "lost": lost,
        "duplicated": sum(c - 1 for c in cloud.copies.values()),
        "drops": {
            "outbox overflow (reported)": overflow,
            "power cut / MCU reset (RAM outbox)": power_cut,
            "reported dropped, yet delivered": phantom,
        },
        "in flight at the stop": sum(1 for k in late if k not in delivered),
    }


def heap_trend(samples):
    """Per boot: first and last quarter's median free heap, from the samples taken while the
    device was healthy (a post answered: a stranded device's queues are no leak); the worst
    change (bytes). ``min`` is over every sample, in any state."""
    boots = {}
    for boot, when, free, healthy in samples:
        if healthy:
            boots.setdefault(boot, []).append((when, free))
    result = {
        "samples": sum(len(b) for b in boots.values()),
        "min": min((s[2] for s in samples), default=None),
    }
    worst = None
    for series in boots.values():
        if len(series) < _MIN_HEAP_SAMPLES:
            continue
        quarter = len(series) // 4
        first = statistics.median(f for _, f in series[:quarter])
        last = statistics.median(f for _, f in series[-quarter:])
        change = last - first
        if worst is None or change < worst["change"]:
            worst = {"first": int(first), "last": int(last), "change": int(change)}
    result["worst_boot"] = worst
    result["growing"] = worst is not None and worst["change"] < -HEAP_LEAK_BYTES
    return result


def per_kind(records):
    table = {}
    for r in records:
        row = table.setdefault(
            r["kind"],
            {"injected": 0, "recovered": 0, "n/a": 0, "times": [], "bound": 0.0, "attempts": 0},
        )
        if r.get("recovered") is None:
            row["n/a"] += 1
            continue
        row["injected"] += 1
        row["bound"] = max(row["bound"], r["bound_s"])
        row["attempts"] += len(r.get("failed_attempts") or ())
        row["allowed"] = r.get("allowed_failures", 1)
        if r["recovered"]:
            row["recovered"] += 1
            row["times"].append(r["seconds"])
    return table


def downlinks(records, downs, texts):
    """Downlinks the faults delivered: how many the application logged (``downs``: its "down"
    lines show the payload's start, where the tag is) and how many came back as its echo."""
    result = {}
    for r in records:
        if r.get("recovered") is None or not r.get("downlinks"):
            continue
        row = result.setdefault(
            r["kind"], {"sent": 0, "received": 0, "echoed": 0, "must": r["echo"] == "must"}
        )
        for tag in r["downlinks"]:
            row["sent"] += 1
            row["received"] += any(tag in line for line in downs)
            row["echoed"] += any(text.startswith(tag) for text in texts)
    return result


def device_drops(device):
    """The firmware's own loss warnings, counted by text (numbers left out), and its stats."""
    counts = {}
    for _, line in device.drops:
        text = re.sub(r"\d+", "N", re.sub(r"^\s*\d+\.\d+ \w ", "", line))
        counts[text] = counts.get(text, 0) + 1
    return {"warnings": counts, "stats (last boot)": device.stats}


def verdict(run, drained):
    msgs = messages(run.device, run.cloud_log, run._boot, run.cutoff)
    with run.cloud_log.lock:
        texts = set(run.cloud_log.texts)
    with run.device.lock:
        msgs["fault downlinks"] = downlinks(run.records, list(run.device.downs), texts)
    heap = heap_trend(run.device.heap)
    msgs["device"] = device_drops(run.device)
    kinds = per_kind(run.records)
    problems = []
    for name, row in sorted(kinds.items()):
        if row["recovered"] < row["injected"]:
            problems.append(
                "%s: %d of %d not recovered within %.0f s"
                % (name, row["injected"] - row["recovered"], row["injected"], row["bound"])
            )
        if row.get("allowed") == 0 and row["attempts"]:
            problems.append(
                "%s: %d failed bring-up attempt(s), none allowed" % (name, row["attempts"])
            )
    for name, row in sorted(msgs["fault downlinks"].items()):
        if row["must"] and row["received"] < row["sent"]:
            problems.append(
                "%s: %d of %d downlinks never reached the application"
                % (name, row["sent"] - row["received"], row["sent"])
            )
    bugs = [
        "%s #%d: %s failed: %s" % (r["kind"], r["index"], step, why)
        for r in run.records
        for step, why in r.get("failed_attempts") or ()
        if why.startswith(_PROGRAMMING_ERRORS)
    ]
    problems += ["programming error in a bring-up step: " + b for b in bugs[:5]]
    if msgs["lost"]:
        problems.append("%d message(s) lost within the outbox's capacity" % msgs["lost"])
    if not drained:
        problems.append("the outbox did not drain at the end")
    if heap["worst_boot"] is None:
        problems.append(
            "heap trend not measurable: no boot with %d healthy samples" % _MIN_HEAP_SAMPLES
        )
    if heap["growing"]:
        problems.append("free heap shrinks over a boot: %s" % heap["worst_boot"])
    if run.rescues:
        problems.append("%d power cut(s) needed to unstrand the device" % run.rescues)
    return {"kinds": kinds, "messages": msgs, "heap": heap, "problems": problems}


def table(result, seed, timeouts, bring_up_s):
    lines = ["seed %d" % seed, ""]
    head = "%-16s %8s %9s %5s %9s %8s %8s %9s" % (
        "fault",
        "injected",
        "recovered",
        "n/a",
        "median s",
        "max s",
        "bound s",
        "attempts",
    )
    lines += [head, "-" * len(head)]
    for name, row in sorted(result["kinds"].items()):
        times = row["times"]
        lines.append(
            "%-16s %8d %9d %5d %9s %8s %8.0f %9d"
            % (
                name,
                row["injected"],
                row["recovered"],
                row["n/a"],
                "%.1f" % statistics.median(times) if times else "-",
                "%.1f" % max(times) if times else "-",
                row["bound"],
                row["attempts"],
            )
        )
    for name, why in sorted(result.get("not applicable", {}).items()):
        lines.append("%-16s not applicable: %s" % (name, why))
    m = result["messages"]
    lines += [
        "",
        "messages: %d accepted, %d delivered, %d lost, %d duplicated, %d in flight at the stop"
        % (m["accepted"], m["delivered"], m["lost"], m["duplicated"], m["in flight at the stop"]),
        "drops by cause: " + ", ".join("%s %d" % kv for kv in m["drops"].items()),
    ]
    for text, count in sorted(m["device"]["warnings"].items()):
        lines.append("device warning x%d: %s" % (count, text))
    stats = m["device"]["stats (last boot)"]
    if stats:
        lines.append(
            "device stats (last boot): dropped %s, echo_dropped %s, reconnects %s"
            % (stats.get("dropped"), stats.get("echo_dropped"), stats.get("reconnects"))
        )
    for name, row in sorted(m["fault downlinks"].items()):
        lines.append(
            "downlinks delivered by %s: %d, received %d, echoed %d"
            % (name, row["sent"], row["received"], row["echoed"])
        )
    h = result["heap"]
    worst = h["worst_boot"]
    lines.append(
        "heap: %d healthy samples, min free %s B (any state); worst boot: %s"
        % (
            h["samples"],
            h["min"],
            "first quarter %(first)d B, last quarter %(last)d B, change %(change)+d B" % worst
            if worst
            else "too few samples",
        )
    )
    lines.append(
        "bounds from: backoff %d ms doubling to %d ms, sync %d ms, connect %d ms, SIM %d ms, "
        "register %d ms, health poll %d ms, keepalive x1.5, bring-up %.0f s (2x the first)"
        % (
            timeouts["base_ms"],
            timeouts["cap_ms"],
            timeouts["sync_ms"],
            timeouts["connect_ms"],
            timeouts["sim_ms"],
            timeouts["register_ms"],
            timeouts["health_ms"],
            bring_up_s,
        )
    )
    lines.append("")
    lines += ["FAIL: " + p for p in result["problems"]] or ["PASS"]
    return "\n".join(lines)
