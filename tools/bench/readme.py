"""``python -m tools.bench.readme``: the README's benchmark table, from ``build/bench.json``.

The table sits between two marker comments in README.md (``BEGIN`` and ``END`` below); the
text there is replaced by the table ``make bench`` last wrote, never typed by hand.
``--check`` changes nothing and exits 1 if the README's table differs from the JSON's.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from tools.bench import FIGURES, core

BEGIN = "<!-- bench-table: begin (python -m tools.bench.readme writes it) -->"
END = "<!-- bench-table: end -->"
SUMMARY = "Measured on %d cores, Python %s, %s, in %.0f s (%s)."
SUMMARY_RE = re.compile(r"^Measured on \d+ cores, Python \S+, \S+, in \d+ s \(\S+\)\.$")


def table(report):
    """The lines between the markers: the run's summary line, a blank line, the table."""
    machine = report["machine"]
    summary = SUMMARY % (
        machine["cpus"],
        machine["python"],
        machine["system"],
        report["seconds"],
        report["when"],
    )
    return [summary, ""] + core.markdown(report["figures"])


def section(text):
    """The lines between the markers of ``text`` (ValueError unless there is one pair)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError("README: need exactly one %r and one %r" % (BEGIN, END))
    inner = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    if inner.count("\n") < 1:
        raise ValueError("README: the markers must be on lines of their own")
    return inner.strip("\n").split("\n")


def replace(text, lines):
    """``text`` with the lines between the markers replaced by ``lines``."""
    section(text)  # the markers are there, once each
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail


def cells(line):
    """The cells of a Markdown table row (``\\|`` is a bar inside a cell)."""
    parts = re.split(r"(?<!\\)\|", line)
    if len(parts) < 3 or parts[0].strip() or parts[-1].strip():
        raise ValueError("not a table row: %r" % line)
    return [p.strip() for p in parts[1:-1]]


def missing_figures(report):
    """The figures of ``FIGURES`` that the report lacks or that failed (``FIGURE=name make
    bench`` writes only some)."""
    done = {(f["id"], f["title"]) for f in report["figures"] if f["rows"] and not f["error"]}
    return [name for name, f in FIGURES.items() if (f.number, f.title) not in done]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.readme", description=__doc__)
    p.add_argument("--json", default="build/bench.json", help="the figures (make bench)")
    p.add_argument("--readme", default="README.md", help="the file with the markers")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if different")
    args = p.parse_args(argv)
    report = json.loads(Path(args.json).read_text())
    missing = missing_figures(report)
    if missing:
        print(
            "%s lacks %s: the README's table comes from a full make bench"
            % (args.json, ", ".join(missing)),
            file=sys.stderr,
        )
        return 2
    readme = Path(args.readme)
    text = readme.read_text()
    new = replace(text, table(report))
    if args.check:
        same = new == text
        print("%s: the benchmark table %s" % (readme, "matches" if same else "differs"))
        return 0 if same else 1
    readme.write_text(new)
    print("%s: benchmark table from %s (%s)" % (readme, args.json, report["when"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
