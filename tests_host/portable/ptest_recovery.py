"""Recovery ladder and backoff (lib/aliyun/recovery.py), outbox (lib/aliyun/outbox.py)."""

import asyncio
from time import ticks_diff, ticks_ms

from ptest import raises

from aliyun.outbox import Outbox, pump
from aliyun.recovery import STEPS, Recovery


def fixed_rand(value):
    return lambda bits: value


def test_ladder_escalates_through_every_remedy_then_restarts():
    rec = Recovery(tries=(2, 1, 1, 1, 1, 1), rand=fixed_rand(0))
    remedies = [rec.failed()[0] for _ in range(8)]
    assert remedies == ["mqtt", "mqtt", "bearer", "uart", "cfun", "reset", "power", "mqtt"]
    assert set(STEPS) == set(remedies)


def test_success_resets_ladder_and_delay():
    rec = Recovery(base_ms=100, tries=(1, 1, 1, 1, 1, 1), rand=fixed_rand(0))
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


def test_permanent_failure_waits_grow_in_steps_and_do_not_climb():
    # Issue "never stranded", defect 5: 1, 2, 5, 15, then 60 min, each jittered down by at
    # most a quarter, instead of an hour at once; no remedy (only the wait), no ladder.
    minute = 60000
    for rand, part in ((0, 1), ((1 << 24) - 1, None)):
        rec = Recovery(rand=fixed_rand(rand))
        waits = [rec.failed(permanent=True) for _ in range(7)]
        assert [w[0] for w in waits] == [None] * 7 and rec.step == "mqtt"
        for (_, wait), step in zip(waits, (1, 2, 5, 15, 60, 60, 60)):
            assert step * minute * 3 // 4 <= wait <= step * minute, (wait, step)
            if part:
                assert wait == step * minute
    rec.succeeded()
    assert rec.failed(permanent=True)[1] <= minute  # back to the first step


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
    rec = Recovery(tries=(2, 2, 1, 1, 1, 1), rand=fixed_rand(0))
    rec.escalate("cfun")
    assert [rec.failed()[0] for _ in range(3)] == ["cfun", "reset", "power"]
    rec.succeeded()
    rec.failed()
    rec.escalate("mqtt")  # never lowers the ladder
    assert rec.step == "mqtt"
    rec.escalate("reset")
    assert rec.failed()[0] == "reset"


def test_outbox_full_while_its_oldest_is_in_flight_drops_the_oldest_not_yet_sent():
    # Issue "never stranded", defect 6: the message in flight may be delivered; dropping it
    # (and then popping the next, never sent, uncounted) lost the wrong one.
    box = Outbox(3)
    for n in (1, 2, 3):
        box.put("t", n)
    assert box.peek() == ("t", 1)
    box.held = True  # the pump handed 1 to the module; its PUBACK is awaited
    assert box.put("t", 4) is False and box.dropped == 1
    assert box.peek() == ("t", 1)  # still the one in flight
    box.pop()  # its PUBACK: 1 leaves, not 3
    assert not box.held
    got = []
    while len(box):
        got.append(box.peek()[1])
        box.pop()
    assert got == [3, 4]  # 2, the oldest never sent, was the one dropped (and counted)
    one = Outbox(1)
    one.put("t", "a")
    one.held = True
    assert one.put("t", "b") is False and one.dropped == 1 and one.peek() == ("t", "a")


def test_outbox_pace_waits_only_after_eight_sends_within_a_second():
    box = Outbox(4)
    assert box.pace_ms() == 0  # a new outbox: nothing was sent
    for _ in range(7):
        box.sending()
    assert box.pace_ms() == 0
    box.sending()
    assert 0 < box.pace_ms() <= 1000  # the eighth within a second: the ninth waits


class _PacedSession:
    """What ``pump`` uses of a session, with an MQTT client that notes when each message went."""

    def __init__(self, count):
        self.outbox = Outbox(32)
        for n in range(count):
            self.outbox.put("t", n)
        self.readings = None
        self._wake_outbox = asyncio.Event()
        self.published = 0
        self.sent = []
        self.modem = self.mqtt = self

    async def publish(self, topic, payload, qos):
        self.sent.append((ticks_ms(), payload))
        await asyncio.sleep(0)  # PUBACK at once, as the emulator answers on loopback

    def _link_failed(self, exc):
        raise exc


async def test_outbox_backlog_goes_out_within_the_platforms_qos1_rate():
    # The platform takes 10 QoS1 messages a second per device and drops the others unseen,
    # PUBACK all the same (reference 4.9): a backlog sent at the module's speed after an
    # outage was acknowledged and lost (the chaos suite's network_lost, 14 of 14 messages).
    session = _PacedSession(20)
    task = asyncio.create_task(pump(session))
    start = ticks_ms()
    while len(session.sent) < 20:
        assert ticks_diff(ticks_ms(), start) < 10000, len(session.sent)
        await asyncio.sleep_ms(20)
    task.cancel()
    await asyncio.sleep(0)
    assert [payload for _, payload in session.sent] == list(range(20))  # in order, all of them
    times = [t for t, _ in session.sent]
    for i in range(len(times) - 8):
        assert ticks_diff(times[i + 8], times[i]) >= 1000, (i, times)  # at most 8 a second
    assert session.published == 20 and len(session.outbox) == 0
