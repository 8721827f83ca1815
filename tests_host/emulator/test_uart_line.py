"""The emulator's wire (tools/emulator/uart.py ``Line``): when each byte may be handed on.

Pure: the times are given, nothing sleeps. A byte takes 10 bit times, starts no earlier than
it was offered nor before the previous byte ended, and an idle line gives no credit.
"""

import pytest

from tools.emulator.uart import Line

BAUD = 20000  # 0.5 ms a byte, slices of 10 bytes
B = 10 / BAUD


def test_bytes_cross_at_the_line_rate_from_their_offer():
    line = Line(BAUD)
    line.offer(b"abc", now=5.0)
    chunk, due = line.take()
    assert chunk == b"abc" and due == pytest.approx(5.0 + 3 * B)
    assert line.take() is None and line.pending == 0


def test_an_idle_line_gives_no_credit_to_the_next_transfer():
    line = Line(BAUD)
    line.offer(b"ab", now=0.0)
    assert line.take()[1] == pytest.approx(2 * B)
    line.offer(b"cd", now=0.5)  # long after the line went quiet
    assert line.take()[1] == pytest.approx(0.5 + 2 * B)
    line.offer(b"e", now=0.5 + 3 * B)  # after the last byte ended: from its own offer
    assert line.take()[1] == pytest.approx(0.5 + 4 * B)


def test_bytes_offered_while_the_line_is_busy_wait_for_it():
    line = Line(BAUD)
    line.offer(b"abc", now=0.0)
    line.offer(b"de", now=B)  # the line is busy until 3 B
    chunk, due = line.take()
    assert chunk == b"abcde" and due == pytest.approx(5 * B)


def test_a_late_byte_in_a_slice_counts_from_its_own_offer():
    line = Line(BAUD)
    line.offer(b"a", now=0.0)
    line.offer(b"b", now=0.2)  # queued together, but offered much later
    chunk, due = line.take()
    assert chunk == b"ab" and due == pytest.approx(0.2 + B)


def test_slices_keep_the_schedule_and_never_run_ahead_of_it():
    line = Line(115200)
    size = line.slice_size
    assert size == 57  # about 5 ms of line time
    line.offer(bytes(200), now=1.0)
    dues = []
    while line.pending:
        chunk, due = line.take()
        dues.append((len(chunk), due))
    assert [n for n, _ in dues] == [57, 57, 57, 29]
    for i, (_, due) in enumerate(dues):
        sent = sum(n for n, _ in dues[: i + 1])
        assert due == pytest.approx(1.0 + sent * 10 / 115200)


def test_a_stall_holds_the_queued_bytes_and_clear_drops_them():
    line = Line(BAUD)
    line.offer(b"ab", now=0.0)
    line.idle_until(1.0)
    assert line.take()[1] == pytest.approx(1.0 + 2 * B)
    line.offer(b"xyz", now=2.0)
    line.clear()
    assert line.take() is None and line.pending == 0


def test_unpaced_hands_bytes_on_at_once():
    line = Line(None)
    line.offer(b"x" * 70000, now=3.0)
    chunk, due = line.take()
    assert len(chunk) == 1 << 16 and due == 3.0
    assert line.take() == (b"x" * (70000 - (1 << 16)), 3.0)
