"""``python -m tools.sim``: the options of ``make sim`` (flags and ``SIM_*`` variables)."""

import argparse
import os
import signal

from tools.sim import run
from tools.sim.board import FIRMWARE_HEAP
from tools.sim.run import Sim

DESCRIPTION = run.__doc__.split("\n")[0]
# The heap of a --source run: the VM compiles every module at import (measured: online at 192k,
# MemoryError below).
SOURCE_HEAP = "192k"


def _env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def _env(name, default):
    return os.environ.get(name, default)


# (flag, argparse keywords, default read when the parser is built: the SIM_* variables)
OPTIONS = (
    (
        "--seconds",
        {"type": int, "help": "stop after N seconds (default $SIM_SECONDS; 0: until Ctrl-C)"},
        lambda: _env_int("SIM_SECONDS", 0),
    ),
    (
        "--auth",
        {
            "choices": ("direct", "http", "dynreg"),
            "help": "device authentication (default $SIM_AUTH or direct)",
        },
        lambda: _env("SIM_AUTH", "direct"),
    ),
    (
        "--no-tls",
        {
            "dest": "tls",
            "action": "store_false",
            "help": "plain MQTT over TCP (securemode=3) instead of TLS",
        },
        None,
    ),
    (
        "--profile",
        {
            "choices": ("fast", "realistic"),
            "help": "emulator timing profile (default $SIM_PROFILE or fast)",
        },
        lambda: _env("SIM_PROFILE", "fast"),
    ),
    (
        "--interval",
        {"type": int, "help": "telemetry_interval_s of the generated config.json (default 10)"},
        lambda: 10,
    ),
    (
        "--every",
        {"type": float, "help": "seconds between downlinks once online (default 5)"},
        lambda: 5.0,
    ),
    (
        "--heapsize",
        {
            "help": "MicroPython heap (default %s; %s with --source: compiling the sources on "
            "the device needs the room)" % (FIRMWARE_HEAP, SOURCE_HEAP)
        },
        None,
    ),
    (
        "--source",
        {
            "action": "store_true",
            "help": "run the firmware from .py sources instead of the mpy-cross build",
        },
        None,
    ),
    (
        "--name-from-imei",
        {
            "action": "store_true",
            "help": "leave device_name empty: the firmware uses the module's IMEI",
        },
        None,
    ),
    (
        "--at",
        {"action": "store_true", "help": "show the AT transcript of the UART too (or $SIM_AT=1)"},
        lambda: bool(os.environ.get("SIM_AT")),
    ),
    (
        "--ota",
        {"action": "store_true", "help": "once online, update the device over the air to 1.1.0"},
        lambda: bool(os.environ.get("SIM_OTA")),
    ),
    ("--keep", {"action": "store_true", "help": "keep the temporary folder"}, None),
)


class _Parser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        options = super().parse_args(args, namespace)
        if options.heapsize is None:  # not given: the heap the chosen build needs
            options.heapsize = SOURCE_HEAP if options.source else FIRMWARE_HEAP
        return options


def build_parser():
    p = _Parser(prog="python -m tools.sim", description=DESCRIPTION)
    for flag, keywords, default in OPTIONS:
        if default is not None:
            keywords = dict(keywords, default=default())
        p.add_argument(flag, **keywords)
    return p


def main(argv=None):
    options = build_parser().parse_args(argv)
    if options.auth == "http" and not options.tls:
        raise SystemExit("--auth http connects over TLS only")

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    sim = Sim(options)
    try:
        return sim.run()
    finally:
        sim.cleanup()
