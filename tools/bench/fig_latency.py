"""Figure 4, downlink latency: cloud publish -> application callback, median and p99, against
the emulator's own forwarding time (cloud -> ``+MSUB`` on the UART)."""

import time

from tools.bench import core
from tools.bench.context import ONLINE, WAIT, BenchError, Lines, kib, user_topic


def collect(ctx, count, spacing_s):
    """Send ``count`` QoS0 downlinks; the lines of the emulator and the firmware, and the
    cloud log's mark before the first."""
    device = ctx.device("bench-latency")
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
        time.sleep(1.0)  # let the boot's last replies settle: the downlinks go out alone
        since = ctx.rows.mark()
        topic = user_topic(device, "get")
        for i in range(count):
            ctx.pub(topic, '{"n":%d}' % i, 0)
            time.sleep(spacing_s)  # pacing of the load, not a synchronization
        wait_callbacks(lines, fw, count)
        fw.stop()
    finally:
        for part in (fw, emu):
            if part is not None:
                part.close()
    return device, lines, since


def wait_callbacks(lines, fw, count):
    deadline = time.monotonic() + WAIT
    while len(lines.find(r"^bench rx ", "device")) < count:
        if time.monotonic() > deadline:
            got = len(lines.find(r"^bench rx ", "device"))
            raise BenchError("only %d of %d downlinks reached the callback" % (got, count))
        reason = fw.failure()
        if reason:
            raise BenchError(reason)
        time.sleep(0.1)  # polls a list the reader threads fill; the deadline bounds it


def stamps(ctx, device, lines, since):
    """Per payload: the cloud's send time, the ``+MSUB`` in the transcript, the callback."""
    # The cloud's and the transcript's stamps are whole milliseconds, cut down: their
    # midpoint (+0.5 ms) is the unbiased estimate.
    sent = {}
    for r in ctx.rows.select(since, device["deviceName"], type="down", topic="/user/get"):
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
    return total, forward, firmware


def measure(ctx, options, count=200, spacing_s=0.03):
    device, lines, since = collect(ctx, count, spacing_s)
    total, forward, firmware = stamps(ctx, device, lines, since)
    if len(total) < count * 0.9:
        raise BenchError("matched only %d of %d downlinks" % (len(total), count))
    median_fwd = max(core.median(forward), 0.5)
    p99_fwd = max(core.percentile(forward, 99), 0.5)
    rows = [
        core.aim_row(
            "cloud publish -> app callback, median",
            core.median(total),
            "ms",
            median_fwd,
            "emulator's forwarding (cloud -> +MSUB on the UART) %.1f ms" % median_fwd,
            "%d downlinks, QoS0, %d ms apart" % (len(total), spacing_s * 1000),
        ),
        core.aim_row(
            "cloud publish -> app callback, p99",
            core.percentile(total, 99),
            "ms",
            p99_fwd,
            "emulator's forwarding p99 %.1f ms" % p99_fwd,
        ),
        core.aim_row(
            "firmware alone (+MSUB on the UART -> callback), median / p99",
            core.median(firmware),
            "ms",
            core.median(total),
            "its share of the whole median; p99 %.1f ms" % core.percentile(firmware, 99),
        ),
    ]
    detail = {
        "count": len(total),
        "total_ms": sorted(total),
        "forward_ms": sorted(forward),
        "firmware_ms": sorted(firmware),
    }
    return rows, detail
