"""The one log of ``make sim``: every source's lines, time-stamped and prefixed."""

import re
import sys
import threading
import time

SOURCES = ("device", "module", "cloud", "sim")
_COLOURS = {"device": "32", "module": "33", "cloud": "36", "sim": "35"}
_TRANSCRIPT = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (\*\*\*|-->|<--) ?(.*)$")
_PREVIEW = 110


class Console:
    """One log for every source: ``HH:MM:SS.mmm source | text`` (coloured on a terminal)."""

    def __init__(self, out=None, colour=None, show_at=False):
        self.out = out or sys.stdout
        self.colour = self.out.isatty() if colour is None else colour
        self.show_at = show_at
        self.quiet = set()  # sources muted (the cloud and module while shutting down)
        self._lock = threading.Lock()

    def line(self, source, text, when=None):
        if source in self.quiet:
            return
        now = time.time() if when is None else when
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)
        label = "%-6s" % source
        if self.colour:
            label = "\x1b[%sm%s\x1b[0m" % (_COLOURS.get(source, "0"), label)
        with self._lock:
            self.out.write("%s %s | %s\n" % (stamp, label, text))
            self.out.flush()

    def proc_line(self, source, stream, text):
        """``on_line`` of the child processes."""
        if not text.strip():
            return
        if source == "module":
            match = _TRANSCRIPT.match(text)
            if match:
                arrow, body = match.groups()
                if arrow != "***" and not self.show_at:
                    return  # the AT transcript: shown with --at
                if body.startswith("ready: {"):
                    return  # the sim reports the emulator's readiness itself
                text = body if arrow == "***" else arrow + " " + body
        self.line(source, text)


def shorten(topic, pk, dn):
    """A topic without the device's own prefix: ``thing/event/property/post``, ``user/get``."""
    if not topic:
        return "-"
    for prefix in ("/sys/%s/%s/" % (pk, dn), "/%s/%s/" % (pk, dn)):
        if topic.startswith(prefix):
            return topic[len(prefix) :]
    return topic


def preview(text):
    text = (text or "").replace("\n", " ")
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def format_row(row, pk, dn):
    """A cloud message-log row as one line, or None for other devices' rows."""
    if row.get("deviceName") not in (dn, None) or row.get("productKey") not in (pk, None):
        return None
    kind, status, topic = row["type"], row["status"], shorten(row.get("topic"), pk, dn)
    if kind == "status":
        if status in ("online", "offline", "kicked"):
            return "device %s" % status
        if row.get("topic"):
            return "subscribe %s: %s" % (topic, status)
        return "%s: %s" % (status, preview(row.get("content")))
    if kind in ("up", "down"):
        return "%-4s %s %s  [%s]" % (kind, topic, preview(row.get("content")), status)
    return "%s %s" % (kind, preview(row.get("content")))
