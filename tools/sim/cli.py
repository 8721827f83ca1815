"""``python -m tools.sim``: the options of ``make sim`` (flags and ``SIM_*`` variables)."""

import argparse
import os
import signal

from tools.sim.board import FIRMWARE_HEAP
from tools.sim.run import Sim


def _env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tools.sim", description=__doc__.split("\n")[0])
    p.add_argument(
        "--seconds",
        type=int,
        default=_env_int("SIM_SECONDS", 0),
        help="stop after N seconds (default $SIM_SECONDS; 0: until Ctrl-C)",
    )
    p.add_argument(
        "--auth",
        choices=("direct", "http", "dynreg"),
        default=os.environ.get("SIM_AUTH", "direct"),
        help="device authentication (default $SIM_AUTH or direct)",
    )
    p.add_argument(
        "--no-tls",
        dest="tls",
        action="store_false",
        help="plain MQTT over TCP (securemode=3) instead of TLS",
    )
    p.add_argument(
        "--profile",
        choices=("fast", "realistic"),
        default=os.environ.get("SIM_PROFILE", "fast"),
        help="emulator timing profile (default $SIM_PROFILE or fast)",
    )
    p.add_argument(
        "--interval",
        type=int,
        default=10,
        help="telemetry_interval_s of the generated config.json (default 10)",
    )
    p.add_argument(
        "--every",
        type=float,
        default=5.0,
        help="seconds between downlinks once online (default 5)",
    )
    p.add_argument(
        "--heapsize",
        default=FIRMWARE_HEAP,
        help="MicroPython heap (default %s)" % FIRMWARE_HEAP,
    )
    p.add_argument(
        "--source",
        action="store_true",
        help="run the firmware from .py sources instead of the mpy-cross build",
    )
    p.add_argument(
        "--name-from-imei",
        action="store_true",
        help="leave device_name empty: the firmware uses the module's IMEI",
    )
    p.add_argument(
        "--at",
        action="store_true",
        default=bool(os.environ.get("SIM_AT")),
        help="show the AT transcript of the UART too (or $SIM_AT=1)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
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
