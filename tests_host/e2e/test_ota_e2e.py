"""Updates over the air, end to end: the firmware (.mpy) on the VM, the emulated Air724UG and
the local cloud. A board reset is the VM's exit (status 3 after a switch, 1 after a crash); the
test starts the same board folder again, as the chip would boot.

Heap: ``tools.sim.board.OTA_HEAP`` (or ``E2E_HEAPSIZE``): the download and the install beside
the online session need more than FIRMWARE_HEAP leaves on this 64-bit port (README, Updating
devices: RAM)."""

import json
import os
import time

import pytest

from tools.cloud.ota import build_package
from tools.otademo import make_version
from tools.sim.board import OTA_HEAP
from tools.sim.proc import ROOT

from .harness import WAIT

RESET_EXIT = 3  # aliyun.otaagent.RESET_EXIT
# A build that never comes online: its bring-up always fails.
BROKEN_BRINGUP = """
async def bring_up(s, remedy):
    raise OSError("this build never connects")
"""


def inside_a_file(blob, manifest):
    """An offset in the middle of the biggest file's bytes in the package (not a header)."""
    entry = max((e for e in manifest["files"] if e["sent"]), key=lambda e: e["size"])
    line = ("F %d %s %s\n" % (entry["size"], entry["sha256"], entry["path"])).encode()
    return bytes(blob).index(line) + len(line) + entry["size"] // 2


class Ota:
    """The OTA side of a test: packages, deploy, the job as ``ota status`` shows it."""

    def __init__(self, stack, tmp_path):
        self.stack = stack
        self.tmp = tmp_path
        self.pk = stack.product["productKey"]
        self.dn = stack.device["deviceName"]

    def add(self, version, append=None, sign_method="Md5", base=True, corrupt=False):
        build = make_version(self.tmp / ("build-" + version), version, append)
        pkg = self.tmp / ("app-%s.bin" % version)
        base_dir = ROOT / "build" if base else None
        manifest = build_package(build, version, pkg, base_dir)
        if corrupt:  # a package whose content no longer fits its digests
            blob = bytearray(pkg.read_bytes())
            blob[inside_a_file(blob, manifest)] ^= 0xFF
            pkg.write_bytes(bytes(blob))
        self.stack.cloud.cli("ota", "add", self.pk, str(pkg), "--version", version,
                             "--sign-method", sign_method)  # fmt: skip
        return manifest

    def deploy(self, version):
        return self.stack.cloud.cli("ota", "deploy", self.pk, version, "--device", self.dn)

    def job(self):
        (row,) = self.stack.cloud.cli("ota", "status", "--product", self.pk)
        return row


def start(stack, emulator_args=()):
    """Cloud, emulator and firmware, the firmware at ``OTA_HEAP`` with a 10 s trial."""
    stack.start_cloud()
    stack.start_emulator(args=emulator_args)
    heap = os.environ.get("E2E_HEAPSIZE", OTA_HEAP)
    stack.start_firmware(stack.config(ota=True, ota_trial_s=10), heapsize=heap)


def boot_again(stack, status):
    """The VM exited with ``status`` (a reset): start the same board again."""
    assert stack.firmware.proc.wait_exit(WAIT) == status, stack.firmware.proc.tail()
    stack.firmware.start()


@pytest.fixture
def ota(stack, tmp_path):
    start(stack)
    stack.wait_device(r" I application 1\.0\.0$")
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
    stack.wait_device(r" I application 1\.1\.0$")
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


def served(stack):
    """Body bytes the module received over HTTP (the emulator's count, across reboots)."""
    return stack.emulator.ctl("status")["state"]["http_served"]


def test_link_cut_at_half_and_a_module_reboot_resume_the_download(stack, tmp_path):
    # A full package (every file sent: about 80 KB, 8 KB chunks). The emulator cuts the link
    # (PDP context down) half-way through the chunk at the middle and reboots the module when
    # the device asks for the last-but-one chunk; the device resumes at the last complete chunk.
    build = make_version(tmp_path / "build-1.1.0", "1.1.0")
    size = build_package(build, "1.1.0", tmp_path / "size.bin")["size"]
    half = size // 2 // 8192 * 8192
    late = (size - 1) // 8192 * 8192 - 8192
    assert 0 < half < late
    scenario = tmp_path / "cuts.json"
    events = [
        {"after": r'^AT\+HTTPPARA="BREAK",%d$' % half, "do": "http_cut", "bytes": 4096, "pdp": 1},
        {"after": r'^AT\+HTTPPARA="BREAK",%d$' % late, "do": "reboot"},
    ]
    scenario.write_text(json.dumps({"events": events}))
    start(stack, ("--scenario", str(scenario)))
    stack.wait_device(r" I state online")
    ota = Ota(stack, tmp_path)
    assert ota.add("1.1.0", base=False)["size"] == size
    ota.deploy("1.1.0")
    stack.wait_device(r" I ota: download 1\.1\.0 from byte 0 of %d" % size)
    stack.wait_device(r" I ota: download 1\.1\.0 from byte %d of %d" % (half, size))
    stack.wait_device(r" I ota: download 1\.1\.0 from byte %d of %d" % (late, size))
    stack.wait_device(r" I ota: \d+ files installed in ota/s0, trial of 1\.1\.0")
    fetched = served(stack)
    assert size + 4096 <= fetched <= size + 4096 + 8192, (fetched, size)  # not from zero
    boot_again(stack, RESET_EXIT)
    stack.wait_device(r" I ota: 1\.1\.0 confirmed", timeout=WAIT + 10)
    wait_up(stack, "/ota/device/inform/%s/%s" % (ota.pk, ota.dn), '"1.1.0"')
    assert ota.job()["state"] == "upgraded"


@pytest.mark.parametrize(
    ("phase", "trigger"),
    [
        ("download", r" I ota: download 1\.1\.0 from byte 0 "),
        ("verified", r" I ota: package verified"),
        ("switched", r" I ota: \d+ files installed in ota/s0"),
        ("trial", r" I application 1\.1\.0$"),
    ],
    ids=["download", "install", "switched", "trial"],
)
def test_power_cut_at_each_phase_boots_a_complete_version(stack, ota, phase, trigger):
    ota.add("1.1.0", base=False)
    ota.deploy("1.1.0")
    if phase == "trial":
        stack.wait_device(r" I ota: reset")
        boot_again(stack, RESET_EXIT)
    stack.wait_device(trigger)
    stack.firmware.proc.popen.kill()  # the power goes, wherever the firmware is
    stack.firmware.proc.wait_exit(WAIT)
    stack.firmware.start()
    booted = stack.wait_device(r" I application (\S+)$")
    expected = {"download": "1.0.0", "verified": "1.0.0", "switched": "1.1.0", "trial": "1.0.0"}
    assert booted.group(1) == expected[phase]
    state_file = stack.firmware.board_dir / "ota" / "state.json"
    slot = json.loads(state_file.read_text())["slot"] if state_file.exists() else None
    assert (slot == "s0") == (expected[phase] == "1.1.0")  # the code and the state agree
    stack.wait_device(r" I state online")
    if phase == "trial":  # killed before it was confirmed: rolled back, reported, not retried
        report = wait_up(stack, "/ota/device/progress/%s/%s" % (ota.pk, ota.dn), '"-1"')
        assert "reset before the trial ended" in report["content"]
        assert ota.job()["state"] == "failed"
        return
    if phase != "switched":  # the job goes on from where it was
        stack.wait_device(r" I ota: \d+ files installed in ota/s0, trial of 1\.1\.0")
        boot_again(stack, RESET_EXIT)
    stack.wait_device(r" I ota: 1\.1\.0 confirmed", timeout=WAIT + 10)


def test_corrupt_packages_are_refused_with_step_minus_3(stack, ota):
    progress = "/ota/device/progress/%s/%s" % (ota.pk, ota.dn)
    size = ota.add("1.1.0", base=False)["size"]
    stack.fault("http_corrupt", offset=size // 2)  # one byte flipped on the way
    ota.deploy("1.1.0")
    row = wait_up(stack, progress, '"-3"')
    assert "sign mismatch" in row["content"]
    job = ota.job()
    assert job["state"] == "failed" and job["step"] == -3
    # Built wrong (its sign fits what is sent, one file does not fit its digest).
    ota.add("1.1.1", base=False, corrupt=True)
    ota.deploy("1.1.1")
    row = wait_up(stack, progress, "digest mismatch")
    assert '"-3"' in row["content"]
    stack.user_get("still here")  # the old version serves on, online
    stack.wait_row(type="up", topic="/user/update")
    assert not (stack.firmware.board_dir / "ota" / "state.json").exists()


@pytest.mark.parametrize(
    ("fault", "append", "reason"),
    [
        ("import", {"firmware/app.py": 'raise RuntimeError("broken build")'},
         "reset before the trial ended"),
        ("offline", {"lib/aliyun/bringup.py": BROKEN_BRINGUP}, "not online within the trial"),
    ],
)  # fmt: skip
def test_a_failing_version_is_rolled_back_and_never_retried(stack, ota, fault, append, reason):
    ota.add("1.2.0", append)
    ota.deploy("1.2.0")
    stack.wait_device(r" I ota: reset")
    boot_again(stack, RESET_EXIT)
    if fault == "import":
        stack.wait_device(r"RuntimeError: broken build")
        boot_again(stack, 1)  # main.py's crash handler: reset (exit 1 on the unix port)
    else:
        stack.wait_device(r" I application 1\.2\.0$")
        stack.wait_device(r" W ota: 1\.2\.0 rolled back \(not online\)", timeout=WAIT + 10)
        boot_again(stack, RESET_EXIT)
    stack.wait_device(r" I application 1\.0\.0$")
    stack.wait_device(r" I state online")
    row = wait_up(stack, "/ota/device/progress/%s/%s" % (ota.pk, ota.dn), '"-1"')
    assert reason in row["content"]
    job = ota.job()
    assert job["state"] == "failed" and job["desc"] == reason
    ota.deploy("1.2.0")  # pushed again: the device does not take it
    stack.wait_device(r" I ota: 1\.2\.0 not installed \(running or rolled back\)")
