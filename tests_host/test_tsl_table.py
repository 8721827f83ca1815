"""``tools.tsl_table``: a TSL file → the device's check table (small, no JSON on the device)."""

import subprocess
import sys
from pathlib import Path

from tools import tsl_table
from tools.cloud import tsl

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [  # (TSL, committed table): both must be regenerated together
    (ROOT / "firmware" / "tsl.json", ROOT / "firmware" / "tsl_table.py"),
    (
        ROOT / "tests_host" / "tsl_all_types.json",
        ROOT / "tests_host" / "portable" / "tsl_all_types_table.py",
    ),
]


def test_committed_tables_match_their_tsl():
    for source, table in PAIRS:
        model = tsl.load(source.read_text())[1]
        assert table.read_text() == tsl_table.render(model, source.name), table


def test_table_holds_what_the_checks_need():
    model = tsl.load(PAIRS[1][0].read_text())[1]
    namespace = {}
    exec(tsl_table.render(model, "x.json"), namespace)  # plain literals only
    assert namespace["P"]["Point"] == ("s", {"x": ("i", -10, 10), "name": ("t", 4)})
    assert namespace["P"]["Track"] == ("a", 2, ("s", {"t": ("f", 0.0, 100.0)}))
    assert namespace["P"]["Temp"] == ("f", -40.0, 120.0) and namespace["P"]["Power"] == ("b",)
    assert namespace["RO"] == ("Serial",)
    assert namespace["S"]["Query"][0] is True and namespace["S"]["Calibrate"][0] is False
    assert set(namespace["E"]) == {"Overheat"}


def test_cli_writes_the_table_and_refuses_a_bad_tsl(tmp_path):
    out = tmp_path / "table.py"
    cmd = [sys.executable, "-m", "tools.tsl_table", str(PAIRS[0][0]), "-o", str(out)]
    assert subprocess.run(cmd, cwd=ROOT).returncode == 0
    assert out.read_text() == PAIRS[0][1].read_text()
    bad = tmp_path / "bad.json"
    bad.write_text('{"properties": [{"identifier": "X", "dataType": {"type": "long"}}]}')
    proc = subprocess.run(
        [sys.executable, "-m", "tools.tsl_table", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "type 'long'" in proc.stderr
