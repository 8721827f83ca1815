"""The pure parts of the benchmark: bisection, line-rate bounds, statistics, parsing, the table.

Nothing here starts a process or reads a clock, so tests_host/test_bench_core.py checks it all.
"""

import json
import re
from datetime import datetime, timedelta

import tools  # noqa: F401 - the micropython.const stand-in, for air724.text
from air724.text import escape

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
OK_REPLY = b"\r\nOK\r\n"
PUBACK_URC = b"\r\nPUBACK\r\n"


# -- heap bisection ---------------------------------------------------------------------------


def parse_size(text):
    """``"128k"`` -> 131072, ``"2m"`` -> 2097152, ``"4096"`` -> 4096 (as ``-X heapsize``)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", str(text))
    if not match:
        raise ValueError("bad size %r (use 128k, 1m or bytes)" % (text,))
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def heap_steps(lo_kib, hi_kib, step_kib):
    """The heap sizes tried, in KiB: ``lo``, ``lo+step``, …, up to ``hi`` (included)."""
    if step_kib <= 0 or lo_kib <= 0 or hi_kib < lo_kib:
        raise ValueError("need 0 < lo <= hi and step > 0")
    steps = list(range(lo_kib, hi_kib + 1, step_kib))
    if steps[-1] != hi_kib:
        steps.append(hi_kib)
    return steps


def bisect_smallest(candidates, passes):
    """The smallest candidate for which ``passes(c)`` is true, assuming it stays true above.

    Tries the largest first (None if even that fails), then bisects. Returns
    ``(smallest or None, trials)`` where trials lists ``(candidate, passed)`` in order.
    """
    trials = []

    def run(index):
        ok = bool(passes(candidates[index]))
        trials.append((candidates[index], ok))
        return ok

    if not candidates or not run(len(candidates) - 1):
        return None, trials
    lo, hi = -1, len(candidates) - 1  # candidates[hi] passes; everything <= lo fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(mid):
            hi = mid
        else:
            lo = mid
    return candidates[hi], trials


# -- UART line rate ---------------------------------------------------------------------------


def mpub_wire_bytes(topic, payload, qos):
    """Bytes on the UART for one ``AT+MPUB`` publish with echo off: ``(to module, to host)``.

    The command is ``AT+MPUB="topic",qos,0,"escaped payload"`` + CR; the module answers
    ``\\r\\nOK\\r\\n`` and, for QoS1, ``\\r\\nPUBACK\\r\\n`` once the broker acknowledged.
    """
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    command = b'AT+MPUB="%s",%d,0,"%s"\r' % (topic, qos, escape(payload))
    reply = OK_REPLY + (PUBACK_URC if qos == 1 else b"")
    return len(command), len(reply)


def line_time_s(nbytes, baud):
    """Seconds ``nbytes`` take on an 8N1 line at ``baud``."""
    return nbytes * BITS_PER_BYTE / baud


def publish_bound(tx, rx, baud, wait_s=0.0):
    """Publishes per second if only the UART (and a fixed module wait) took time.

    A publish is a round trip: the module answers after the whole command arrived, and the
    next command waits for that answer, so command and answer follow each other on the wire
    (``tx + rx`` bytes in sequence), plus ``wait_s`` (the broker's PUBACK for QoS1).
    """
    return 1.0 / (line_time_s(tx + rx, baud) + wait_s)


# -- statistics and parsing -------------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least the first
    return ordered[min(len(ordered), int(rank)) - 1]


def median(values):
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cpu_ticks(stat_text):
    """utime + stime (clock ticks) from the text of ``/proc/PID/stat``."""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])  # fields 14 and 15 of the whole line


def schedstat_ns(text):
    """Nanoseconds on the CPU from the text of ``/proc/PID/task/TID/schedstat``."""
    return int(text.split()[0])


def transcript_epoch(stamp, near_epoch):
    """Epoch seconds of a transcript time ``HH:MM:SS.mmm`` (local time of day): the one
    closest to ``near_epoch`` (a run spans minutes, never a day)."""
    base = datetime.fromtimestamp(near_epoch)
    clock = datetime.strptime(stamp, "%H:%M:%S.%f").time()
    best = None
    for days in (-1, 0, 1):
        candidate = datetime.combine(base.date() + timedelta(days=days), clock).timestamp()
        if best is None or abs(candidate - near_epoch) < abs(best - near_epoch):
            best = candidate
    return best


_ATMODEM = (
    ("urc_bytes", r"bytes allocated per URC line dispatched: ([\d.]+)"),
    ("urc_shim_bytes", r"of which the shim's readinto: ([\d.]+)"),
    ("command_bytes", r"bytes allocated per AT->OK round trip:\s+([\d.]+)"),
    ("command_shim_bytes", r"of which the shim's write/readinto: ([\d.]+)"),
    ("urc_us", r"time per URC line: (\d+) us"),
    ("command_us", r"time per round trip: (\d+) us"),
)


def parse_atmodem(output):
    """The figures tools/bench/vm_atmodem.py prints, as a dict (missing ones left out)."""
    found = {}
    for key, pattern in _ATMODEM:
        match = re.search(pattern, output)
        if match:
            found[key] = float(match.group(1))
    return found


def parse_bench_line(text, tag):
    """The JSON of a ``bench TAG {…}`` line, or None."""
    match = re.search(r"\bbench %s (\{.*\})\s*$" % re.escape(tag), text)
    return json.loads(match.group(1)) if match else None


# -- the report -------------------------------------------------------------------------------


def row(measure, value, unit, against="", ratio=None, note=""):
    """One measured row of a figure."""
    return {
        "measure": measure,
        "value": value,
        "unit": unit,
        "against": against,
        "ratio": ratio,
        "note": note,
    }


class BoundError(ValueError):
    """A figure above a physical bound: the measurement (or the emulator's pacing) is wrong."""


def aim_row(measure, value, unit, aim, against, note=""):
    """A row against an aim (a budget, a target): the ratio is value / aim (None for a
    missing value or an aim of 0)."""
    ratio = value / aim if value is not None and aim else None
    return row(measure, value, unit, against, ratio, note)


def bound_row(measure, value, unit, bound, against, note="", lower=False):
    """A row against a physical bound, its ratio the share of the bound reached, never above
    1: ``value / bound`` for a rate that cannot exceed ``bound``; with ``lower``,
    ``bound / value`` for a time that cannot be shorter than ``bound``. A ratio above 1 is
    impossible: it raises ``BoundError`` instead of being printed."""
    if value is None or not bound:
        return row(measure, value, unit, against, None, note)
    ratio = bound / value if lower else value / bound
    if ratio > 1.0:
        raise BoundError(
            "%s: %s %s beyond its physical bound %s (ratio %.4f)"
            % (measure, value, unit, bound, ratio)
        )
    return row(measure, value, unit, against, ratio, note)


def fmt_value(value):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return "{:,}".format(value)
    if isinstance(value, float):
        if abs(value) >= 100:
            return "{:,.0f}".format(value)
        if abs(value) >= 10:
            return "%.1f" % value
        return "%.3g" % value
    return str(value)


def fmt_ratio(ratio):
    if ratio is None:
        return ""
    if 0 < abs(ratio) < 0.01:
        return "%.1e" % ratio  # a tiny share (idle CPU of one core) still shows
    return "%.2f" % ratio


def render(figures):
    """The table: one block per figure, its rows, then the command that reproduces it."""
    header = ("", "measure", "value", "unit", "ratio", "against")
    lines = []
    table = []
    for fig in figures:
        title = "%s. %s" % (fig["id"], fig["title"])
        rows = fig.get("rows") or [row("not measured", None, "", note=fig.get("error", ""))]
        for i, r in enumerate(rows):
            table.append(
                (
                    title if i == 0 else "",
                    r["measure"],
                    fmt_value(r["value"]),
                    r["unit"],
                    fmt_ratio(r["ratio"]),
                    r["against"] + ((" (" + r["note"] + ")") if r["note"] else ""),
                )
            )
        table.append(("", "  reproduce: " + fig["command"], None, None, None, None))
        if fig.get("error"):
            table.append(("", "  error: " + fig["error"], None, None, None, None))
    widths = [len(h) for h in header]
    for cells in table:
        if cells[2] is None:
            continue
        widths = [max(w, len(c)) for w, c in zip(widths, cells)]
    # The last column ("against") is free text: never padded.
    fmt = "  ".join("%%-%ds" % w for w in widths[:-1]) + "  %s"
    lines.append((fmt % header).rstrip())
    lines.append("  ".join("-" * w for w in widths[:-1]) + "  " + "-" * 7)
    for cells in table:
        if cells[2] is None:  # a full-width line (command, error)
            lines.append(("%-*s  %s" % (widths[0], cells[0], cells[1])).rstrip())
        else:
            lines.append((fmt % cells).rstrip())
    return lines


MARKDOWN_HEADER = (
    "| figure | measure | value | unit | ratio | against |",
    "|---|---|---|---|---|---|",
)


def markdown(figures):
    """The same figures as a Markdown table (the README's section, tools/bench/readme.py)."""
    out = list(MARKDOWN_HEADER)
    for fig in figures:
        for i, r in enumerate(fig.get("rows") or []):
            against = r["against"] + ((" (" + r["note"] + ")") if r["note"] else "")
            title = "%s. %s" % (fig["id"], fig["title"]) if i == 0 else ""
            cells = (title, r["measure"], fmt_value(r["value"]), r["unit"])
            cells += (fmt_ratio(r["ratio"]), against)
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out
