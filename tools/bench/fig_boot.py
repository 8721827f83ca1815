"""Figure 6, boot to online in the realistic profile: power-on -> online against the seed's
send-sleep-read procedure (tools/bench/seed_baseline.py) on the same emulator, and from
attached to online (the part software decides) against the sum of the module's own latencies
in the profile for the commands the firmware sent in that window."""

import re
import time

from tools.bench import core
from tools.bench.context import ONLINE, Lines, kib, run_parallel
from tools.emulator.profiles import PROFILES

PROFILE = "realistic"
ATTACHED = r" I state (bearer|auth)$"  # the first state after the module is attached
# The commands that wait for the module (or its network) and the profile's latency of each
# (tools/emulator/profiles.py): a QoS1 MPUB waits for its PUBACK.
LATENCIES = (
    (re.compile(r"AT\+SAPBR=1,1$|AT\+CIICR$"), "bearer"),
    (re.compile(r"AT\+HTTPACTION="), "http"),
    (re.compile(r"AT\+(SSL)?MIPSTART="), "connect"),
    (re.compile(r"AT\+MCONNECT="), "connack"),
    (re.compile(r"AT\+MSUB="), "suback"),
    (re.compile(r'AT\+MPUB=".*?",1,'), "puback"),
)
# A host line of the transcript: a command may follow raw bytes written just before it (an
# AT+HTTPDATA body has no line end), so the patterns are searched in the whole line.
COMMAND = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (.*)$")
STAMP = re.compile(r"^\s*(\d+)\.(\d{3}) [DIWE] ")  # the firmware log's uptime stamp


def module_latency(commands, profile=PROFILES[PROFILE]):
    """The sum of the profile's latencies for ``commands`` and the count of each kind."""
    total = 0.0
    kinds = {}
    for command in commands:
        for pattern, name in LATENCIES:
            if pattern.search(command):
                total += getattr(profile, name)
                kinds[name] = kinds.get(name, 0) + 1
                break
    return total, kinds


def boot_firmware(ctx, auth):
    """Seconds from the emulator's power-on (its readiness) to attached and to online, and
    the module's latencies for the commands in between."""
    device = ctx.device("bench-boot-" + auth)  # first: it starts the shared cloud
    lines = Lines()
    emu = ctx.emulator(PROFILE, [], lines)
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
        attached, online = device_epochs(lines, ATTACHED, ONLINE)
        fw.stop()
        stats = fw.stats() or {}
    finally:
        for part in (fw, emu):
            if part is not None:
                part.close()
    window = [
        m.group(2)
        for when, m in lines.find(COMMAND.pattern, "module")
        if attached <= core.transcript_epoch(m.group(1), when) <= online
    ]
    latency, kinds = module_latency(window)
    return {
        "online_s": online - t0,
        "attached_s": attached - t0,
        "module_latency_s": latency,
        "module_steps": kinds,
        "commands": len(window),
        "device_time_to_online_ms": stats.get("time_to_online_ms"),
    }


def device_epochs(lines, *patterns):
    """The host epoch of the first device log line matching each pattern, from the
    firmware's own uptime stamps: the line's stamp plus the offset of the device clock (the
    smallest arrival time minus stamp over all lines, the pipe's delay taken out)."""
    stamped = []
    for when, m in lines.find(STAMP.pattern, "device"):
        stamped.append((when, int(m.group(1)) + int(m.group(2)) / 1000.0, m.string))
    offset = min(when - uptime for when, uptime, _ in stamped)
    found = []
    for pattern in patterns:
        regex = re.compile(pattern)
        found.append(next(offset + up for _, up, text in stamped if regex.search(text)))
    return found


def boot_baseline(ctx):
    """The seed's send-sleep-read procedure on the same realistic emulator, from power-on."""
    from tools.bench import seed_baseline

    device = ctx.device("bench-boot-seed")
    emu = ctx.emulator(PROFILE, ["--transcript", "none"])
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


def power_on_rows(results, base):
    rows = []
    for key, what in (("http", "HTTPS device auth, as the seed"), ("direct", "direct signing")):
        res = results[key]
        if isinstance(res, Exception):
            continue
        rows.append(
            core.aim_row(
                "firmware, %s: power-on -> online" % what,
                res["online_s"],
                "s",
                base["online_s"],
                "seed script %.1f s" % base["online_s"],
                "realistic profile, its 20 s power-on kept in both",
            )
        )
    return rows


def attached_rows(results, base):
    rows = []
    for key, what in (("http", "HTTPS auth"), ("direct", "direct signing")):
        res = results[key]
        if isinstance(res, Exception):
            continue
        mine = res["online_s"] - res["attached_s"]
        steps = ", ".join("%s %d" % item for item in sorted(res["module_steps"].items()))
        rows.append(
            core.aim_row(
                "from attached to online (what software decides), " + what,
                mine,
                "s",
                res["module_latency_s"],
                "the module's own latencies for the same steps %.2f s (%s); seed script %.1f s"
                % (res["module_latency_s"], steps, base["online_s"] - base["attached_s"]),
            )
        )
    return rows


def measure(ctx, options):
    """The firmware (HTTPS auth, the seed's path; and direct) and the baseline, side by side
    (each mostly waits for the emulator)."""
    results = run_parallel(
        {
            "http": lambda: boot_firmware(ctx, "http"),
            "direct": lambda: boot_firmware(ctx, "direct"),
            "seed": lambda: boot_baseline(ctx),
        }
    )
    base = results["seed"]
    if isinstance(base, Exception):
        raise base
    failed = {k: v for k, v in results.items() if isinstance(v, Exception)}
    if len(failed) == 2:
        raise next(iter(failed.values()))
    rows = power_on_rows(results, base) + attached_rows(results, base)
    for key, exc in failed.items():
        rows.append(core.row("firmware, %s: not measured" % key, None, "", "", None, repr(exc)))
    detail = {k: v for k, v in results.items() if not isinstance(v, Exception)}
    return rows, detail
