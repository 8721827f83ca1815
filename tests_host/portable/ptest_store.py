"""Persistent queue (lib/aliyun/store.py) on a directory: framing, torn writes, bound, pointer.

A "crash" is a new ``Store`` on the same directory without the old one being told anything
(the old object is simply dropped), which is all a reset or a power cut leaves behind.
"""

import os
from binascii import hexlify

from ptest import raises

from aliyun.store import Store


def _fresh_dir():
    return "ptest_store_" + hexlify(os.urandom(4)).decode()


def _rmtree(root):
    for name in os.listdir(root):
        os.remove(root + "/" + name)
    os.rmdir(root)


def _rec(i):
    return b"reading %05d" % i


def _drain(store, chunk=4):
    out = []
    while True:
        got = store.peek(chunk)
        if not got:
            return out
        out.extend(got)
        store.pop(len(got))


def _segments(root):
    return sorted(int(n[:-2]) for n in os.listdir(root) if n.endswith(".q"))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_restart_reads_back_exactly_what_was_unsent():
    root = _fresh_dir()
    try:
        store = Store(root, ack_every=1)
        for i in range(10):
            assert store.append(_rec(i)) is True
        assert store.peek(3) == [_rec(0), _rec(1), _rec(2)]
        store.pop(3)
        assert store.records == 7
        store = Store(root, ack_every=1)  # reset
        assert store.records == 7 and store.torn == 0
        for i in range(10, 13):
            store.append(_rec(i))
        store = Store(root, ack_every=1)
        assert _drain(store) == [_rec(i) for i in range(3, 13)]
        assert store.records == 0
        store = Store(root)
        assert store.records == 0 and store.peek(5) == []
        assert _segments(root) == []  # everything sent: no segment left
    finally:
        _rmtree(root)


def test_torn_append_at_every_byte_offset_is_detected_and_skipped():
    root = _fresh_dir()
    try:
        store = Store(root)
        for i in range(3):
            store.append(_rec(i))
        seg = root + "/%d.q" % _segments(root)[-1]
        good = _read(seg)
        store.append(b"the torn one")
        whole = _read(seg)
        frame = whole[len(good) :]
        assert len(frame) == 6 + 12  # length + crc32 + payload
        for cut in range(len(frame) + 1):
            for filler in (b"", b"\xff", b"\x00"):  # cut short, erased flash, zeroed
                tail = frame[:cut] + filler * (len(frame) - cut)
                _write(seg, good + tail)
                reopened = Store(root)
                expect = [_rec(0), _rec(1), _rec(2)]
                if cut == len(frame):
                    expect.append(b"the torn one")
                assert reopened.peek(10) == expect, (cut, filler)
                assert reopened.records == len(expect)
                assert reopened.torn == (1 if tail and cut < len(frame) else 0), (cut, filler)
        _write(seg, good + frame[:7])  # torn mid-payload, then the device goes on
        store = Store(root)
        store.append(b"after the cut")
        assert Store(root).peek(10) == [_rec(0), _rec(1), _rec(2), b"after the cut"]
    finally:
        _rmtree(root)


def test_a_flipped_bit_is_never_misread():
    root = _fresh_dir()
    try:
        store = Store(root)
        for i in range(4):
            store.append(_rec(i))
        seg = root + "/%d.q" % _segments(root)[0]
        data = _read(seg)
        frame = 6 + len(_rec(0))
        for pos in range(frame, 2 * frame):  # every byte of the second record
            for bit in (0x01, 0x80):
                bad = bytearray(data)
                bad[pos] ^= bit
                _write(seg, bad)
                got = Store(root).peek(10)
                assert got == [_rec(0)], (pos, bit)  # the rest of the segment is skipped
    finally:
        _rmtree(root)


def test_full_store_drops_the_oldest_unsent_and_counts_them():
    root = _fresh_dir()
    try:
        store = Store(root, max_bytes=256, segment_bytes=128)
        results = [store.append(_rec(i)) for i in range(40)]
        assert False in results and results[:8] == [True] * 8
        assert store.bytes <= 256
        assert store.dropped > 0 and store.dropped + store.records == 40
        kept = _drain(Store(root, max_bytes=256, segment_bytes=128))
        assert kept == [_rec(i) for i in range(40 - len(kept), 40)]  # the newest, in order
        assert len(kept) == store.records
    finally:
        _rmtree(root)


def test_drop_while_a_peeked_record_is_in_flight_acknowledges_nothing_else():
    root = _fresh_dir()
    try:
        store = Store(root, max_bytes=256, segment_bytes=128, ack_every=1)
        for i in range(8):
            store.append(_rec(i))
        assert store.peek(2) == [_rec(0), _rec(1)]  # being published...
        sent = store.token(2)
        for i in range(8, 16):  # ...while the application fills the store
            store.append(_rec(i))
        assert store.dropped >= 4
        store.peek(3)  # someone looks at the store meanwhile (stats)
        store.ack(sent)  # the publish completed: the records it sent are gone already
        assert store.peek(1) == [_rec(store.dropped)]  # the oldest kept one still waits
        assert store.records == 16 - store.dropped
        later = store.peek(2)
        store.ack(store.token(2))
        assert Store(root, max_bytes=256, segment_bytes=128).peek(1) != later[:1]
    finally:
        _rmtree(root)


def test_pointer_survives_a_crash_between_send_and_acknowledge():
    root = _fresh_dir()
    try:
        store = Store(root, ack_every=4)
        for i in range(20):
            store.append(_rec(i))
        sent = store.peek(3)  # published, PUBACK received, reset before pop
        assert sent == [_rec(0), _rec(1), _rec(2)]
        store = Store(root, ack_every=4)
        assert store.peek(1) == [_rec(0)]  # sent again: a duplicate, not a loss
        for _ in range(10):
            store.peek(1)
            store.pop(1)
        store = Store(root, ack_every=4)  # reset: the pointer was saved after 4 and 8
        again = _drain(store)
        assert again == [_rec(i) for i in range(8, 20)]
    finally:
        _rmtree(root)


def test_damaged_pointer_means_from_the_oldest_and_a_stray_temp_file_is_ignored():
    root = _fresh_dir()
    try:
        store = Store(root, ack_every=1)
        for i in range(6):
            store.append(_rec(i))
        store.peek(2)
        store.pop(2)
        _write(root + "/ack.tmp", b"half")  # a crash while writing the next pointer
        assert Store(root).peek(1) == [_rec(2)]
        ack = bytearray(_read(root + "/ack"))
        ack[0] ^= 1
        _write(root + "/ack", ack)
        assert Store(root).peek(1) == [_rec(0)]  # duplicates, never a loss
        _write(root + "/ack", b"")
        assert Store(root).records == 6
    finally:
        _rmtree(root)


def test_segments_roll_and_sent_ones_are_deleted():
    root = _fresh_dir()
    try:
        store = Store(root, max_bytes=4096, segment_bytes=64)
        for i in range(12):  # 18-byte frames: three per segment
            store.append(_rec(i))
        assert len(_segments(root)) == 4
        store.peek(7)
        store.pop(7)
        assert len(_segments(root)) == 2  # two whole segments sent and deleted
        assert _drain(store) == [_rec(i) for i in range(7, 12)]
        assert _segments(root) == [_segments(root)[-1]]  # the one still appended to
        store = Store(root, max_bytes=4096, segment_bytes=64)
        assert store.peek(5) == [_rec(11)]  # acknowledged after the last saved pointer
        store.pop(1)
        store.flush()
        store = Store(root, max_bytes=4096, segment_bytes=64)
        assert _segments(root) == [] and store.records == 0
    finally:
        _rmtree(root)


def test_every_reopen_appends_to_a_new_segment_numbered_past_the_pointer():
    root = _fresh_dir()
    try:
        for boot in range(3):
            store = Store(root, ack_every=1)
            store.append(_rec(boot))
        assert len(_segments(root)) == 3
        last = _segments(root)[-1]
        store = Store(root, ack_every=1)
        assert _drain(store) == [_rec(0), _rec(1), _rec(2)]
        assert _segments(root) == []  # all sent (none appended to here): only the pointer
        store.append(_rec(9))
        assert _segments(root)[0] > last  # never a number the pointer counts as sent
        assert Store(root).peek(2) == [_rec(9)]
    finally:
        _rmtree(root)


def test_bad_arguments_are_refused():
    root = _fresh_dir()
    try:
        with raises(ValueError):
            Store(root, max_bytes=100, segment_bytes=64)
        store = Store(root, segment_bytes=64)
        for bad in (b"", b"x" * 59):
            with raises(ValueError):
                store.append(bad)
        assert store.append(b"x" * 58) is True
        assert store.records == 1
    finally:
        _rmtree(root)
