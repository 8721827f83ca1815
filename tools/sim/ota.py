"""``SIM_OTA=1 make sim``: once the device is online, update it to a version 1.1.0 (OTA).

The new version is the current build with ``firmware/app.py`` at ``VERSION = "1.1.0"``
(tools/otademo.py); its package sends only what changed against the build the device runs. The
log then shows each step: the push, the ranged download, the progress reports, the reset (the
sim starts the firmware again), the trial and the new version's report.
"""

import os

from tools.cloud.ota import build_package
from tools.otademo import make_version
from tools.sim.board import FIRMWARE_HEAP, OTA_HEAP
from tools.sim.proc import ROOT

HEAP = OTA_HEAP  # an update's download and install beside the online session (README)


def heapsize(options):
    """The VM heap for the sim: ``HEAP`` for the OTA demo unless --heapsize said otherwise."""
    return HEAP if options.ota and options.heapsize == FIRMWARE_HEAP else options.heapsize


def ota_demo(sim):
    """Build, add and deploy version 1.1.0 to the sim's device."""
    pk, dn = sim.device["productKey"], sim.device["deviceName"]
    build = make_version(os.path.join(sim.workdir, "build-1.1.0"), "1.1.0")
    pkg = os.path.join(sim.workdir, "app-1.1.0.bin")
    manifest = build_package(build, "1.1.0", pkg, ROOT / "build")
    sim.say(
        "ota: package 1.1.0, %d B, %d of %d files sent"
        % (manifest["size"], manifest["changed"], len(manifest["files"]))
    )
    sim.cloud.cli("ota", "add", pk, pkg, "--version", "1.1.0")
    sim.cloud.cli("ota", "deploy", pk, "1.1.0", "--device", dn)
    sim.say("ota: 1.1.0 deployed to %s (aliyun-local ota status shows the job)" % dn)
