"""The end-to-end scenario of figure 1 (and of ``python -m tools.bench scenario``).

Online, 40 QoS1 publishes and 20 downlinks (echoed), both paced (the cloud takes 10 QoS1
messages a second from a device and drops the rest), one link drop and recovery. It passes when
the cloud logged every publish and every echo with status 200, the firmware came back online
after ``drop_mqtt``, and no MemoryError, traceback or crash showed.
"""

import time

from tools.bench.context import ONLINE, BenchError, kib, user_topic
from tools.sim.proc import SimError

PUBLISHES = 40
DOWNLINKS = 20
PACE_S = 0.25  # between downlinks (the device paces its burst too: vm_firmware._PACE_MS)
SECONDS = 40.0  # the whole run; a passing one takes about 12 s

# How the firmware logs in, with the words of the heap rows: the bisection runs for each.
LOGINS = (
    ("direct", "direct MQTT signing"),
    ("http", "HTTPS device auth"),
    ("dynreg", "dynamic registration"),
)


class Scenario:
    """One run at ``heap_bytes``; ``auth`` is config.json's ``auth`` (direct, http, dynreg)."""

    def __init__(self, ctx, heap_bytes, sample_ms=0, collect=0, tls=True, auth="direct"):
        self.ctx = ctx
        # A fresh device per run: the broker may close a new session of a device whose
        # previous connection (the last run's emulator, just stopped) it has not cleaned up.
        ctx.scenarios += 1
        self.device = ctx.device("bench-heap-%d" % ctx.scenarios)
        self.since = ctx.rows.mark()
        self.began = time.monotonic()
        self.options = (sample_ms, collect, tls, auth)
        self.emu = self.fw = None
        self.result = {"heap": heap_bytes, "ok": False, "reason": "", "stats": None}

    def left(self):
        """What remains of SECONDS: a hung firmware fails the size quickly."""
        return max(0.1, self.began + SECONDS - time.monotonic())

    def uplinks(self, start):
        dn = self.device["deviceName"]
        rows = self.ctx.rows.select(self.since, dn, type="up", topic="/user/update", status="200")
        return {r["content"] for r in rows if r["content"].startswith(start)}

    def run(self):
        try:
            self.start()
            self.half(0, " I bench phase 1 acked$", 0)
            lines = self.fault()
            self.half(DOWNLINKS // 2, " I bench phase 2 acked$", lines)
            self.ctx.rows.wait_until(
                lambda: (
                    len(self.uplinks('{"b":')) >= PUBLISHES
                    and len(self.uplinks('{"d":')) >= DOWNLINKS
                ),
                self.left(),
                self.fw.failure,
            )
            reason = self.fw.failure()
            if reason:
                raise BenchError(reason)
            self.result["ok"] = True
        except (BenchError, SimError) as exc:
            self.failed(exc)
        finally:
            self.finish()
        return self.result

    def start(self):
        sample_ms, collect, tls, auth = self.options
        ctx = self.ctx
        self.emu = ctx.emulator("fast", ["--transcript", "none"], tls=tls)
        secret = ctx.product["productSecret"] if auth == "dynreg" else ""
        self.fw = ctx.firmware(
            "heap",
            self.device,
            self.emu,
            kib(self.result["heap"]),
            "scenario",
            (PUBLISHES, sample_ms, collect),
            auth=auth,
            telemetry_interval_s=3600,
            echo_user_get=True,
            tls=tls,
            product_secret=secret,
        )
        self.fw.wait(ONLINE, self.left())

    def half(self, first, acked, since):
        """Half the downlinks, then wait for the firmware's phase line and their echoes."""
        topic = user_topic(self.device, "get")
        end = first + DOWNLINKS // 2
        for j in range(first, end):
            self.ctx.pub(topic, '{"d":%d}' % j, 1)
            time.sleep(PACE_S)  # each is echoed: with the burst, under the cloud's 10 a second
        self.fw.wait(acked, self.left(), since=since)
        self.ctx.rows.wait_until(
            lambda: len(self.uplinks('{"d":')) >= end, self.left(), self.fw.failure
        )

    def fault(self):
        """``drop_mqtt`` and the firmware back online; the index of the log line before it."""
        lines = len(self.fw.proc.lines)
        if self.fw.proc.find(r" I state backoff$"):
            raise BenchError("the link dropped before the fault (the broker or emulator)")
        reply = self.emu.ctl("drop_mqtt")
        if not reply.get("ok"):
            raise BenchError("air724-sim ctl drop_mqtt: %s" % reply)
        self.fw.wait(ONLINE, self.left(), since=lines)
        return lines

    def failed(self, exc):
        fw = self.fw
        self.result["reason"] = str(exc).splitlines()[0][:200]
        self.result["memory"] = bool(fw is not None and fw.proc is not None and fw.failure())
        if fw is not None and fw.proc is not None:
            log = [t for _, t in fw.proc.lines if " I down " not in t and " I up " not in t]
            self.result["tail"] = log[-30:]

    def finish(self):
        if self.fw is not None and self.fw.proc is not None:
            self.fw.stop()  # Ctrl-C: the stats line (with the sampled peaks), pass or fail
            self.result["stats"] = self.fw.stats()
        for part in (self.fw, self.emu):
            if part is not None:
                part.close()
        self.result["seconds"] = round(time.monotonic() - self.began, 1)


def scenario(ctx, heap_bytes, **options):
    """One run: ``{"ok", "reason", "seconds", "stats", …}``."""
    return Scenario(ctx, heap_bytes, **options).run()


def scenario_again(ctx, heap_bytes, **options):
    """``scenario``, once more if it failed for a reason that is not the heap's."""
    res = scenario(ctx, heap_bytes, **options)
    if not res["ok"] and not res.get("memory"):
        res = scenario(ctx, heap_bytes, **options)
    return res
