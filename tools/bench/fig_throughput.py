"""Figure 3, throughput: publishes per second through lib/air724 alone at 115200 baud against
the UART line-rate bound for the same bytes (tools/bench/vm_throughput.py).

The UART link is TCP here: the driver sets TCP_NODELAY, as a UART has no Nagle delay (a row
shows the cost without it, as a TCP link without TCP_NODELAY has). The emulator paces each
direction as a wire does (tools/emulator/uart.py), so no rate can beat the bound: a ratio
above 1 would stop the figure (``core.BoundError``).
"""

import json

from tools.bench import core
from tools.bench.context import BAUD, HERE, MPY_PATH, BenchError, Lines, run_vm, vm_failed

PUBACK_S = 0.3  # the realistic profile's PUBACK latency (tools/emulator/profiles.py)
QOS0_AIM = 0.97  # of the UART bound
# (what, qos, count, emulator latencies, TCP_NODELAY, baud, module wait per publish)
PLANS = (
    ("QoS0, no module latency", 0, 300, (), True, BAUD, 0.0),
    ("QoS1, PUBACK after %g s" % PUBACK_S, 1, 20, [("puback", PUBACK_S)], True, BAUD, PUBACK_S),
    ("QoS0, Nagle on (a TCP link without TCP_NODELAY)", 0, 100, (), False, BAUD, 0.0),
    ("QoS0, unpaced (no --baud): the software ceiling", 0, 300, (), True, None, 0.0),
)


def property_post(device):
    topic = "/sys/%s/%s/thing/event/property/post" % (device["productKey"], device["deviceName"])
    body = {
        "id": "1",
        "version": "1.0",
        "params": {"Temperature": 21.5, "Humidity": 48},
        "method": "thing.event.property.post",
    }
    return topic, json.dumps(body, separators=(",", ":"))


def throughput_run(ctx, qos, count, latency=(), nodelay=False, baud=BAUD):
    """One lib/air724-only run against ``air724-sim --baud 115200``; the parsed result line."""
    from aliyun.sign import mqtt_credentials

    device = ctx.device("bench-tput")
    creds = mqtt_credentials(device["productKey"], device["deviceName"], device["deviceSecret"])
    topic, payload = property_post(device)
    args = ["--baud", str(baud)] if baud else []
    for name, seconds in latency:
        args += ["--latency", "%s=%s" % (name, seconds)]
    lines = Lines()
    emu = ctx.emulator("fast", args, lines)
    try:
        plan = ctx.workdir / "throughput.json"
        fields = ("client_id", "username", "password", "host", "port", "tls")
        inputs = {key: getattr(creds, key) for key in fields}
        inputs.update(uart=emu.ready["tcp"], topic=topic, qos=qos, count=count)
        inputs.update(payload=payload, nodelay=nodelay)
        plan.write_text(json.dumps(inputs))
        out = run_vm([HERE / "vm_throughput.py", plan], MPY_PATH, 180)
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


def rate_row(what, res, baud, wait):
    rate = res["count"] / (res["us"] / 1e6)
    note = "%d B payload; %d B to the module, %d B back" % (
        res["payload_bytes"],
        res["tx"],
        res["rx"],
    )
    bound = core.publish_bound(res["tx"], res["rx"], baud or BAUD, wait)
    if not baud:
        against = "%.2f ms a publish; headroom over the UART bound %.1f/s at %d baud" % (
            1000.0 / rate,
            bound,
            BAUD,
        )
        return core.aim_row(what, rate, "publishes/s", bound, against, note)
    against = "UART bound %.1f/s at %d baud%s" % (
        bound,
        baud,
        " + %g s PUBACK" % wait if wait else "",
    )
    if what.startswith("QoS0, no module"):
        against += "; aim %.2f of it" % QOS0_AIM
    return core.bound_row(what, rate, "publishes/s", bound, against, note)


def measure(ctx, options):
    rows = []
    detail = {}
    for what, qos, count, latency, nodelay, baud, wait in PLANS:
        res = throughput_run(ctx, qos, count, latency, nodelay, baud)
        detail[what] = res
        rows.append(rate_row(what, res, baud, wait))
    return rows, detail
