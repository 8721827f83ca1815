"""The AT engine's byte scanner (lib/atmodem/scanner.py) fed bytes directly, no tasks: line
cutting, noise, overlong lines, counted reads in place / in their own buffer / skipped, and the
data prompt."""

from atmodem import EV_COUNTED_ABANDONED, EV_DATA_DROPPED, EV_OVERFLOW
from atmodem.scanner import LineScanner


class Recorder(LineScanner):
    """What the scanner hands up: lines, counted payloads, prompts, as bytes."""

    def __init__(self, bufsize=32, data_max=64):
        super().__init__(bufsize, data_max)
        self.seen = []
        self.events = []
        self.on_event = lambda kind, data: self.events.append(kind)

    def _line(self, s, e):
        self.seen.append(bytes(self._mv[s:e]))

    def _prompted(self):
        self.seen.append(("prompt", self._prompt))
        self._prompt = None

    def _counted(self, payload):
        head = self.rule_head if self._hs < 0 else bytes(self._mv[self._hs : self._he])
        self.seen.append((head, bytes(payload)))

    def _emit(self, kind, data):  # atmodem.pending's
        self.events.append(kind)

    def _own_dropped(self):
        self.seen.append("dropped")


def feed_bytewise(scanner, data):
    for i in range(len(data)):
        scanner.feed(data[i : i + 1])


def test_lines_end_in_cr_lf_or_both_and_noise_between_lines_is_skipped():
    for feed in (LineScanner.feed, feed_bytewise):
        sc = Recorder()
        feed(sc, b"\x00\xff\r\nOK\r\n+CREG: 1\rRDY\n\n\r\nlast")
        assert sc.seen == [b"OK", b"+CREG: 1", b"RDY"]
        sc.feed(b"\r")
        assert sc.seen[-1] == b"last"


def test_an_overlong_line_is_dropped_and_scanning_goes_on():
    sc = Recorder(bufsize=16)
    sc.feed(b"X" * 40 + b"\r\nOK\r\n")
    assert sc.seen == [b"OK"] and sc.overflows == 1 and sc.events == [EV_OVERFLOW]


def test_counted_reads_in_place_in_their_own_buffer_and_skipped():
    raw = bytes(range(256))
    sc = Recorder(bufsize=32, data_max=64)
    sc._cprefix = b"+HTTPREAD:"  # a header ending in its count, for the pending command
    sc.feed(b"+HTTPREAD: 4\r\n\r\n\x00OK\r\nOK\r\n")  # in place; the payload holds CR LF
    assert sc.seen == [(b"+HTTPREAD: 4", b"\r\n\x00O"), b"K", b"OK"]
    sc.seen = []
    feed_bytewise(sc, b"+HTTPREAD: 40\r\n" + raw[:40] + b"\r\nOK\r\n")  # its own buffer
    assert sc.seen == [(b"+HTTPREAD: 40", raw[:40]), b"OK"]
    sc.seen = []
    sc.feed(b"+HTTPREAD: 100\r\n" + raw[:100] + b"\r\nOK\r\n")  # over data_max: skipped
    assert sc.seen == ["dropped", b"OK"] and EV_DATA_DROPPED in sc.events


def test_inline_counted_header_and_the_data_prompt():
    sc = Recorder(bufsize=64)

    asked = []

    def header(buf, s, e):  # '+MSUB: "t",<n>,' then n bytes at once; asked at each comma
        h = bytes(buf[s:e])
        asked.append(h)
        if len(h) < 12:
            return -1
        sc.rule_head = h
        return int(h[11:-1])

    sc._inline.append((b"+MSUB:", "urc", header))  # as atmodem.pending.add_urc files it
    feed_bytewise(sc, b'+MSUB: "t",3,a\r\n\r\nOK\r\n')
    assert sc.seen == [(b'+MSUB: "t",3,', b"a\r\n"), b"OK"]
    assert asked == [b'+MSUB: "t",', b'+MSUB: "t",3,']  # once per comma, not once per byte
    sc.seen = []
    asked.clear()
    sc.feed(b'+MSUB: "t",2,a,b,c\r\n')  # at once: the first complete header wins
    assert sc.seen == [(b'+MSUB: "t",2,', b"a,"), b"b,c"] and len(asked) == 2
    sc.seen = []
    sc._prompt = b">"
    sc.feed(b"\r\n> ")  # '>' with no line end, and the space after it
    sc.feed(b"OK\r\n")
    assert sc.seen == [("prompt", b">"), b"OK"]


class Clock:
    """A settable time source for the counted-read deadline."""

    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


def deadline_scanner(bufsize=32, data_max=64):
    sc = Recorder(bufsize, data_max)
    sc.clock = Clock()
    sc.gap_ms = 1000
    sc._cprefix = b"+HTTPREAD:"
    return sc


def test_a_counted_read_whose_bytes_stop_is_abandoned_and_line_mode_resumes():
    # Issue "never stranded", defect 1: a header that claims more bytes than follow, in each
    # of the three counted modes (in place, own buffer, skipped over data_max).
    for count, have in ((20, 3), (40, 10), (600, 0)):
        sc = deadline_scanner()
        sc.feed(b"+HTTPREAD: %d\r\n" % count + b"x" * have)
        sc.clock.now += 999
        sc.feed(b"y")  # still within the deadline: part of the payload
        assert sc.abandoned == 0 and sc.seen in ([], ["dropped"])
        sc.clock.now += 1001  # then silence: the count was a lie
        sc.feed(b"\r\nOK\r\n+CSQ: 20,99\r\n")
        assert sc.abandoned == 1, count
        assert sc.seen[-2:] == [b"OK", b"+CSQ: 20,99"], (count, sc.seen)
        assert EV_COUNTED_ABANDONED in sc.events
        sc.seen = []
        sc.feed(b"+HTTPREAD: 2\r\nab\r\nOK\r\n")  # and the next counted read works
        assert sc.seen == [(b"+HTTPREAD: 2", b"ab"), b"OK"], sc.seen


def test_an_abandoned_read_of_the_pending_command_fails_it_and_expire_needs_no_bytes():
    sc = deadline_scanner()
    sc.feed(b"+HTTPREAD: 50\r\nabc")
    assert not sc.expire()  # bytes came just now
    sc.clock.now += 1500
    assert sc.expire() and sc.seen == ["dropped"] and sc.abandoned == 1
    assert not sc.expire()  # line mode: nothing to give up
    sc.feed(b"OK\r\n")
    assert sc.seen == ["dropped", b"OK"]


def test_a_payload_that_keeps_coming_is_never_abandoned():
    sc = deadline_scanner(bufsize=32, data_max=4096)
    sc.feed(b"+HTTPREAD: 3000\r\n")
    for _ in range(300):
        sc.clock.now += 900  # slow, but never silent for gap_ms
        sc.feed(b"0123456789")
    assert sc.abandoned == 0 and sc.seen == [(b"+HTTPREAD: 3000", b"0123456789" * 300)]


def test_bytes_that_trickle_in_cost_no_allocation_per_read():
    # One byte per read into a partial line: space() hands the scratch buffer, not a new
    # memoryview at the read position (on the VM: measured; CPython has no heap counter).
    import gc

    class Quiet(LineScanner):
        lines = 0

        def _line(self, s, e):
            self.lines += 1

    sc = Quiet(bufsize=256)
    data = b"+CSQ: " + b"9" * 150 + b"\r\n"
    measure = getattr(gc, "mem_alloc", None)
    gc.collect()
    gc.disable()
    before = measure() if measure else 0
    for c in data:
        dst = sc.space()  # as the reader does ('sc.space()[0] = c' allocates on the VM)
        dst[0] = c
        sc.received(1)
    used = measure() - before if measure else 0
    gc.enable()
    assert sc.lines == 1 and bytes(sc._buf[6:156]) == b"9" * 150
    assert used < 256, used  # the first read only; a memoryview per read: 32 B each, 5 KB
