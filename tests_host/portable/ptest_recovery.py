"""Recovery ladder and backoff (lib/aliyun/recovery.py), outbox (lib/aliyun/outbox.py)."""

from ptest import raises

from aliyun.outbox import Outbox
from aliyun.recovery import STEPS, Recovery


def fixed_rand(value):
    return lambda bits: value


def test_ladder_escalates_through_every_remedy_then_restarts():
    rec = Recovery(tries=(2, 1, 1, 1, 1), rand=fixed_rand(0))
    remedies = [rec.failed()[0] for _ in range(7)]
    assert remedies == ["mqtt", "mqtt", "bearer", "cfun", "reset", "power", "mqtt"]
    assert set(STEPS) == set(remedies)


def test_success_resets_ladder_and_delay():
    rec = Recovery(base_ms=100, tries=(1, 1, 1, 1, 1), rand=fixed_rand(0))
    rec.failed()
    rec.failed()
    assert rec.step == "bearer" and rec.failures == 2
    rec.succeeded()
    assert rec.step == "mqtt" and rec.failures == 0
    assert rec.failed() == ("mqtt", 50)


def test_delay_doubles_up_to_cap_with_equal_jitter():
    low = Recovery(base_ms=1000, cap_ms=8000, rand=fixed_rand(0))
    high = Recovery(base_ms=1000, cap_ms=8000, rand=fixed_rand((1 << 24) - 1))
    lows = [low.failed()[1] for _ in range(6)]
    assert lows == [500, 1000, 2000, 4000, 4000, 4000]
    highs = [high.failed()[1] for _ in range(6)]
    for floor, delay in zip(lows, highs):
        assert floor <= delay <= 2 * floor  # jitter adds at most the other half
    assert max(highs) <= 8000


def test_jitter_spreads_a_fleet():
    delays = set()
    for seed in range(20):
        rec = Recovery(base_ms=1000, rand=fixed_rand(seed * 7919))
        rec.failed()
        rec.failed()
        delays.add(rec.failed()[1])
    assert len(delays) > 10
    assert min(delays) >= 2000 and max(delays) <= 4000


def test_permanent_failure_waits_long_and_does_not_climb():
    rec = Recovery(permanent_ms=600000, rand=fixed_rand(0))
    for _ in range(10):
        assert rec.failed(permanent=True) == (None, 600000)  # no remedy: only the wait
    assert rec.step == "mqtt"


def test_long_outage_does_not_overflow():
    rec = Recovery(base_ms=1000, cap_ms=300000, rand=fixed_rand(0))
    for _ in range(200):
        remedy, delay = rec.failed()
    assert delay == 150000 and remedy in STEPS


def test_outbox_keeps_order_and_pops_only_when_told():
    box = Outbox(3)
    assert box.put("t", b"1") and box.put("t", b"2")
    assert len(box) == 2 and box.peek() == ("t", b"1")
    assert box.peek() == ("t", b"1")  # peeking does not consume: a failed publish retries it
    box.pop()
    assert box.peek() == ("t", b"2")
    box.pop()
    assert box.peek() is None and len(box) == 0
    box.pop()  # popping an empty outbox is harmless
    assert len(box) == 0


def test_outbox_drops_oldest_when_full_and_counts():
    box = Outbox(2)
    box.put("a", b"1")
    box.put("a", b"2")
    assert box.put("a", b"3") is False
    assert box.dropped == 1 and len(box) == 2
    got = []
    while len(box):
        got.append(box.peek()[1])
        box.pop()
    assert got == [b"2", b"3"]
    for i in range(10):
        box.put("a", i)
    assert box.dropped == 9 and [box.peek()[1]] == [8]


def test_outbox_rejects_zero_capacity():
    with raises(ValueError):
        Outbox(0)


def test_escalate_skips_cheaper_remedies_once():
    rec = Recovery(tries=(2, 2, 1, 1, 1), rand=fixed_rand(0))
    rec.escalate("cfun")
    assert [rec.failed()[0] for _ in range(3)] == ["cfun", "reset", "power"]
    rec.succeeded()
    rec.failed()
    rec.escalate("mqtt")  # never lowers the ladder
    assert rec.step == "mqtt"
    rec.escalate("reset")
    assert rec.failed()[0] == "reset"
