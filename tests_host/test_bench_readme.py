"""The README's benchmark table has the form tools/bench/readme.py writes (not its values)."""

import re

import pytest

from tools.bench import FIGURES, core, readme
from tools.sim.proc import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_has_one_generated_table_between_the_markers():
    lines = readme.section(README)
    assert readme.SUMMARY_RE.match(lines[0]), lines[0]
    assert lines[1] == ""
    assert tuple(lines[2:4]) == core.MARKDOWN_HEADER
    rows = [readme.cells(line) for line in lines[4:]]
    assert rows and all(len(r) == len(readme.cells(core.MARKDOWN_HEADER[0])) for r in rows)


def test_every_figure_of_the_table_is_in_the_readme_in_order():
    rows = [readme.cells(line) for line in readme.section(README)[4:]]
    titles = [r[0] for r in rows if r[0]]
    expected = ["%d. %s" % (f.number, f.title) for f in FIGURES.values()]
    assert titles == sorted(expected, key=lambda t: int(t.split(".")[0]))
    for r in rows:  # a value, or n/a; a ratio is a number or empty
        assert r[2] and (r[4] == "" or re.fullmatch(r"-?\d+\.\d\d|\d\.\de-\d\d", r[4])), r


def report(figures):
    machine = {"cpus": 2, "python": "3.11.7", "system": "Linux"}
    return {
        "machine": machine,
        "seconds": 42.4,
        "when": "2026-12-01T21:00:00+0000",
        "figures": figures,
    }


def test_the_generator_replaces_only_the_text_between_the_markers():
    figures = [
        {
            "id": 3,
            "title": "Throughput",
            "command": "x",
            "rows": [core.bound_row("QoS0 | bare", 45.0, "publishes/s", 52.4, "UART bound")],
        }
    ]
    text = "intro\n%s\nold table\n%s\nafter\n" % (readme.BEGIN, readme.END)
    new = readme.replace(text, readme.table(report(figures)))
    assert new.startswith("intro\n" + readme.BEGIN + "\n") and new.endswith(
        readme.END + "\nafter\n"
    )
    lines = readme.section(new)
    assert (
        lines[0]
        == "Measured on 2 cores, Python 3.11.7, Linux, in 42 s (2026-12-01T21:00:00+0000)."
    )
    assert readme.cells(lines[4]) == [
        "3. Throughput",
        "QoS0 \\| bare",
        "45.0",
        "publishes/s",
        "0.86",
        "UART bound",
    ]
    assert readme.replace(new, readme.table(report(figures))) == new


def test_markers_missing_or_twice_are_refused():
    with pytest.raises(ValueError):
        readme.section("no markers")
    with pytest.raises(ValueError):
        readme.section((readme.BEGIN + "\n" + readme.END + "\n") * 2)


def test_a_partial_or_failed_run_is_not_put_into_the_readme():
    figures = [
        {"id": f.number, "title": f.title, "command": "x", "rows": [core.row("m", 1, "B")]}
        for f in FIGURES.values()
    ]
    for f in figures:
        f["error"] = ""
    assert readme.missing_figures(report(figures)) == []
    figures[2]["error"] = "BenchError: no cloud"
    assert readme.missing_figures(report(figures[:-1])) == [list(FIGURES)[2], list(FIGURES)[-1]]
