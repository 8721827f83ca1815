"""The cloud's message log as it arrives, for waits in the end-to-end tests and the benchmark."""

import json
import threading
import time


class RowLog:
    """The cloud's message-log rows, as ``log --follow --json`` delivers them (``add`` is the
    follower's callback); the end-to-end tests and the benchmark wait on them."""

    def __init__(self):
        self.rows = []
        self._cond = threading.Condition()

    def add(self, row):
        with self._cond:
            self.rows.append(row)
            self._cond.notify_all()

    def matching(self, **fields):
        """Rows whose fields equal ``fields``; ``topic`` matches as a suffix."""
        with self._cond:
            rows = list(self.rows)
        return [row for row in rows if row_matches(row, fields)]

    def wait(self, timeout=60, since=0, **fields):
        """The first row from index ``since`` on matching ``fields``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self.rows):
                    if row_matches(self.rows[index], fields):
                        return self.rows[index]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join("  " + json.dumps(r) for r in self.rows[-15:])
                    message = "no cloud log row %s in %g s:\n%s" % (fields, timeout, tail)
                    raise AssertionError(message)
                self._cond.wait(left)


def row_matches(row, fields):
    """``fields`` equal the row's (as text); ``topic`` matches as a suffix."""
    for key, want in fields.items():
        have = row.get(key)
        if key == "topic":
            if not (have or "").endswith(want):
                return False
        elif str(have) != str(want):
            return False
    return True
