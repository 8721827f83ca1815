"""The AT engine's byte scanner (lib/atmodem/scanner.py) fed bytes directly, no tasks: line
cutting, noise, overlong lines, counted reads in place / in their own buffer / skipped, and the
data prompt."""

from atmodem import EV_DATA_DROPPED, EV_OVERFLOW
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
        self.seen.append((bytes(self._head), bytes(payload)))

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

    def header(head):  # '+MSUB: "t",<n>,' then n bytes at once
        h = bytes(head)
        j = h.find(b",", 11)
        return None if j < 0 else (j + 1, int(h[11:j]))

    sc._inline.append((b"+MSUB:", "urc", header))  # as atmodem.pending.add_urc files it
    feed_bytewise(sc, b'+MSUB: "t",3,a\r\n\r\nOK\r\n')
    assert sc.seen == [(b'+MSUB: "t",3,', b"a\r\n"), b"OK"]
    sc.seen = []
    sc._prompt = b">"
    sc.feed(b"\r\n> ")  # '>' with no line end, and the space after it
    sc.feed(b"OK\r\n")
    assert sc.seen == [("prompt", b">"), b"OK"]
