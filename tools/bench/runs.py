"""The measuring runs of ``make bench``: each figure's processes, waits and arithmetic.

Every run uses tools/simkit.py (the plumbing of ``make sim`` and the end-to-end tests): one
local cloud for the whole benchmark (a device per figure), a fresh emulator per run, the
firmware from the ``.mpy`` build in a board folder. Waits block on log lines and cloud rows,
with timeouts; every process is registered with ``Context`` and stopped on every exit path.
"""

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from tools import mpy_build, simkit
from tools.bench import core
from tools.cloud.server import read_server_file

ROOT = simkit.ROOT
BIN = simkit.BIN
HERE = Path(__file__).resolve().parent
MPY_PATH = ".frozen:build/lib"
BAUD = 115200
FAILURE = r"MemoryError|Traceback|unexpected error"
ONLINE = r" I state online$"
SCENARIO_PUBLISHES = 100
SCENARIO_DOWNLINKS = 20
WAIT = 45.0
SCENARIO_S = 40.0  # a passing run takes about 8 s


class BenchError(Exception):
    pass


class Lines:
    """Lines of one process with the host time each arrived (for latencies and boot times)."""

    def __init__(self):
        self.items = []  # (epoch s, source, stream, text)
        self._lock = threading.Lock()

    def __call__(self, source, stream, text):
        with self._lock:
            self.items.append((time.time(), source, stream, text))

    def find(self, pattern, source=None):
        regex = re.compile(pattern)
        with self._lock:
            items = list(self.items)
        return [
            (when, m)
            for when, src, _, text in items
            if (source is None or src == source)
            for m in [regex.search(text)]
            if m
        ]


class Rows(simkit.RowLog):
    """The cloud's message log, with the bench's per-device selection and condition waits."""

    def mark(self):
        with self._cond:
            return len(self.rows)

    def select(self, since, device, **fields):
        with self._cond:
            rows = self.rows[since:]
        fields["deviceName"] = device
        return [r for r in rows if simkit.row_matches(r, fields)]

    def wait_until(self, check, timeout, abort=None):
        """Block until ``check()`` is true; ``abort()`` may return a reason to give up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                reason = abort() if abort else None
                if reason:
                    raise BenchError(reason)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("timed out after %g s" % timeout)
                self._cond.wait(min(left, 0.2))


class BenchFirmware(simkit.Firmware):
    """The firmware, optionally run through tools/bench/vm_firmware.py (``-m bench_fw``)."""

    def __init__(self, board_dir, config, heapsize, mode=None, args=(), on_line=None):
        super().__init__(board_dir, config, heapsize, mpy=True, on_line=on_line)
        self.mode = mode
        self.args = [str(a) for a in args]

    def prepare(self):
        super().prepare()
        if self.mode:
            src = HERE / "vm_firmware.py"
            cmd = [mpy_build.mpy_cross(), "-o", str(self.board_dir / "bench_fw.mpy")]
            subprocess.run(cmd + ["-s", "bench_fw.py", str(src)], check=True)
        return self

    def start(self):
        if not self.mode:
            return super().start()
        return self.launch(["-m", "bench_fw", self.mode] + self.args)

    def failure(self):
        """Why the firmware cannot pass any more (a MemoryError, a crash, an exit), or None."""
        found = self.proc.find(FAILURE)
        if found:
            return "firmware: " + found[0].string.strip()
        if not self.proc.running():
            return "firmware exited (status %s)" % self.proc.popen.poll()
        return None

    def wait(self, pattern, timeout=WAIT, since=0):
        """The index of the first line matching ``pattern``; fails fast on ``failure()``."""
        index, match = self.proc.wait_for(
            "(?P<want>%s)|(?P<bad>%s)" % (pattern, FAILURE), timeout, since=since
        )
        if match.group("bad"):
            raise BenchError("firmware: " + match.string.strip())
        return index


class Context:
    """The shared cloud, the work folder and every process started (stopped by ``close``)."""

    def __init__(self, workdir, say=print):
        self.workdir = Path(workdir)
        self.say = say
        self.parts = []
        self._lock = threading.Lock()
        self.cloud = None
        self.product = None
        self.devices = {}
        self.rows = Rows()
        self.control = None
        self.heapsize = None  # the heap of the runs other than the bisection
        self.scenarios = 0
        self._devices_lock = threading.Lock()

    def track(self, part):
        with self._lock:
            self.parts.append(part)
        return part

    def close(self):
        with self._lock:
            parts, self.parts = self.parts[::-1], []
        for part in parts:
            try:
                part.close()
            except Exception as exc:  # keep stopping the others
                self.say("bench: stopping %r failed: %r" % (part, exc))

    def start_cloud(self):
        if self.cloud is not None:
            return
        self.cloud = self.track(simkit.Cloud(self.workdir / "cloud"))
        # Dynamic registration on: the heap figure logs in each way (the others sign directly).
        self.product = self.cloud.add_product("bench", dynamic_register=True)
        self.cloud.start()
        self.cloud.follow(self.rows.add)
        self.control = read_server_file(self.cloud.state_dir)

    def device(self, name):
        with self._devices_lock:  # runs on several threads (boot and idle side by side)
            self.start_cloud()
            if name not in self.devices:
                self.devices[name] = self.cloud.add_device(self.product["productKey"], name)
            return self.devices[name]

    def pub(self, topic, payload, qos=0):
        """A downlink through the control API (in-process: no CLI start-up per message)."""
        from tools.cloud.cli import control_ok

        body = {"topic": topic, "payload": payload, "qos": qos}
        return control_ok(self.control, "POST", "/pub", body)

    def emulator(self, profile="fast", args=(), lines=None, tls=True):
        emu = simkit.Emulator(self.cloud.info, tls, profile, list(args), lines)
        self.track(emu)
        emu.start()
        return emu

    def firmware(
        self, name, device, emu, heapsize, mode=None, args=(), lines=None, auth="direct", **cfg
    ):
        config = simkit.device_config(device, auth, emu.uart_url, **cfg)
        board = self.workdir / ("board-" + name)
        fw = BenchFirmware(board, config, heapsize, mode, args, lines)
        self.track(fw)
        fw.prepare()
        fw.start()
        return fw


def run_vm(args, micropypath, timeout):
    """Run ``micropython ARGS`` from the project root with ``MICROPYPATH``; what it printed."""
    env = dict(os.environ, MICROPYPATH=micropypath)
    argv = [str(a) for a in [BIN / "micropython"] + list(args)]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def vm_failed(name, out):
    """The BenchError for a run whose figures are missing: the end of what it printed."""
    return BenchError("%s: %s" % (name, (out.stderr or out.stdout).strip()[-300:]))


def user_topic(device, name):
    return "/%s/%s/user/%s" % (device["productKey"], device["deviceName"], name)


def kib(nbytes):
    return "%dk" % (nbytes // 1024)


# -- 1. heap ------------------------------------------------------------------------------------


def scenario(ctx, heap_bytes, sample_ms=0, collect=0, tls=True, auth="direct"):
    """Online, 100 QoS1 publishes, 20 downlinks (echoed), one link drop and recovery.

    ``auth``: how the firmware logs in (config.json ``auth``: direct, http or dynreg).

    Passes when the cloud logged every publish and every echo with status 200, the firmware
    came back online after ``drop_mqtt``, and no MemoryError, traceback or crash showed.
    Returns ``{"ok", "reason", "seconds", "stats"}``.
    """
    # A fresh device per run: the broker may close a new session of a device whose previous
    # connection (the last run's emulator, just stopped) it has not cleaned up yet.
    ctx.scenarios += 1
    device = ctx.device("bench-heap-%d" % ctx.scenarios)
    dn = device["deviceName"]
    since = ctx.rows.mark()
    began = time.monotonic()
    emu = fw = None
    result = {"heap": heap_bytes, "ok": False, "reason": "", "stats": None}
    half = SCENARIO_DOWNLINKS // 2

    def left():  # the whole run has SCENARIO_S: a hung firmware fails the size quickly
        return max(0.1, began + SCENARIO_S - time.monotonic())

    def bench_ups():
        rows = ctx.rows.select(since, dn, type="up", topic="/user/update", status="200")
        return {r["content"] for r in rows if r["content"].startswith('{"b":')}

    def echoes():
        rows = ctx.rows.select(since, dn, type="up", topic="/user/update", status="200")
        return {r["content"] for r in rows if r["content"].startswith('{"d":')}

    try:
        emu = ctx.emulator("fast", ["--transcript", "none"], tls=tls)
        args = (SCENARIO_PUBLISHES, sample_ms, collect)
        fw = ctx.firmware(
            "heap",
            device,
            emu,
            kib(heap_bytes),
            "scenario",
            args,
            auth=auth,
            telemetry_interval_s=3600,
            echo_user_get=True,
            tls=tls,
            product_secret=ctx.product["productSecret"] if auth == "dynreg" else "",
        )
        fw.wait(ONLINE, left())
        for j in range(half):
            ctx.pub(user_topic(device, "get"), '{"d":%d}' % j, 1)
        fw.wait(r" I bench phase 1 acked$", left())
        ctx.rows.wait_until(lambda: len(echoes()) >= half, left(), fw.failure)
        lines = len(fw.proc.lines)
        if fw.proc.find(r" I state backoff$"):
            raise BenchError("the link dropped before the fault (the broker or emulator)")
        reply = emu.ctl("drop_mqtt")
        if not reply.get("ok"):
            raise BenchError("air724-sim ctl drop_mqtt: %s" % reply)
        fw.wait(ONLINE, left(), since=lines)
        for j in range(half, SCENARIO_DOWNLINKS):
            ctx.pub(user_topic(device, "get"), '{"d":%d}' % j, 1)
        fw.wait(r" I bench phase 2 acked$", left(), since=lines)
        ctx.rows.wait_until(
            lambda: len(bench_ups()) >= SCENARIO_PUBLISHES and len(echoes()) >= SCENARIO_DOWNLINKS,
            left(),
            fw.failure,
        )
        reason = fw.failure()
        if reason:
            raise BenchError(reason)
        result["ok"] = True
    except (BenchError, simkit.SimError) as exc:
        result["reason"] = str(exc).splitlines()[0][:200]
        result["memory"] = bool(fw is not None and fw.proc is not None and fw.failure())
        if fw is not None and fw.proc is not None:
            log = [t for _, t in fw.proc.lines if " I down " not in t and " I up " not in t]
            result["tail"] = log[-30:]
    finally:
        if fw is not None and fw.proc is not None:
            fw.stop()  # Ctrl-C: the stats line (with the sampled peaks), pass or fail
            result["stats"] = fw.stats()
        for part in (fw, emu):
            if part is not None:
                part.close()
    result["seconds"] = round(time.monotonic() - began, 1)
    return result


def scenario_again(ctx, heap_bytes, **kw):
    """``scenario``, once more if it failed for a reason that is not the heap's."""
    res = scenario(ctx, heap_bytes, **kw)
    if not res["ok"] and not res.get("memory"):
        res = scenario(ctx, heap_bytes, **kw)
    return res


# How the firmware logs in, with the words of the heap rows: the bisection runs for each.
LOGINS = (
    ("direct", "direct MQTT signing"),
    ("http", "HTTPS device auth"),
    ("dynreg", "dynamic registration"),
)


# The live heap (after a collection) is sampled often enough to catch the login's peak, which
# lasts only as long as the HTTPS request or the signing.
LIVE_SAMPLE_MS = 5


def smallest_heap(ctx, steps, runs, auth):
    """The smallest of ``steps`` (KiB) at which the scenario passes with ``auth``, or None;
    every run is appended to ``runs``."""

    def passes(size_kib):
        # A failure that is not the heap's (no MemoryError, no crash: a link the broker
        # closed on its own, a timeout) gets one more run before it counts.
        for _ in range(2):
            res = scenario(ctx, size_kib * 1024, auth=auth)
            res["auth"] = auth
            runs.append(res)
            ctx.say(
                "  %s heap %4dk: %s (%.1f s)%s"
                % (
                    auth,
                    size_kib,
                    "pass" if res["ok"] else "FAIL",
                    res["seconds"],
                    "" if res["ok"] else ": " + res["reason"],
                )
            )
            if res["ok"] or res.get("memory"):
                break
        return res["ok"]

    smallest, _ = core.bisect_smallest(steps, passes)
    # Near the threshold a run may pass by luck: the smallest must pass twice, else go up.
    while smallest is not None and not passes(smallest):
        higher = [s for s in steps if s > smallest]
        smallest = higher[0] if higher else None
    return smallest


def figure_heap(ctx, lo_kib=48, hi_kib=256, step_kib=8):
    steps = core.heap_steps(lo_kib, hi_kib, step_kib)
    runs = []
    found = {auth: smallest_heap(ctx, steps, runs, auth) for auth, _ in LOGINS}
    # The peaks (and the later runs) at 128k; while the firmware needs more, at the heap the
    # project runs it with (simkit.FIRMWARE_HEAP, where every login passes) and at least one
    # step above the largest of the smallest heaps (a smallest heap itself is marginal).
    largest = None if None in found.values() else max(found.values())
    operating = core.parse_size(simkit.FIRMWARE_HEAP) // 1024
    peak_heap = (
        128
        if largest is not None and largest <= 128
        else max((largest or hi_kib) + step_kib, operating)
    )
    ctx.heapsize = peak_heap * 1024
    raw = scenario_again(ctx, peak_heap * 1024, sample_ms=20, collect=0)
    live = {
        auth: scenario_again(ctx, peak_heap * 1024, sample_ms=LIVE_SAMPLE_MS, collect=1, auth=auth)
        for auth, _ in LOGINS
    }

    def peak(res, key):
        return (res["stats"] or {}).get(key)

    def ratio(value, whole):
        return None if value is None else value / whole

    def outcome(res):
        return "scenario passed" if res["ok"] else "scenario FAILED: " + res["reason"]

    rows = []
    for auth, words in LOGINS:
        smallest = found[auth]
        tried = len([r for r in runs if r["auth"] == auth])
        note = "bisection %d..%dk, %dk steps, %d runs" % (lo_kib, hi_kib, step_kib, tried)
        if smallest is None:
            note += "; none passes at %dk" % hi_kib
        rows.append(
            core.row(
                "smallest -X heapsize passing the scenario, " + words,
                smallest,
                "KiB",
                "the 128 KiB budget",
                (smallest / 128) if smallest else None,
                note,
            )
        )
    rows.append(
        core.row(
            "peak gc.mem_alloc(), sampled every 20 ms, direct",
            peak(raw, "bench_peak"),
            "B",
            "the %dk heap (the collector runs when it is full)" % peak_heap,
            ratio(peak(raw, "bench_peak"), peak_heap * 1024),
            outcome(raw),
        )
    )
    for auth, words in LOGINS:
        rows.append(
            core.row(
                "peak live heap (mem_alloc after gc.collect(), every %d ms), %s"
                % (LIVE_SAMPLE_MS, words),
                peak(live[auth], "bench_live_peak"),
                "B",
                "the 128 KiB budget (run with a %dk heap)" % peak_heap,
                ratio(peak(live[auth], "bench_live_peak"), 128 * 1024),
                outcome(live[auth]),
            )
        )
    detail = {"smallest": found, "runs": runs, "peak_run": raw, "live_runs": live}
    return rows, detail


# -- 2. footprint -------------------------------------------------------------------------------


def figure_footprint(ctx):
    mpy_build.build()
    rows = []
    detail = {}
    for top in ("lib", "firmware"):
        mpys = sorted((ROOT / "build" / top).rglob("*.mpy"))
        size = sum(p.stat().st_size for p in mpys)
        source = sum(
            (ROOT / top / p.relative_to(ROOT / "build" / top)).with_suffix(".py").stat().st_size
            for p in mpys
        )
        detail[top] = {"mpy_bytes": size, "files": len(mpys), "source_bytes": source}
        rows.append(
            core.row(
                "%s/ as .mpy (%d files)" % (top, len(mpys)),
                size,
                "B",
                "its .py sources (%s B)" % core.fmt_value(source),
                size / source if source else None,
            )
        )
    for package in sorted(p.name for p in (ROOT / "build" / "lib").iterdir() if p.is_dir()):
        size = sum(p.stat().st_size for p in (ROOT / "build" / "lib" / package).rglob("*.mpy"))
        detail["lib/" + package] = size
        rows.append(core.row("  lib/%s/" % package, size, "B"))
    # The same code in RAM: what importing it from .mpy takes of the heap (a board with lib/
    # frozen keeps the bytecode in flash).
    out = run_vm(["-X", "heapsize=512k", HERE / "vm_imports.py"], MPY_PATH + ":build/firmware", 60)
    heap = core.parse_bench_line(out.stdout, "imports")
    if heap is None:
        raise vm_failed("vm_imports", out)
    detail["import_heap"] = heap
    for key, what in (
        ("firmware", "firmware/ modules (logger, boards, app)"),
        ("online", "library kept while online (session, alink, thing, air724, mqtt, atmodem)"),
        ("bring_up", "air724.module (bring-up checks)"),
        ("login", "login set (login, sign, digest, auth, dynreg, http, bearer), unloaded later"),
    ):
        rows.append(
            core.row(
                "heap taken by importing the " + what,
                heap[key],
                "B",
                "the 128 KiB budget",
                heap[key] / (128 * 1024),
                "from .mpy, after gc.collect()" if key == "firmware" else "",
            )
        )
    return rows, detail


# -- 3. throughput ------------------------------------------------------------------------------


def throughput_run(ctx, qos, count, latency=(), nodelay=False, baud=BAUD):
    """One lib/air724-only run against ``air724-sim --baud 115200``; the parsed result line."""
    device = ctx.device("bench-tput")
    from aliyun.sign import mqtt_credentials

    creds = mqtt_credentials(device["productKey"], device["deviceName"], device["deviceSecret"])
    topic = "/sys/%s/%s/thing/event/property/post" % (device["productKey"], device["deviceName"])
    payload = json.dumps(
        {
            "id": "1",
            "version": "1.0",
            "params": {"Temperature": 21.5, "Humidity": 48},
            "method": "thing.event.property.post",
        },
        separators=(",", ":"),
    )
    args = ["--baud", str(baud)] if baud else []
    for name, seconds in latency:
        args += ["--latency", "%s=%s" % (name, seconds)]
    lines = Lines()
    emu = ctx.emulator("fast", args, lines)
    try:
        argv = [HERE / "vm_throughput.py", emu.ready["tcp"]]
        argv += [creds.client_id, creds.username, creds.password, creds.host, creds.port]
        argv += ["1" if creds.tls else "0", topic, qos, count, payload]
        argv += ["nodelay"] if nodelay else []
        out = run_vm(argv, MPY_PATH, 180)
        result = core.parse_bench_line(out.stdout, "throughput")
        if result is None:
            raise vm_failed("vm_throughput", out)
    finally:
        emu.close()
    tx, rx = core.mpub_wire_bytes(topic, payload, qos)
    sent = [m for _, m in lines.find(r"--> (AT\+MPUB=.*)$")]
    if len(sent) != count or len(sent[0].group(1)) + 1 != tx:
        raise BenchError(
            "transcript: %d MPUB lines of %d bytes, expected %d of %d"
            % (len(sent), len(sent[0].group(1)) + 1 if sent else 0, count, tx)
        )
    result.update(tx=tx, rx=rx, payload_bytes=len(payload), topic_bytes=len(topic))
    return result


def figure_throughput(ctx, qos0_count=300, qos1_count=20):
    """The UART link is TCP here: the driver sets TCP_NODELAY, as a UART has no Nagle delay
    (a row shows the cost without it, as a TCP link without TCP_NODELAY has)."""
    puback = 0.3  # the realistic profile's PUBACK latency (tools/emulator/profiles.py)
    plans = (
        ("QoS0, no module latency", 0, qos0_count, (), True, BAUD, 0.0),
        (
            "QoS1, PUBACK after %g s" % puback,
            1,
            qos1_count,
            [("puback", puback)],
            True,
            BAUD,
            puback,
        ),
        ("QoS0, Nagle on (a TCP link without TCP_NODELAY)", 0, 100, (), False, BAUD, 0.0),
        ("QoS0, unpaced (no --baud): the software ceiling", 0, qos0_count, (), True, None, 0.0),
    )
    rows = []
    detail = {}
    for what, qos, count, latency, nodelay, baud, wait in plans:
        res = throughput_run(ctx, qos, count, latency, nodelay, baud)
        detail[what] = res
        rate = res["count"] / (res["us"] / 1e6)
        if baud:
            bound = core.publish_bound(res["tx"], res["rx"], baud, wait)
            against = "UART bound %.1f/s at %d baud%s" % (
                bound,
                baud,
                " + %g s PUBACK" % wait if wait else "",
            )
            ratio = rate / bound
        else:
            against = "%.2f ms per publish round trip (library + emulator + loopback)" % (
                1000.0 / rate
            )
            ratio = None
        rows.append(
            core.row(
                what,
                rate,
                "publishes/s",
                against,
                ratio,
                "%d B payload; %d B to the module, %d B back"
                % (res["payload_bytes"], res["tx"], res["rx"]),
            )
        )
    return rows, detail


# -- 4. latency ---------------------------------------------------------------------------------


def figure_latency(ctx, count=200, spacing_s=0.03):
    device = ctx.device("bench-latency")
    dn = device["deviceName"]
    lines = Lines()
    emu = ctx.emulator("fast", [], lines)
    fw = None
    try:
        fw = ctx.firmware(
            "latency",
            device,
            emu,
            kib(ctx.heapsize),
            "latency",
            (),
            lines,
            telemetry_interval_s=3600,
            echo_user_get=False,
        )
        fw.wait(ONLINE)
        fw.wait(r" I up properties: ")
        time.sleep(1.0)
        since = ctx.rows.mark()
        topic = user_topic(device, "get")
        for i in range(count):
            ctx.pub(topic, '{"n":%d}' % i, 0)
            time.sleep(spacing_s)
        deadline = time.monotonic() + WAIT
        while len(lines.find(r"^bench rx ", "device")) < count:
            if time.monotonic() > deadline:
                raise BenchError(
                    "only %d of %d downlinks reached the callback"
                    % (len(lines.find(r"^bench rx ", "device")), count)
                )
            reason = fw.failure()
            if reason:
                raise BenchError(reason)
            time.sleep(0.1)
        fw.stop()
    finally:
        for part in (fw, emu):
            if part is not None:
                part.close()
    # The cloud's and the transcript's stamps are whole milliseconds, cut down: their
    # midpoint (+0.5 ms) is the unbiased estimate.
    sent = {}
    for r in ctx.rows.select(since, dn, type="down", topic="/user/get"):
        sent[r["content"]] = (r["time"] + 0.5) / 1000.0
    uart = {}
    for when, m in lines.find(r"^(\d\d:\d\d:\d\d\.\d{3}) <-- \+MSUB: .*byte,(\{.*\})$", "module"):
        uart[m.group(2)] = core.transcript_epoch(m.group(1), when) + 0.0005
    app = {}
    for _, m in lines.find(r"^bench rx (\d+) (\{.*\})$", "device"):
        app[m.group(2)] = int(m.group(1)) / 1e6
    total, forward, firmware = [], [], []
    for payload, t0 in sent.items():
        if payload in uart and payload in app:
            total.append((app[payload] - t0) * 1000)
            forward.append((uart[payload] - t0) * 1000)
            firmware.append((app[payload] - uart[payload]) * 1000)
    if len(total) < count * 0.9:
        raise BenchError("matched only %d of %d downlinks" % (len(total), count))
    rows = [
        core.row(
            "cloud publish -> app callback, median",
            core.median(total),
            "ms",
            "emulator's forwarding (cloud -> +MSUB on the UART) %.1f ms" % core.median(forward),
            core.median(total) / max(core.median(forward), 0.5),
            "%d downlinks, QoS0, %d ms apart" % (len(total), spacing_s * 1000),
        ),
        core.row(
            "cloud publish -> app callback, p99",
            core.percentile(total, 99),
            "ms",
            "emulator's forwarding p99 %.1f ms" % core.percentile(forward, 99),
            core.percentile(total, 99) / max(core.percentile(forward, 99), 0.5),
        ),
        core.row(
            "firmware alone (+MSUB on the UART -> callback), median / p99",
            core.median(firmware),
            "ms",
            "p99 %.1f ms" % core.percentile(firmware, 99),
        ),
    ]
    detail = {
        "count": len(total),
        "total_ms": sorted(total),
        "forward_ms": sorted(forward),
        "firmware_ms": sorted(firmware),
    }
    return rows, detail


# -- 5. idle cost -------------------------------------------------------------------------------


def proc_cpu_s(pid):
    """CPU seconds of every thread of ``pid``: the scheduler's nanosecond count
    (``/proc/PID/task/*/schedstat``), and utime + stime in clock ticks (``/proc/PID/stat``)."""
    ns = 0
    for task in Path("/proc/%d/task" % pid).iterdir():
        try:
            ns += core.schedstat_ns((task / "schedstat").read_text())
        except OSError:
            pass  # a thread that just ended
    with open("/proc/%d/stat" % pid) as f:
        ticks = core.cpu_ticks(f.read())
    return ns / 1e9, ticks / os.sysconf("SC_CLK_TCK")


def figure_idle(ctx, window_s=60.0, settle_s=3.0):
    """CPU of the firmware process over a window while online and idle (telemetry once a
    day, no downlinks), beside an idle ``micropython`` (the same CPython wrapper around the
    VM, in ``asyncio.sleep``) over the same window: the wrapper's constant."""
    device = ctx.device("bench-idle")
    lines = Lines()
    emu = ctx.emulator("fast", [], lines)
    fw = control = None
    try:
        fw = ctx.firmware(
            "idle",
            device,
            emu,
            kib(ctx.heapsize),
            lines=lines,
            telemetry_interval_s=86400,
            echo_user_get=False,
        )
        idle = "import asyncio\nasyncio.run(asyncio.sleep(3600))\n"
        argv = [BIN / "micropython", "-X", "heapsize=" + kib(ctx.heapsize), "-c", idle]
        control = ctx.track(
            Stoppable("control", argv, env=dict(os.environ, MICROPYPATH=".frozen")).start()
        )
        fw.wait(ONLINE)
        fw.wait(r" I up properties: ")
        time.sleep(settle_s)
        at_before = len(lines.find(r"^\S+ --> ", "module"))
        f0, c0, t0 = proc_cpu_s(fw.proc.pid), proc_cpu_s(control.pid), time.monotonic()
        time.sleep(window_s)
        f1, c1, t1 = proc_cpu_s(fw.proc.pid), proc_cpu_s(control.pid), time.monotonic()
        at_count = len(lines.find(r"^\S+ --> ", "module")) - at_before
        reason = fw.failure()
        if reason:
            raise BenchError(reason)
    finally:
        for part in (control, fw, emu):
            if part is not None:
                part.close()
    per_min = 60.0 / (t1 - t0)
    fw_ms = (f1[0] - f0[0]) * per_min * 1000
    ctl_ms = (c1[0] - c0[0]) * per_min * 1000
    fw_ticks_ms = (f1[1] - f0[1]) * per_min * 1000
    rows = [
        core.row(
            "firmware process CPU while online and idle",
            fw_ms,
            "CPU ms/min",
            "idle micropython wrapper %.2f CPU ms/min" % ctl_ms,
            None,
            "%.0f s window, %d AT commands in it; /proc/PID/stat ticks say %.0f ms"
            % (t1 - t0, at_count, fw_ticks_ms),
        ),
        core.row(
            "firmware minus the idle wrapper",
            max(fw_ms - ctl_ms, 0.0),
            "CPU ms/min",
            "%.4f%% of one core" % (max(fw_ms - ctl_ms, 0.0) / 600.0),
        ),
    ]
    detail = {
        "window_s": t1 - t0,
        "firmware_cpu_s": f1[0] - f0[0],
        "control_cpu_s": c1[0] - c0[0],
        "firmware_ticks_s": f1[1] - f0[1],
        "at_commands": at_count,
    }
    return rows, detail


class Stoppable(simkit.Proc):
    """A plain child process with ``close()`` like the simkit parts."""

    def close(self):
        self.stop()


# -- 6. boot to online --------------------------------------------------------------------------


def boot_firmware(ctx, auth):
    """Realistic profile: seconds from the emulator's power-on (its readiness) to online."""
    device = ctx.device("bench-boot-" + auth)
    lines = Lines()
    emu = ctx.emulator("realistic", ["--transcript", "none"])
    t0 = time.time()
    fw = None
    try:
        fw = ctx.firmware(
            "boot-" + auth,
            device,
            emu,
            kib(ctx.heapsize),
            lines=lines,
            auth=auth,
            telemetry_interval_s=3600,
        )
        fw.wait(ONLINE, timeout=120)
        when = lines.find(ONLINE, "device")[0][0]
        attached = lines.find(r" I state (bearer|auth)$", "device")[0][0]
        fw.stop()
        stats = fw.stats() or {}
    finally:
        for part in (fw, emu):
            if part is not None:
                part.close()
    return {
        "online_s": when - t0,
        "attached_s": attached - t0,
        "device_time_to_online_ms": stats.get("time_to_online_ms"),
    }


def boot_baseline(ctx):
    """The seed's send-sleep-read procedure on the same realistic emulator, from power-on."""
    from tools.bench import seed_baseline

    device = ctx.device("bench-boot-seed")
    emu = ctx.emulator("realistic", ["--transcript", "none"])
    t0 = time.time()
    try:
        return seed_baseline.run(
            emu.ready["tcp"],
            device["productKey"],
            device["deviceName"],
            device["deviceSecret"],
            clock=time.time,
            start=t0,
        )
    finally:
        emu.close()


def figure_boot(ctx, extra=None):
    """Firmware (HTTPS auth, the seed's path; and direct) and the baseline, side by side.

    ``extra`` maps names to more callables run at the same time (the idle window: all of
    these sleep most of the time). Returns ``(rows, detail, errors, extra results)``.
    """
    jobs = {
        "firmware_http": lambda: boot_firmware(ctx, "http"),
        "firmware_direct": lambda: boot_firmware(ctx, "direct"),
        "seed": lambda: boot_baseline(ctx),
    }
    jobs.update(extra or {})
    results = run_parallel(jobs)
    others = {name: results.pop(name) for name in (extra or {})}
    base = results["seed"]
    rows = []
    for key, what in (
        ("firmware_http", "HTTPS device auth, as the seed"),
        ("firmware_direct", "direct MQTT signing"),
    ):
        res = results[key]
        if isinstance(res, Exception) or isinstance(base, Exception):
            continue
        rows.append(
            core.row(
                "firmware, %s: power-on -> online" % what,
                res["online_s"],
                "s",
                "seed script %.1f s" % base["online_s"],
                res["online_s"] / base["online_s"],
                "realistic profile, its 20 s power-on kept in both",
            )
        )
    fw = results["firmware_http"]
    if not isinstance(base, Exception) and not isinstance(fw, Exception):
        mine = fw["online_s"] - fw["attached_s"]
        theirs = base["online_s"] - base["attached_s"]
        rows.append(
            core.row(
                "from attached to online (what software decides), HTTPS auth",
                mine,
                "s",
                "seed script %.1f s from its +CGATT: 1" % theirs,
                mine / theirs,
            )
        )
    errors = {
        k: "%s: %s" % (type(v).__name__, v) for k, v in results.items() if isinstance(v, Exception)
    }
    detail = {k: v for k, v in results.items() if not isinstance(v, Exception)}
    return rows, detail, errors, others


def run_parallel(jobs):
    """Run callables on threads; their results (or the exception each raised) by name."""
    results = {}

    def worker(name, job):
        try:
            results[name] = job()
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=worker, args=item, daemon=True, name=item[0])
        for item in jobs.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
    return results


# -- 7. AT engine cost --------------------------------------------------------------------------

ATMODEM_COMMAND = (
    "MICROPYPATH=.frozen:lib:tests_host/portable .venv/bin/micropython tools/bench_atmodem.py"
)


def figure_atmodem(ctx):
    out = run_vm(["tools/bench_atmodem.py"], ".frozen:lib:tests_host/portable", 120)
    found = core.parse_atmodem(out.stdout)
    if "urc_bytes" not in found or "command_bytes" not in found:
        raise vm_failed("bench_atmodem", out)
    rows = [
        core.row(
            "bytes allocated per dispatched URC",
            found["urc_bytes"],
            "B",
            "of which the test UART shim %.1f B" % found.get("urc_shim_bytes", 0),
            None,
            "%d us each" % found.get("urc_us", 0),
        ),
        core.row(
            "bytes allocated per command round trip (AT -> OK)",
            found["command_bytes"],
            "B",
            "of which the test UART shim %.1f B" % found.get("command_shim_bytes", 0),
            None,
            "%d us each" % found.get("command_us", 0),
        ),
    ]
    return rows, found
