"""MicroPython: ``aliyun.store`` on a real littlefs (``vfs.VfsLfs2``) over a RAM flash.

The flash counts what littlefs programs and erases, and can lose power after a given number
of operations (the operation in progress programs only part of its bytes). Two modes, each
printing one JSON line:

    store figures {...}    write amplification, erases and flash used per record
    store powercut {...}   a workload cut at every operation, remounted and checked each time

Run from the repository root (lib/ from source or the mpy-cross build)::

    MICROPYPATH=.frozen:lib .venv/bin/micropython -X heapsize=8m tools/bench/vm_store.py figures

(or ``powercut``). tests_host/test_store_littlefs.py runs both.
"""

import gc
import json
import os
import sys

import vfs

from aliyun.spool import reading
from aliyun.store import Store


def record(i):
    PARAMS["Uptime"] = i
    return reading(str(1000001 + i), PARAMS, 1764600000000 + i * 1000, 1, i * 1000)


BLOCK = 4096
MOUNT = "/flash"
# A reading as the session stores it (aliyun.spool.reading): the example app's properties.
PARAMS = {"Uptime": 0, "FreeHeap": 21920, "DemoValue": 50, "ReportInterval": 60, "LEDSwitch": 1}


class PowerCutError(OSError):
    pass


# Raised from inside littlefs calls, which may run in a finaliser (heap locked): allocated once.
CUT = PowerCutError(5)


class RamFlash:
    """Block device for littlefs; ``budget`` operations (programs and erases) before the cut."""

    def __init__(self, blocks, data=None):
        self.blocks = blocks
        self.data = bytearray(data) if data else bytearray(b"\xff" * (blocks * BLOCK))
        self.programmed = 0
        self.erased = 0
        self.budget = -1  # -1: no cut

    def _spend(self):
        if self.budget == 0:
            raise CUT
        if self.budget > 0:
            self.budget -= 1
        return self.budget == 0

    def readblocks(self, n, buf, off=0):
        if self.budget == 0:
            raise CUT  # powered off
        start = n * BLOCK + off
        buf[:] = self.data[start : start + len(buf)]

    def writeblocks(self, n, buf, off=0):
        last = self._spend()
        start = n * BLOCK + off
        count = len(buf) // 2 if last else len(buf)  # the cut tears this program
        self.data[start : start + count] = buf[:count]
        self.programmed += count
        if last:
            raise CUT

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            self._spend()
            self.data[arg * BLOCK : (arg + 1) * BLOCK] = b"\xff" * BLOCK
            self.erased += 1
            return 0
        return None


def mount(flash, fresh=False):
    try:
        vfs.umount(MOUNT)
    except OSError:
        pass
    if fresh:
        vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), MOUNT)


def used_blocks():
    st = os.statvfs(MOUNT)
    return st[2] - st[3]


def measure(segment_bytes, count, online):
    """Per record: bytes programmed / record bytes, erases, and flash used (offline)."""
    flash = RamFlash(256)
    mount(flash, fresh=True)
    base = used_blocks()
    store = Store(MOUNT + "/q", max_bytes=768 * 1024, segment_bytes=segment_bytes)
    p0, e0, payload = flash.programmed, flash.erased, 0
    for i in range(count):
        rec = record(i)
        payload += len(rec)
        store.append(rec)
        if online:
            store.peek(1)
            store.pop(1)
    used = (used_blocks() - base) * BLOCK
    return {
        "segment_bytes": segment_bytes,
        "online": online,
        "record_bytes": len(record(0)),
        "amplification": round((flash.programmed - p0) / payload, 1),
        "erases_per_record": round((flash.erased - e0) / count, 2),
        "records_per_kib_flash": round(count * 1024 / used, 1) if not online else None,
        "file_bytes_per_record": round(store.bytes / count, 1) if not online else None,
    }


def figures():
    rows = []
    for seg in (1024, 4096):
        for online in (False, True):
            rows.append(measure(seg, 600 if not online else 300, online))
    print("store figures " + json.dumps(rows))


def workload(store, log):
    """Appends with a send every third one; ``log`` records what was accepted and sent."""
    for i in range(30):
        log["inflight"] = i
        store.append(record(i))
        log["accepted"].append(i)
        log["inflight"] = None
        if i % 3 == 2:
            got = store.peek(2)
            log["popped"].extend(_seq(r) for r in got)  # published: the cloud has them
            store.pop(len(got))


def _seq(raw):
    return int(raw.split(b" ", 1)[0]) - 1000001


def check(log):
    """After the remount: in order, nothing accepted and unsent missing, nothing invented."""
    store = Store(MOUNT + "/q", max_bytes=16384, segment_bytes=1024, ack_every=4)
    got = []
    while True:
        batch = store.peek(4)
        if not batch:
            break
        got.extend(_seq(r) for r in batch)
        store.pop(len(batch))
    allowed = set(log["accepted"])
    if log["inflight"] is not None:
        allowed.add(log["inflight"])
    unsent = [i for i in log["accepted"] if i not in log["popped"]]
    problems = []
    if got != sorted(set(got)):
        problems.append("out of order or repeated: %r" % got)
    if [i for i in got if i not in allowed]:
        problems.append("invented: %r" % got)
    if [i for i in unsent if i not in got]:
        problems.append("lost %r (got %r)" % ([i for i in unsent if i not in got], got))
    return problems, len(got) - len(unsent)


def powercut():
    ops = _ops_of_workload()
    failures, duplicates, cuts = [], 0, 0
    for budget in range(1, ops + 1):
        flash = RamFlash(32)
        mount(flash, fresh=True)
        flash.budget = budget
        log = {"accepted": [], "popped": [], "inflight": None}
        try:
            workload(Store(MOUNT + "/q", max_bytes=16384, segment_bytes=1024, ack_every=4), log)
        except OSError:
            cuts += 1
        mount(RamFlash(32, flash.data))  # power back on: what the flash holds
        gc.collect()  # the old files' finalisers meet a dead flash here, not later
        problems, dup = check(log)
        duplicates = max(duplicates, dup)
        if problems:
            failures.append({"budget": budget, "problems": problems})
    print(
        "store powercut "
        + json.dumps(
            {
                "operations": ops,
                "cuts": cuts,
                "failures": failures[:5],
                "max_duplicates": duplicates,
            }
        )
    )


def _ops_of_workload():
    flash = RamFlash(32)
    mount(flash, fresh=True)
    flash.budget = 1 << 30
    start = flash.budget
    log = {"accepted": [], "popped": [], "inflight": None}
    workload(Store(MOUNT + "/q", max_bytes=16384, segment_bytes=1024, ack_every=4), log)
    return start - flash.budget


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "figures"
    figures() if mode == "figures" else powercut()
