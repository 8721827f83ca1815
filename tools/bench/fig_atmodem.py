"""Figure 7, AT engine cost: bytes allocated per URC line and per command round trip of
lib/atmodem alone (tools/bench/vm_atmodem.py over the in-memory UART shim).

The URC row feeds 250 short no-op lines in one read, so per-read costs are spread over them:
figure 8 measures a real ``+MSUB`` downlink delivered alone, and one byte per read.
"""

from tools.bench import core
from tools.bench.context import run_vm, vm_failed

PATH = ".frozen:lib:tests_host/portable"
COMMAND = "MICROPYPATH=%s .venv/bin/micropython tools/bench/vm_atmodem.py" % PATH
# Ceilings: the figures before the layering redesign (the README's table of that time); the
# redesign must not make them grow.
URC_CEILING = 35.2
COMMAND_CEILING = 736.0


def measure(ctx, options):
    out = run_vm(["tools/bench/vm_atmodem.py"], PATH, 120)
    found = core.parse_atmodem(out.stdout)
    if "urc_bytes" not in found or "command_bytes" not in found:
        raise vm_failed("vm_atmodem", out)
    rows = [
        core.aim_row(
            "bytes allocated per URC line, 250 no-op lines in one read",
            found["urc_bytes"],
            "B",
            URC_CEILING,
            "ceiling %.1f B (before the redesign); of which the test UART shim %.1f B"
            % (URC_CEILING, found.get("urc_shim_bytes", 0)),
            "%d us each" % found.get("urc_us", 0),
        ),
        core.aim_row(
            "bytes allocated per command round trip (AT -> OK)",
            found["command_bytes"],
            "B",
            COMMAND_CEILING,
            "ceiling %.0f B (before the redesign); of which the test UART shim %.1f B"
            % (COMMAND_CEILING, found.get("command_shim_bytes", 0)),
            "%d us each" % found.get("command_us", 0),
        ),
    ]
    return rows, found
