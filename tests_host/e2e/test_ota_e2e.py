"""Updates over the air, end to end: the firmware (128 KB heap, .mpy) on the VM, the emulated
Air724UG and the local cloud. A board reset is the VM's exit (status 3 after a switch, 1 after
a crash); the test starts the same board folder again, as the chip would boot."""

import json
import time

import pytest

from tools import simkit
from tools.cloud.ota import build_package
from tools.otademo import make_version

from .harness import WAIT

RESET_EXIT = 3  # aliyun.otaagent.RESET_EXIT


class Ota:
    """The OTA side of a test: packages, deploy, the job as ``ota status`` shows it."""

    def __init__(self, stack, tmp_path):
        self.stack = stack
        self.tmp = tmp_path
        self.pk = stack.product["productKey"]
        self.dn = stack.device["deviceName"]

    def add(self, version, append=None, sign_method="Md5", base=True, corrupt=None):
        build = make_version(self.tmp / ("build-" + version), version, append)
        pkg = self.tmp / ("app-%s.bin" % version)
        base_dir = simkit.ROOT / "build" if base else None
        manifest = build_package(build, version, pkg, base_dir)
        if corrupt is not None:  # a package whose content no longer fits its digests
            blob = bytearray(pkg.read_bytes())
            blob[corrupt] ^= 0xFF
            pkg.write_bytes(bytes(blob))
        self.stack.cloud.cli("ota", "add", self.pk, str(pkg), "--version", version,
                             "--sign-method", sign_method)  # fmt: skip
        return manifest

    def deploy(self, version):
        return self.stack.cloud.cli("ota", "deploy", self.pk, version, "--device", self.dn)

    def job(self):
        (row,) = self.stack.cloud.cli("ota", "status", "--product", self.pk)
        return row


def boot_again(stack, status):
    """The VM exited with ``status`` (a reset): start the same board again."""
    assert stack.firmware.proc.wait_exit(WAIT) == status, stack.firmware.proc.tail()
    stack.firmware.start()


@pytest.fixture
def ota(stack, tmp_path):
    stack.start(ota_trial_s=10)
    stack.wait_device(r" I application 1\.0\.0 \(factory set\)")
    stack.wait_device(r" I state online")
    return Ota(stack, tmp_path)


def test_update_downloaded_verified_switched_and_confirmed(stack, ota):
    inform = "/ota/device/inform/%s/%s" % (ota.pk, ota.dn)
    stack.wait_row(type="up", topic=inform, status="200")
    manifest = ota.add("1.1.0")
    assert 0 < manifest["changed"] < len(manifest["files"])  # app.mpy, the rest copied
    ota.deploy("1.1.0")
    stack.wait_device(r" I ota: package verified \(Md5\)")
    stack.wait_device(r" I ota: \d+ files installed in ota/s0, trial of 1\.1\.0")
    boot_again(stack, RESET_EXIT)
    stack.wait_device(r" I application 1\.1\.0 \(slot s0\)")
    stack.wait_device(r" I ota: 1\.1\.0 confirmed", timeout=WAIT + 10)
    wait_up(stack, "/ota/device/inform/%s/%s" % (ota.pk, ota.dn), '"1.1.0"')
    job = ota.job()
    assert job["state"] == "upgraded"
    assert job["versions"]["app"] == "1.1.0" and job["versions"]["air724"]
    assert job["served"] == manifest["size"]  # every byte fetched once
    state = json.loads((stack.firmware.board_dir / "ota" / "state.json").read_text())
    assert state["status"] == "confirmed" and state["version"] == "1.1.0"


def wait_up(stack, topic, text, timeout=WAIT):
    """The first uplink row on ``topic`` (suffix) whose content holds ``text``."""
    deadline = time.monotonic() + timeout
    since = 0
    while True:
        left = max(0.1, deadline - time.monotonic())
        row = stack.rows.wait(timeout=left, since=since, type="up", topic=topic)
        if text in (row["content"] or ""):
            return row
        since = stack.rows.rows.index(row) + 1
