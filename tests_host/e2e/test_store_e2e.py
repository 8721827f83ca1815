"""Readings on flash end to end: the firmware (``STORE_HEAP``, .mpy, ``store.enabled``)
posting every second through a long outage, powered off (SIGKILL) three times during it and once
during the catch-up, against the emulator (paced at 115200 baud) and the local cloud.

The firmware logs ``stored <id> t=<ms>`` (debug) once a reading is on flash: each one with a time
must reach the cloud at least once, in order, with that measurement time. (A run whose module
clock is unset, after the module's own reset, and that never reached NTP stores ``t=None``: such
readings go without a time, or dated by ticks once NTP answers in that run, and cannot be
matched by time here; most readings must be dated.) The cloud's clock is moved 25 h ahead during
the outage (control API ``/clock``), so the readings taken before the network comes back are
more than a day old for it: they must come as history posts, the later ones as normal posts
(the cloud refuses a normal post whose time is a day off).
"""

import json
import re
import signal
import time

from tools.cloud.cli import control_ok
from tools.cloud.server import read_server_file
from tools.sim.board import STORE_HEAP

STORED = re.compile(r" D stored (\d+) t=(\d+|None)$")
DAY_MS = 24 * 3600 * 1000
HISTORY = "/thing/event/property/history/post"
POST = "/thing/event/property/post"


def stored_readings(stack):
    """(id, measurement time) of every reading the firmware stored, all runs, in order."""
    found = []
    for source, _stream, text in stack.lines:
        match = STORED.search(text) if source == "device" else None
        if match:
            t = match.group(2)
            found.append((match.group(1), None if t == "None" else int(t)))
    return found


def cloud_readings(stack):
    """Measurement times the cloud accepted (200), in arrival order, and the history count."""
    times, histories = [], 0
    for row in list(stack.rows.rows):
        if row["type"] != "up" or row["status"] != "200":
            continue
        topic = row["topic"] or ""
        if topic.endswith(HISTORY):
            histories += 1
            for entry in json.loads(row["content"])["params"]:
                for group in entry["properties"]:
                    times.append(next(iter(group.values()))["time"])
        elif topic.endswith(POST):
            params = json.loads(row["content"])["params"]
            first = next(iter(params.values()))
            times.append(first["time"] if isinstance(first, dict) else None)
    return times, histories


def power_cut(stack):
    """SIGKILL the VM (nothing flushed, nothing closed), then power on again."""
    stack.firmware.proc.stop(signal.SIGKILL, 5)
    stack.firmware.start()


def wait_stored(stack, count, timeout=90):
    """Wait until ``count`` more readings are stored (the device's log)."""
    goal = len(stored_readings(stack)) + count
    deadline = time.monotonic() + timeout
    while len(stored_readings(stack)) < goal:
        assert time.monotonic() < deadline, "fewer than %d readings stored" % count
        stack.firmware.wait_for(STORED.pattern, timeout, len(stack.firmware.proc.lines))


def test_readings_survive_an_outage_and_power_cuts_and_arrive_in_order_with_their_time(stack):
    stack.start_cloud()
    stack.start_emulator(args=("--baud", "115200"))
    config = stack.config(telemetry_interval_s=1, log_level="debug", store={"enabled": True})
    stack.start_firmware(config, heapsize=STORE_HEAP)
    stack.wait_device(r" I up properties: 200")
    since = len(stack.rows.rows)
    stack.fault("network_lost", duration=3600)
    stack.wait_row(type="status", status="offline", since=since)
    for _ in range(3):  # power cuts during the outage
        wait_stored(stack, 8)
        power_cut(stack)
    wait_stored(stack, 8)
    offset = DAY_MS + 3600 * 1000
    control_ok(read_server_file(stack.cloud.state_dir), "POST", "/clock", {"offset_ms": offset})
    outage_end = len(stored_readings(stack))
    restore_ms = max(t for _id, t in stored_readings(stack) if t is not None)
    since = len(stack.rows.rows)
    stack.fault("network_restore")
    stack.wait_row(type="up", topic=HISTORY, status=200, since=since, timeout=180)
    power_cut(stack)  # during the catch-up
    stack.wait_row(type="status", status="online", since=since + 1, timeout=180)
    deadline = time.monotonic() + 240
    while True:  # until every stored reading is in the cloud's log
        want = [r for r in stored_readings(stack) if r[1] is not None]
        got, histories = cloud_readings(stack)
        missing = [r for r in want if r[1] not in got]
        if not missing and len(want) > outage_end + 3:
            break
        assert time.monotonic() < deadline, "not in the cloud: %r" % missing[:10]
        stack.wait_row(type="up", since=len(stack.rows.rows), timeout=60)
    # In order: the first arrival of each reading follows the order they were taken in.
    first_seen = {}
    for index, t in enumerate(got):
        first_seen.setdefault(t, index)
    order = [first_seen[t] for _id, t in want]
    assert order == sorted(order)
    assert histories >= 2  # the outage's readings came batched as history posts
    history_times = set()
    for row in stack.rows.matching(type="up", topic=HISTORY, status=200):
        for entry in json.loads(row["content"])["params"]:
            history_times |= {next(iter(g.values()))["time"] for g in entry["properties"]}
    old = [t for _id, t in want if t < restore_ms]
    assert old and set(old) <= history_times | set(got[:1])  # got[:1]: before the outage
    assert len(want) >= len(stored_readings(stack)) // 2  # most readings dated
    refused = stack.rows.matching(type="up", topic=POST, status=460)
    assert refused == [], refused[:3]  # no reading sent as a normal post a day late
    failures = stack.firmware.proc.find(r"MemoryError|Traceback")
    assert failures == [], [m.string for m in failures]
