"""``python -m tools.tsl_table TSL.json -o TABLE.py``: a TSL file → the device's check table.

The device never parses the TSL (a console export is tens of KB of JSON with names and
descriptions); it imports a small generated module instead, compiled by mpy-cross like every
other on-target file. The module holds only what the checks need (``aliyun.tsl`` reads it)::

    P = {"Temp": ("f", -40.0, 120.0), "Mode": ("e", (0, 1, 2)), …}   # properties
    RO = ("Uptime", …)                                             # read-only properties
    S = {"Reboot": (True, {inputs}, {outputs}), …}                 # services: (sync, in, out)
    E = {"Alarm": {outputs}, …}                                    # events: output data

A value spec is a tuple, first the kind: ``("i", min, max)`` int, ``("f", min, max)``
float/double, ``("e", values)`` enum, ``("b",)`` bool, ``("t", length)`` text, ``("d",)`` date,
``("s", {member: spec})`` struct, ``("a", size, item spec)`` array. Unset bounds are None.
"""

import argparse
import json
import sys
from pathlib import Path

from tools.cloud import tsl

_WIDTH = 99  # the project's line length
_HEADER = (
    '"""The thing model\'s checks, generated from %s by ``python -m tools.tsl_table``.\n\n'
    'Do not edit: export the TSL again and regenerate (README, example application)."""\n\n'
)


def spec_of(compiled: dict) -> tuple:
    """The compact tuple of one compiled dataType (see the module docstring)."""
    kind = compiled["type"]
    if kind == "int":
        return ("i", compiled["min"], compiled["max"])
    if kind in ("float", "double"):
        low, high = compiled["min"], compiled["max"]
        return ("f", None if low is None else float(low), None if high is None else float(high))
    if kind == "enum":
        return ("e", tuple(compiled["values"]))
    if kind == "bool":
        return ("b",)
    if kind == "text":
        return ("t", compiled["length"])
    if kind == "date":
        return ("d",)
    if kind == "struct":
        return ("s", {k: spec_of(v) for k, v in compiled["members"].items()})
    return ("a", compiled["size"], spec_of(compiled["item"]))


def table(model: dict) -> dict:
    """``{"P", "RO", "S", "E"}`` of a compiled TSL model."""
    props = model["properties"]
    return {
        "P": {k: spec_of(v) for k, v in props.items()},
        "RO": tuple(k for k, v in props.items() if v["access"] != "rw"),
        "S": {
            k: (v["callType"] == "sync", _specs(v["input"]), _specs(v["output"]))
            for k, v in model["services"].items()
        },
        "E": {k: _specs(v["output"]) for k, v in model["events"].items()},
    }


def _specs(params: dict) -> dict:
    return {k: spec_of(v) for k, v in params.items()}


def render(model: dict, source: str) -> str:
    """The table module's text (plain literals: ``repr`` of tuples, dicts, numbers, strings)."""
    lines = [_HEADER % source]
    for name, value in table(model).items():
        lines.append("%s = %s\n" % (name, _top(value)))
    return "".join(lines)


def _lit(value) -> str:
    """A Python literal of a table value (double-quoted strings, as ruff formats them)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        inner = ", ".join(_lit(v) for v in value)
        return "(%s,)" % inner if len(value) == 1 else "(%s)" % inner
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s: %s" % (_lit(k), _lit(v)) for k, v in value.items())
    return repr(value)


def _row(key: str, value, indent="    ") -> str:
    """One ``key: value,`` line, or the value's items on lines of their own when too long."""
    line = "%s%s%s,\n" % (indent, key, _lit(value))
    if len(line) <= _WIDTH or not isinstance(value, (tuple, dict)) or not value:
        return line
    inner = indent + "    "
    if isinstance(value, tuple):
        rows = "".join(_row("", v, inner) for v in value)
        return "%s%s(\n%s%s),\n" % (indent, key, rows, indent)
    rows = "".join(_row(_lit(k) + ": ", v, inner) for k, v in value.items())
    return "%s%s{\n%s%s},\n" % (indent, key, rows, indent)


def _top(value) -> str:
    """One entry a line for the top-level dicts and tuples."""
    if not value:
        return _lit(value)
    if isinstance(value, dict):
        return "{\n%s}" % "".join(_row(_lit(k) + ": ", v) for k, v in value.items())
    if len(value) == 1:
        return _lit(value)
    return "(\n%s)" % "".join("    %s,\n" % _lit(v) for v in value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.tsl_table", description=__doc__.split("\n")[0]
    )
    parser.add_argument("tsl", help="TSL JSON (console export or `aliyun-local tsl export`)")
    parser.add_argument("-o", "--output", help="table module to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        _doc, model = tsl.load(Path(args.tsl).read_text(encoding="utf-8"))
    except (OSError, tsl.TslError) as exc:
        print("tsl_table: %s: %s" % (args.tsl, exc), file=sys.stderr)
        return 1
    text = render(model, Path(args.tsl).name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
