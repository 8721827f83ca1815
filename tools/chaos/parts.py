"""The stack parts the chaos run drives, from tools/sim (cloud, emulator, firmware, errors)."""

from tools.sim.board import FIRMWARE_HEAP, Firmware  # noqa: F401
from tools.sim.parts import DEFAULT_IMEI, Cloud, Emulator, device_config  # noqa: F401
from tools.sim.proc import ROOT, SimError  # noqa: F401
