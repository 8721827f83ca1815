"""Figure 5, idle cost: CPU of the firmware process over a window while online and idle."""

import os
import time
from pathlib import Path

from tools.bench import core
from tools.bench.context import BIN, ONLINE, BenchError, Lines, Stoppable, kib


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


def window(ctx, window_s, settle_s):
    """The firmware (telemetry once a day, no downlinks) and an idle ``micropython`` (the same
    CPython wrapper around the VM, in ``asyncio.sleep``): their CPU over the same window."""
    device = ctx.device("bench-idle")  # first: it starts the shared cloud
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
        env = dict(os.environ, MICROPYPATH=".frozen")
        control = ctx.track(Stoppable("control", argv, env=env).start())
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
    return t1 - t0, (f0, f1), (c0, c1), at_count


def measure(ctx, options):
    seconds, (f0, f1), (c0, c1), at_count = window(ctx, options.idle_window, 3.0)
    per_min = 60.0 / seconds
    fw_ms = (f1[0] - f0[0]) * per_min * 1000
    ctl_ms = (c1[0] - c0[0]) * per_min * 1000
    fw_ticks_ms = (f1[1] - f0[1]) * per_min * 1000
    rows = [
        core.aim_row(
            "firmware process CPU while online and idle",
            fw_ms,
            "CPU ms/min",
            60000.0,
            "one core (60,000 CPU ms/min); idle micropython wrapper %.2f CPU ms/min" % ctl_ms,
            "%.0f s window, %d AT commands in it; /proc/PID/stat ticks say %.0f ms"
            % (seconds, at_count, fw_ticks_ms),
        ),
        core.aim_row(
            "firmware minus the idle wrapper",
            max(fw_ms - ctl_ms, 0.0),
            "CPU ms/min",
            60000.0,
            "one core",
        ),
    ]
    detail = {
        "window_s": seconds,
        "firmware_cpu_s": f1[0] - f0[0],
        "control_cpu_s": c1[0] - c0[0],
        "firmware_ticks_s": f1[1] - f0[1],
        "at_commands": at_count,
    }
    return rows, detail
