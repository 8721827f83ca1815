"""The chaos suite (tools/chaos): its accounting on made-up logs, and a short run of the firmware
on the MicroPython VM (the firmware's heap, FIRMWARE_HEAP) against the emulator and the local
cloud.

The short run injects every fault kind (``SURVIVED``: all of them since the device fixes of the
issue "never stranded" landed), as ``make chaos`` does.
"""

import random
import threading
import time
import types

import pytest

from tools.chaos import kinds, report
from tools.chaos import run as run_mod
from tools.chaos.cli import run_chaos
from tools.chaos.run import ChaosRun
from tools.emulator.faults import FAULTS, parse_params

# The one place that selects the fault kinds of the short run (extend as device fixes land).
SURVIVED = sorted(kinds.KINDS)  # every kind: the device fixes of "never stranded" landed
SHORT_FAULTS = 8
SEED = 14


def test_every_emulator_fault_is_a_chaos_kind():
    assert set(FAULTS) - set(kinds.KINDS) == set(kinds.PART_OF)
    assert set(kinds.PART_OF.values()) <= set(kinds.KINDS)
    assert set(SURVIVED) <= set(kinds.KINDS)


class _Log:
    def __init__(self, accepted=(), full=(), delivered=(), copies=None):
        self.lock = threading.Condition()
        self.accepted = {key: 0.0 for key in accepted}
        self.full = list(full)
        self.delivered = {key: 0.0 for key in delivered}
        self.copies = copies or {key: 1 for key in delivered}


def _messages(accepted, delivered, full=(), last_boot=2, copies=None, overflows=None):
    device = _Log(accepted=accepted, full=full)
    if overflows is not None:
        device.overflows = overflows
    cloud = _Log(delivered=delivered, copies=copies)
    return report.messages(device, cloud, last_boot)


def test_accounting_power_cut_tail_is_its_own_cause_and_a_gap_is_lost():
    boot1 = [(1, n) for n in range(1, 7)]
    boot2 = [(2, n) for n in range(1, 4)]
    delivered = [(1, 1), (1, 2), (1, 4)] + boot2  # 1.3 missing before 1.4: a gap
    m = _messages(boot1 + boot2, delivered)
    assert m["lost"] == 1
    assert m["drops"]["power cut / MCU reset (RAM outbox)"] == 2  # 1.5, 1.6 were in RAM
    assert (m["accepted"], m["delivered"], m["duplicated"]) == (9, 6, 0)


def test_accounting_reported_overflow_explains_a_gap_but_not_the_last_boots_tail():
    accepted = [(2, n) for n in range(1, 6)]
    delivered = [(2, 1), (2, 3)]  # 2.2 dropped by a reported overflow; 2.4, 2.5 never came
    m = _messages(accepted, delivered, full=[(2, 5)])
    assert m["lost"] == 2 and m["drops"]["outbox overflow (reported)"] == 1


def test_accounting_counts_the_sessions_overflow_warnings_of_other_puts():
    # A property post put into a full outbox drops the oldest chaos message: the session warns
    # ("outbox full"), the chaos line says nothing. 3 gaps, 1 chaos "full", 3 warnings: none lost.
    accepted = [(2, n) for n in range(1, 9)]
    delivered = [(2, n) for n in (1, 5, 6, 7, 8)]
    assert _messages(accepted, delivered, full=[(2, 8)])["lost"] == 2
    m = _messages(accepted, delivered, full=[(2, 8)], overflows={2: 3})
    assert m["lost"] == 0 and m["drops"]["outbox overflow (reported)"] == 3
    assert _messages(accepted, delivered, overflows={2: 2})["lost"] == 1  # one not reported


def test_accounting_reported_drop_of_a_delivered_message_and_duplicates():
    accepted = [(2, n) for n in range(1, 4)]
    m = _messages(accepted, accepted, full=[(2, 3)], copies={(2, 1): 2, (2, 2): 1, (2, 3): 1})
    assert m["lost"] == 0 and m["duplicated"] == 1
    assert m["drops"]["reported dropped, yet delivered"] == 1


def test_heap_trend_flags_a_shrinking_free_heap_only():
    flat = [(1, t, 30000 + (t % 3) * 500, True) for t in range(40)]
    leak = [(1, t, 30000 - t * 200, True) for t in range(40)]
    stranded = flat + [(1, 40 + t, 11000, False) for t in range(20)]  # queues, not a leak
    assert not report.heap_trend(flat)["growing"]
    assert report.heap_trend(leak)["growing"]
    assert not report.heap_trend(stranded)["growing"]
    assert report.heap_trend(stranded)["min"] == 11000


def test_bounds_follow_the_ladder_and_the_keepalive():
    t = kinds.firmware_timeouts()
    drop = kinds.KINDS["drop_mqtt"].bound_s([("ctl", "drop_mqtt", {})], t, 10.0, 4.0)
    # one failed attempt: 1 s delay + the connect timeout, then a 2 s delay and a bring-up
    assert drop == 1 + t["connect_ms"] / 1000 + 2 + 10 + 4
    half = kinds.KINDS["half_open"].bound_s([("ctl", "half_open", {})], t, 10.0, 4.0)
    assert half == drop + 1.5 * kinds.KEEPALIVE_S
    sim = kinds.KINDS["sim_lost"].bound_s([("ctl", "sim_lost", {"duration": 8})], t, 10.0, 4.0)
    assert sim == 8 + 1 + 2 + 4 + 3 * t["sim_ms"] / 1000 + 8 + 10 + 4


@pytest.mark.timeout(900)  # about 2 minutes alone; a loaded machine stretches every wait
def test_short_chaos_run_of_the_survived_kinds(tmp_path):
    result = run_chaos(tmp_path / "chaos", SHORT_FAULTS, SEED, SURVIVED, out=lambda text: None)
    assert not result["problems"], result["table"]
    injected = sum(row["injected"] for row in result["kinds"].values())
    assert injected >= SHORT_FAULTS // 2, result["table"]  # most were applicable
    m = result["messages"]
    assert m["delivered"] > 0 and m["lost"] == 0, result["table"]


def test_fault_downlinks_count_what_reached_the_application():
    records = [
        {
            "kind": "cache_mode",
            "recovered": False,
            "echo": "must",
            "downlinks": ["cm-1-0", "cm-1-1"],
        },
        {"kind": "downlink", "recovered": True, "echo": "must", "downlinks": ["dl-2-"]},
    ]
    downs = [
        "  9.000 I down user/get 1360 B: dl-2-dl-2-dl-2-...",
        "  9.1 I down user/get 6 B: cm-1-1",
    ]
    result = report.downlinks(records, downs, {"cm-1-1"})
    assert result["cache_mode"] == {"sent": 2, "received": 1, "echoed": 1, "must": True}
    assert result["downlink"]["received"] == 1 and result["downlink"]["echoed"] == 0


def test_every_kind_injects_parameters_its_emulator_fault_accepts():
    rng = random.Random(SEED)
    for kind in kinds.KINDS.values():
        for _ in range(20):
            for step in kind.steps(rng):
                if step[0] != "ctl":
                    continue
                params = {
                    k: v.format(user_get="/pk/dn/user/get", tag="t-") if isinstance(v, str) else v
                    for k, v in step[2].items()
                }
                parse_params(step[1], params)  # FaultError on a bad name or value: fails


def test_http_faults_are_not_applicable_in_a_run_without_http(tmp_path):
    run = ChaosRun(tmp_path / "chaos", SEED, sorted(kinds.KINDS))
    http = {name for name, kind in kinds.KINDS.items() if kind.needs == "http"}
    assert http == {"http_code", "http_cut", "http_corrupt"}
    assert set(run.not_applicable) == http
    assert {k.name for k in run.kinds} == set(kinds.KINDS) - http


def test_a_reset_waits_for_room_in_the_platforms_connect_window(tmp_path):
    run = ChaosRun(tmp_path / "chaos", SEED, ["mcu_reset"])
    run.cloud_log, run.firmware = run_mod.Cloud(), types.SimpleNamespace(proc=None)
    now = time.monotonic()
    window = run_mod.CONNECT_WINDOW_S
    run.cloud_log.connects = [now - window + 0.3] + [now - 1.0] * 3  # 4 of 5 in the window
    assert run.connect_room(1) == 0.0  # room for one: no wait
    waited = run.connect_room(2)  # room for two once the oldest leaves the window
    assert 0.2 <= waited <= 1.5
    assert run.connect_room(1) == 0.0


def test_the_firmwares_wait_for_a_connect_slot_is_no_part_of_a_recovery(tmp_path):
    # The platform admits 5 CONNECTs a minute: a recovery that must wait for one says so
    # ("next CONNECT in N ms"), and its bound moves on by that wait.
    device = run_mod.Device(tmp_path / "device.log")
    before = time.monotonic()
    device.line("device", "out", "   12.000 I next CONNECT in 24300 ms (at most 5 a minute)")
    device.line("device", "out", "   12.100 I state connect")
    assert device.slot_wait_s(before) == pytest.approx(24.3)
    assert device.slot_wait_s(time.monotonic() + 1) == 0
    device.close()
