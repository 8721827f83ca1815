"""One chaos run: cloud, emulator and firmware (tools/sim), a seeded sequence of faults,
and the evidence of recovery after each.

The firmware is the .mpy build of firmware/ and lib/ on the MicroPython VM (``FIRMWARE_HEAP``,
tools/sim/board.py, or ``CHAOS_HEAP``) with the chaos application (board_app.py) as its app.py.
Faults come one at a time: inject, then wait until the device is back, both ways: a numbered
message it accepted after the injection reached the cloud (uplink), and a probe the cloud sent
after the injection came back as the application's echo (downlink; a new probe every ``PROBE_S``).
The time from injection to the later of the two is the recovery time. A fault that is not recovered
within its bound (kinds.py) is recorded as such and the board is power-cut (not counted as a fault)
so the run can go on; if even that does not bring it back, the run stops.
"""

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

from tools.chaos import parts as simkit

from . import kinds as kinds_mod

PROBE_S = 2.0  # a new downlink probe this often while waiting: the resolution of the times
# The platform admits 5 CONNECTs of a device a minute (aliyun-iot.md §1.5; the local cloud
# refuses the 6th with CONNACK 3). The firmware keeps to it while it runs, but an MCU reset or a
# power cut erases what it knew of its CONNECTs: a fault that kills the VM, and any fault within
# a window after a boot, is injected only when the window has room for the CONNECTs its
# recovery makes (the wait is logged, not timed).
CONNECT_WINDOW_S = 60.0
CONNECTS_PER_WINDOW = 5
RESCUE_S = 240.0  # a power cut that does not bring the device back within this ends the run
_ACCEPTED = re.compile(r" I chaos accepted (\d+)\.(\d+)( full)?$")
_HEAP = re.compile(r" I (?:chaos heap (\d+)|up properties: 200 \(heap (\d+) B\))$")
_CHAOS = re.compile(r'"chaos":"(\d+)\.(\d+)"')
_PROBE = re.compile(r'"probe":(\d+)')
_FAILED = re.compile(r" W (\w+) failed: (.*)$")
_SLOT = re.compile(r" I next CONNECT in (\d+) ms ")  # the firmware waits for the platform


class Device:
    """What the firmware's log said, per boot (thread-safe: lines come from reader threads)."""

    def __init__(self, log_path):
        self.lock = threading.Condition()
        self.boot = 0
        self.accepted = {}  # (boot, n) -> monotonic time
        self.full = []  # (boot, n) accepted while the outbox dropped one
        # boot -> the session's "outbox full" warnings: one per message any put pushed out (a
        # property post's put drops the oldest chaos message as well)
        self.overflows = {}
        self.heap = []  # (boot, monotonic, free bytes, healthy)
        self.failures = []  # (monotonic, step, reason)
        self.notable = []  # (monotonic, boot, line): errors, permanent faults, MemoryError
        self.drops = []  # (monotonic, line): warnings that name a loss
        self.online = []  # monotonic times of "state online"
        self.slot_waits = []  # (monotonic, s): the firmware waited for a CONNECT slot
        self.downs = []  # the application's "down <topic> <n> B: <preview>" lines
        self.stats = None
        self._log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def line(self, source, stream, text):
        now = time.monotonic()
        with self.lock:
            boot = self.boot
            self._log.write("%.3f b%d %s\n" % (now, boot, text))
            match = _ACCEPTED.search(text)
            if match:
                key = (int(match.group(1)), int(match.group(2)))
                self.accepted[key] = now
                if match.group(3):
                    self.full.append(key)
            elif _HEAP.search(text):
                m = _HEAP.search(text)
                healthy = m.group(2) is not None  # a post the cloud answered: online and well
                self.heap.append((boot, now, int(m.group(1) or m.group(2)), healthy))
            elif " I down " in text:
                self.downs.append(text)
            elif " I state online" in text:
                self.online.append(now)
            elif _FAILED.search(text):
                m = _FAILED.search(text)
                self.failures.append((now, m.group(1), m.group(2)))
            elif _SLOT.search(text):
                self.slot_waits.append((now, int(_SLOT.search(text).group(1)) / 1000))
            if " I stats {" in text:
                self.stats = json.loads(text.split(" I stats ", 1)[1])
            if re.search(r" E |permanent fault|MemoryError|Traceback", text):
                self.notable.append((now, boot, text))
            if " W outbox full: oldest message dropped" in text:
                self.overflows[boot] = self.overflows.get(boot, 0) + 1
            if " I stats {" not in text and re.search(r"dropped|queue full|outbox full", text):
                self.drops.append((now, text))
            self.lock.notify_all()

    def slot_wait_s(self, since):
        """Seconds the firmware said it waits for a CONNECT slot (at most 5 a minute, the
        platform's rule) since ``since``: no part of a recovery time."""
        with self.lock:
            return sum(s for t, s in self.slot_waits if t >= since)

    def close(self):
        self._log.close()


class Cloud:
    """The message log's rows as they arrive, indexed by what the run looks for."""

    def __init__(self):
        self.lock = threading.Condition()
        self.delivered = {}  # (boot, n) -> first monotonic time seen
        self.copies = {}  # (boot, n) -> rows seen
        self.echoes = {}  # probe number -> monotonic time
        self.texts = set()  # every payload on /user/update (the echoes of fault downlinks)
        self.connects = []  # monotonic times of the CONNECTs the cloud admitted ("online")
        self.rows = 0

    def row(self, row):
        now = time.monotonic()
        content = row.get("content") or ""
        with self.lock:
            self.rows += 1
            if row.get("type") == "status" and row.get("status") == "online":
                self.connects.append(now)
            if row.get("type") == "up" and (row.get("topic") or "").endswith("/user/update"):
                self.texts.add(content)
                match = _CHAOS.search(content)
                if match:
                    key = (int(match.group(1)), int(match.group(2)))
                    self.delivered.setdefault(key, now)
                    self.copies[key] = self.copies.get(key, 0) + 1
                match = _PROBE.search(content)
                if match:
                    self.echoes.setdefault(int(match.group(1)), now)
            self.lock.notify_all()


class ChaosRun:
    def __init__(self, workdir, seed, kinds, period_ms=2000, dialect=(), out=print):
        self.workdir = Path(workdir)
        self.seed = seed
        # The device logs in directly (auth "direct") and is deployed no update: it makes no
        # HTTP request, so the faults that act on one are not applicable (kinds.py).
        self.http = False
        chosen = [kinds_mod.KINDS[k] for k in kinds]
        self.kinds = [k for k in chosen if k.needs != "http" or self.http]
        self.not_applicable = {
            k.name: "acts only on an HTTP request; the run makes none (direct login, no update)"
            for k in chosen
            if k not in self.kinds
        }
        self.period_ms = period_ms
        self.dialect = list(dialect)
        self.out = out
        self.timeouts = kinds_mod.firmware_timeouts()
        self.records = []  # one dict per fault
        self.rescues = 0
        self.bring_up_s = None
        self.cloud = self.emulator = self.firmware = None
        self.device = self.cloud_log = None
        self._probe = 0
        self._boot = 0
        self._booted_at = 0.0
        self.cutoff = None  # when the run stopped injecting and began to drain

    # -- the stack --

    def start(self):
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.device = Device(self.workdir / "device.log")
        self.cloud_log = Cloud()
        quiet = lambda *args: None  # noqa: E731 - the parts' own lines are not needed here
        self.cloud = simkit.Cloud(self.workdir / "cloud", quiet)
        product = self.cloud.add_product("chaos")
        self.ident = self.cloud.add_device(product["productKey"], simkit.DEFAULT_IMEI)
        self.cloud.start()
        self.cloud.follow(self.cloud_log.row)
        args = ["--transcript", str(self.workdir / "module.log")]
        for option in self.dialect:
            args += ["--dialect", option]
        self.emulator = simkit.Emulator(self.cloud.info, args=args, on_line=quiet)
        self.emulator.start()
        cfg = simkit.device_config(
            self.ident,
            uart_url=self.emulator.uart_url,
            keepalive_s=kinds_mod.KEEPALIVE_S,
            telemetry_interval_s=5,  # a heap sample (FreeHeap) every 5 s while healthy
        )
        # CHAOS_HEAP: another heap than the firmware's, to tell a RAM shortage from a fault.
        heap = os.environ.get("CHAOS_HEAP", simkit.FIRMWARE_HEAP)
        self.firmware = simkit.Firmware(
            self.workdir / "board", cfg, heap, on_line=self.device.line
        )
        self.firmware.prepare()
        board = self.firmware.board_dir
        (board / "app.mpy").rename(board / "app_example.mpy")
        shutil.copyfile(Path(__file__).with_name("board_app.py"), board / "app.py")
        started = time.monotonic()
        self._boot_vm()
        if not self._wait_recovered(started, started + 120):
            raise simkit.SimError("the device did not come online:\n" + self.firmware.proc.tail())
        self.bring_up_s = max(10.0, 2 * (time.monotonic() - started))

    def _boot_vm(self):
        self._boot += 1
        board = self.firmware.board_dir
        (board / "chaos.json").write_text(
            json.dumps({"boot": self._boot, "period_ms": self.period_ms})
        )
        with self.device.lock:
            self.device.boot = self._boot
        self._booted_at = time.monotonic()
        self.firmware.start()

    def _kill_vm(self):
        self.firmware.proc.stop(signal.SIGKILL, grace=5)

    def topics(self):
        pk, dn = self.ident["productKey"], self.ident["deviceName"]
        return {"user_get": "/%s/%s/user/get" % (pk, dn)}

    # -- faults --

    def inject(self, steps, tag="fault-"):
        topics = dict(self.topics(), tag=tag)
        for step in steps:
            kind, command, params = step
            if kind == "sleep":
                time.sleep(command)  # a random point of the reconnect that follows
                continue
            if kind == "vm":
                self._kill_vm()
                if command == "power_cut":
                    self.emulator.ctl("power_cycle")
                self._boot_vm()
                continue
            params = {
                k: (v.format(**topics) if isinstance(v, str) else v) for k, v in params.items()
            }
            reply = self.emulator.ctl(command, **params)
            if not reply.get("ok"):
                return reply.get("error", "refused")
        return None

    def _probe_now(self):
        self._probe += 1
        try:
            self.cloud.pub(self.topics()["user_get"], '{"probe":%d}' % self._probe, 1)
        except simkit.SimError:
            pass  # the cloud's CLI failed once: the next probe follows
        return self._probe

    def _evidence(self, since, first_probe):
        """(uplink time, downlink time) of the first evidence after ``since``, or None each."""
        with self.device.lock:
            boot = self.device.boot  # a message of a boot that was since killed proves nothing
            after = {k for k, t in self.device.accepted.items() if t >= since and k[0] == boot}
        with self.cloud_log.lock:
            up = [self.cloud_log.delivered[k] for k in after if k in self.cloud_log.delivered]
            down = [t for p, t in self.cloud_log.echoes.items() if p >= first_probe]
        return (min(up) if up else None), (min(down) if down else None)

    def _wait_recovered(self, since, deadline):
        """The monotonic time both ways worked again after ``since``, or None at ``deadline``
        (moved on by the firmware's waits for a CONNECT slot meanwhile)."""
        first_probe = self._probe + 1
        next_probe = time.monotonic()
        while True:
            now = time.monotonic()
            deadline_now = deadline + self.device.slot_wait_s(since)
            if now >= next_probe:
                self._probe_now()
                next_probe = now + PROBE_S
            up, down = self._evidence(since, first_probe)
            if up is not None and down is not None:
                return max(up, down)
            if now >= deadline_now:
                return None
            self._check_alive()
            with self.cloud_log.lock:
                self.cloud_log.lock.wait(min(1.0, max(0.05, deadline_now - now)))

    def _check_alive(self):
        """SimError at once when the firmware process ended by itself: main.py exits (status 1)
        only after an unexpected error (a crash, a MemoryError), which no fault may cause."""
        proc = self.firmware.proc
        if proc is None or proc.running():
            return
        status = proc.stop()
        text = "firmware exited by itself (status %s) in boot %d" % (status, self._boot)
        self.device.notable.append((time.monotonic(), self._boot, text))
        raise simkit.SimError("%s; its last lines:\n%s" % (text, proc.tail(40)))

    def connect_room(self, needed):
        """Wait (at most a window) until the platform admits ``needed`` more CONNECTs of the
        device; the seconds waited."""
        needed = min(needed, CONNECTS_PER_WINDOW)
        started = time.monotonic()
        slept = False
        while True:
            now = time.monotonic()
            with self.cloud_log.lock:
                recent = [t for t in self.cloud_log.connects if now - t < CONNECT_WINDOW_S]
            if len(recent) + needed <= CONNECTS_PER_WINDOW:
                return now - started if slept else 0.0
            slept = True
            self._check_alive()
            time.sleep(min(1.0, recent[0] + CONNECT_WINDOW_S - now + 0.05))

    def one(self, index, kind, rng):
        steps = kind.steps(rng)
        bound = kind.bound_s(steps, self.timeouts, self.bring_up_s, PROBE_S)
        waited = 0.0
        if any(step[0] == "vm" for step in steps):  # a reset, and a drop before one: a CONNECT
            waited = self.connect_room(sum(s[0] == "vm" or s[1] == "drop_mqtt" for s in steps))
        elif time.monotonic() - self._booted_at < CONNECT_WINDOW_S:
            waited = self.connect_room(1)  # the new boot does not know the window's CONNECTs
        failures_before = len(self.device.failures)
        started = time.monotonic()
        tag = "%s-%d-" % (kind.name, index)
        error = self.inject(steps, tag)
        record = {
            "index": index,
            "kind": kind.name,
            "steps": steps,
            "bound_s": round(bound, 1),
            "allowed_failures": kind.failures_for(steps),
            "downlinks": kind.downlinks(steps, tag),
            "echo": kind.echo,
            "connect_wait_s": round(waited, 1),
        }
        if error:
            record.update(recovered=None, error=error)  # not applicable in this state
            self.records.append(record)
            return record
        done = self._wait_recovered(started, started + bound)
        record["recovered"] = done is not None
        record["seconds"] = None if done is None else round(done - started, 2)
        record["slot_wait_s"] = round(self.device.slot_wait_s(started), 1)  # inside "seconds"
        # "online failed: closed" is the detection; the others are failed bring-up attempts
        attempts = self.device.failures[failures_before:]
        record["failed_attempts"] = [f[1:] for f in attempts if f[1] != "online"]
        self.records.append(record)
        if done is None:
            self.rescue()
        return record

    def rescue(self):
        """Power-cut the board after an unrecovered fault; SimError if even that fails."""
        self.rescues += 1
        self.connect_room(1)
        started = time.monotonic()
        self.inject([("vm", "power_cut", {})])
        if self._wait_recovered(started, started + RESCUE_S) is None:
            raise simkit.SimError("stranded even after a power cut")

    def watch(self, seconds):
        """Let the device run ``seconds`` without faults (SimError if the firmware exits)."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self.firmware.proc.wait_exit(min(1.0, left))  # returns early if it ends
            except simkit.SimError:
                pass  # still running

    def drain(self, timeout):
        """Wait until the last message the last boot accepted so far reached the cloud (True),
        or ``timeout``. The outbox sends in order and drops only the oldest message not yet
        sent, so by then every earlier one arrived or was dropped (the accounting tells the
        reported drops from losses). Later ones are in flight when the run stops (``cutoff``):
        not lost."""
        self.cutoff = time.monotonic()
        deadline = self.cutoff + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with self.device.lock:
                mine = [
                    k
                    for k, t in self.device.accepted.items()
                    if k[0] == self._boot and t <= self.cutoff
                ]
            with self.cloud_log.lock:
                if not mine or max(mine) in self.cloud_log.delivered:
                    return True
                self.cloud_log.lock.wait(1.0)
        return False

    def close(self):
        if self.firmware is not None and self.firmware.proc is not None:
            self.firmware.stop()
        for part in (self.emulator, self.cloud):
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - keep stopping the others
                    pass
        if self.device is not None:
            self.device.close()
