"""``aliyun-local``: run the local Aliyun-compatible cloud and act as its console.

Commands that print records take ``--json`` (one JSON object or list on stdout). Registry
commands work on the state dir directly; ``pub``, ``set-property`` and ``log --follow`` talk to
the running server through its control API (found via ``<state dir>/server.json``).
"""

import argparse
import asyncio
import http.client
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from amqtt.errors import BrokerError

from tools.cloud import certs, thing_cli
from tools.cloud import registry as reg
from tools.cloud.limits import Limits
from tools.cloud.server import (
    DEFAULT_PORTS,
    DEFAULT_REGION,
    Cloud,
    default_state_dir,
    read_server_file,
)
from tools.cloud.text import printable
from tools.cloud.topics import DEFAULT_USER_CLASSES, PUB


class CLIError(Exception):
    pass


# output ---------------------------------------------------------------------------------------


def emit(args, obj, text):
    """Print ``obj`` as JSON with --json, else the human ``text`` (a str or list of lines,
    each escaped: records hold names and payloads that came from devices)."""
    if getattr(args, "json", False):
        print(json.dumps(obj, ensure_ascii=False))
    else:
        lines = [text] if isinstance(text, str) else text
        print("\n".join(printable(line) for line in lines))


def table(rows, columns):
    """Fixed-width text table of dict rows."""
    if not rows:
        return ["(none)"]
    cells = [
        [printable(r.get(key, "") if r.get(key) is not None else "-") for key, _ in columns]
        for r in rows
    ]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    lines = ["  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return [line.rstrip() for line in lines]


def format_time(ms):
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) + ".%03d" % (ms % 1000)


def log_line(row) -> str:
    """One log row as a line of text; every field from a device is escaped (``printable``)."""
    device = "%s/%s" % (row["productKey"], row["deviceName"]) if row["deviceName"] else "-"
    content = printable(row["content"] or "")
    if len(content) > 160:
        content = content[:157] + "..."
    kind = reg.LOG_TYPES.get(row["type"], row["type"])
    return "%s  %-13s  %-28s  %-12s  %s  %s" % (
        format_time(row["time"]),
        printable(kind),
        printable(device),
        printable(row["status"]),
        printable(row["topic"] or "-"),
        content,
    )


class PrintableFormatter(logging.Formatter):
    """Log records on stderr with untrusted text escaped (messages carry device strings)."""

    def format(self, record):
        return printable(super().format(record))


# state and server access ----------------------------------------------------------------------


def state_dir(args) -> Path:
    return Path(args.state_dir) if getattr(args, "state_dir", None) else default_state_dir()


def open_registry(args):
    return reg.Registry(state_dir(args) / reg.DB_NAME)


def server_info(args, required=True):
    info = read_server_file(state_dir(args))
    if info is None and required:
        raise CLIError(
            "no running server for state dir %s (start it with `aliyun-local serve`)"
            % state_dir(args)
        )
    return info


def control(info, method, path, body=None, timeout=30):
    """One control-API request to the running server; returns (status, JSON reply)."""
    conn = http.client.HTTPConnection("127.0.0.1", info["ports"]["control"], timeout=timeout)
    headers = {"Authorization": "Bearer " + info["token"], "Content-Type": "application/json"}
    try:
        conn.request(
            method, path, json.dumps(body).encode() if body is not None else None, headers
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except OSError as exc:
        raise CLIError("server at control port %s: %s" % (info["ports"]["control"], exc)) from exc
    finally:
        conn.close()


def control_ok(info, method, path, body=None, timeout=30):
    status, reply = control(info, method, path, body, timeout)
    if status != 200 or not reply.get("ok"):
        raise CLIError(reply.get("error") or "control API answered HTTP %d" % status)
    return reply


# commands -------------------------------------------------------------------------------------


def cmd_serve(args):
    # The message log (echoed on stderr) reports every event; library logs only on -v.
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(logging.BASIC_FORMAT))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, handlers=[handler])
    if not args.verbose:
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # failures reach us as errors
    running = server_info(args, required=False)
    if running and _alive(running.get("pid")):
        raise CLIError("a server (pid %s) already runs for %s" % (running["pid"], state_dir(args)))
    ports = {
        "mqtt": args.mqtt_port,
        "mqtts": args.mqtts_port,
        "https": args.https_port,
        "control": args.control_port,
        "console": args.console_port,
    }
    cloud = Cloud(
        state_dir(args),
        host=args.host,
        ports=ports,
        region=args.region,
        advertised_mqtt_port=args.advertise_mqtt_port,
        limits=Limits(connects_per_minute=args.test_connects_per_minute),
    )
    return asyncio.run(_serve(cloud, args))


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


async def _serve(cloud, args):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        info = await cloud.start()
    except (OSError, BrokerError) as exc:
        await cloud.stop()
        raise CLIError("cannot start: %s" % exc) from exc
    if not args.quiet:
        cloud.registry.listeners.append(lambda row: print(log_line(row), file=sys.stderr))
    line = json.dumps(info)
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(line + "\n")
        os.replace(tmp, args.ready_file)
    print(line, flush=True)
    # The web console: this link logs one browser in, once; then the login page wants the token.
    print("console: %s" % cloud.console.login_url(), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await cloud.stop()
    return 0


def cmd_ca(args):
    paths = certs.ensure(state_dir(args), args.region)
    emit(args, {"ca": str(paths.ca), "names": paths.names}, str(paths.ca))


def _product_text(p):
    return [
        "ProductKey       %s" % p["productKey"],
        "ProductSecret    %s" % p["productSecret"],
        "Name             %s" % p["name"],
        "DynamicRegister  %s" % ("on" if p["dynamicRegister"] else "off"),
    ]


def cmd_product_add(args):
    product = open_registry(args).add_product(
        args.name, args.product_key, args.product_secret, args.dynamic_register
    )
    emit(args, product, _product_text(product))


def cmd_product_list(args):
    products = open_registry(args).products()
    rows = [dict(p, dynamicRegister="on" if p["dynamicRegister"] else "off") for p in products]
    cols = [("productKey", "ProductKey"), ("name", "Name"), ("dynamicRegister", "DynReg")]
    emit(args, products, table(rows, cols))


def cmd_product_set(args):
    registry = open_registry(args)
    product = registry.set_dynamic_register(args.product_key, args.dynamic_register == "on")
    emit(args, product, _product_text(product))


def _triple(device):
    return {
        "productKey": device["productKey"],
        "deviceName": device["deviceName"],
        "deviceSecret": device["deviceSecret"],
    }


def _triple_text(device):
    return [
        "ProductKey    %s" % device["productKey"],
        "DeviceName    %s" % device["deviceName"],
        "DeviceSecret  %s" % device["deviceSecret"],
    ]


def cmd_device_add(args):
    """设备创建: prints the triple (its purpose is to hand it to the device)."""
    device = open_registry(args).add_device(args.product_key, args.device_name, args.secret)
    emit(args, _triple(device), _triple_text(device))


def cmd_device_list(args):
    devices = [reg.public_device(d) for d in open_registry(args).devices(args.product)]
    for d in devices:
        d["lastOnlineText"] = format_time(d["lastOnline"])
    cols = [
        ("productKey", "ProductKey"),
        ("deviceName", "DeviceName"),
        ("status", "Status"),
        ("lastOnlineText", "LastOnline"),
        ("ip", "IP"),
    ]
    emit(
        args,
        [{k: v for k, v in d.items() if k != "lastOnlineText"} for d in devices],
        table(devices, cols),
    )


def cmd_device_show(args):
    """Device details; ``--secret`` adds the triple (like the console's 查看 DeviceSecret)."""
    device = open_registry(args).resolve(args.device, args.product)
    record = reg.public_device(device)
    lines = [
        "ProductKey    %s" % device["productKey"],
        "DeviceName    %s" % device["deviceName"],
        "Status        %s" % record["status"],
        "LastOnline    %s" % format_time(device["lastOnline"]),
        "Firmware      %s" % (device["firmwareVersion"] or "-"),
    ]
    if args.secret:
        record["deviceSecret"] = device["deviceSecret"]
        lines.insert(2, "DeviceSecret  %s" % device["deviceSecret"])
    for key, item in sorted(device["properties"].items()):
        lines.append(
            "  %-20s %s  (%s)" % (key, json.dumps(item["value"]), format_time(item["time"]))
        )
    emit(args, record, lines)


def _set_enabled(args, enabled):
    registry = open_registry(args)
    device = registry.resolve(args.device, args.product)
    device = registry.set_enabled(device["productKey"], device["deviceName"], enabled)
    kicked = False
    info = server_info(args, required=False)
    if not enabled and info is not None:  # a disabled device goes offline at once
        body = {
            "productKey": device["productKey"],
            "deviceName": device["deviceName"],
            "reason": "device disabled",
        }
        kicked = control_ok(info, "POST", "/kick", body)["kicked"]
    record = dict(reg.public_device(device), kicked=kicked)
    text = "%s/%s %s" % (device["productKey"], device["deviceName"], record["status"])
    emit(args, record, text + (" (kicked offline)" if kicked else ""))


def cmd_device_disable(args):
    _set_enabled(args, False)


def cmd_device_enable(args):
    _set_enabled(args, True)


def cmd_topic_add(args):
    topic = open_registry(args).add_topic_class(args.product_key, args.name, args.perm)
    emit(args, topic, "%s  %s" % (topic["topic"], topic["perm"]))


def cmd_topic_list(args):
    registry = open_registry(args)
    if registry.product(args.product_key) is None:
        raise CLIError("no product %s" % args.product_key)
    rows = [
        {"topic": "/%s/${deviceName}/user/%s" % (args.product_key, name), "perm": perm}
        for name, perm in [(n, "pub" if p == PUB else "sub") for n, p in DEFAULT_USER_CLASSES]
        + registry.topic_classes(args.product_key)
    ]
    emit(args, rows, table(rows, [("topic", "Topic"), ("perm", "Permission")]))


def cmd_pub(args):
    """发布消息: publish a downlink to a topic the device subscribes (via the server)."""
    body = {"topic": args.topic, "payload": args.payload, "qos": args.qos}
    reply = control_ok(server_info(args), "POST", "/pub", body)
    emit(args, reply, "published to %s (qos %d): %s" % (args.topic, args.qos, reply["status"]))


def parse_assignment(text):
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise CLIError("expected key=value, got %r" % text)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value  # a bare word is a string


def cmd_set_property(args):
    """thing.service.property.set; waits for the device's set_reply."""
    params = dict(parse_assignment(a) for a in args.assignments)
    device = open_registry(args).resolve(args.device, args.product)
    body = {
        "productKey": device["productKey"],
        "deviceName": device["deviceName"],
        "params": params,
        "timeout": args.timeout,
        "check": not getattr(args, "no_check", False),
    }
    reply = control_ok(server_info(args), "POST", "/set-property", body, args.timeout + 10)
    code = reply["reply"].get("code")
    emit(args, reply["reply"], "set_reply code %s: %s" % (code, json.dumps(reply["reply"])))
    return 0 if code == 200 else 1


def cmd_log(args):
    pk = dn = None
    if args.device:
        device = open_registry(args).resolve(args.device, args.product)
        pk, dn = device["productKey"], device["deviceName"]
    elif args.product:
        pk = args.product
    if not args.follow:
        rows = open_registry(args).messages(pk, dn, args.limit)
        emit(args, rows, [log_line(r) for r in rows] or ["(no messages)"])
        return 0
    return _follow(args, server_info(args), pk, dn)


def _follow(args, info, pk, dn):
    """Stream the live log (the server sends the last rows, then each new one)."""
    query = "limit=%d&follow=1" % args.limit
    if pk:
        query += "&productKey=" + pk
    if dn:
        query += "&deviceName=" + dn
    conn = http.client.HTTPConnection("127.0.0.1", info["ports"]["control"])
    conn.request("GET", "/log?" + query, headers={"Authorization": "Bearer " + info["token"]})
    response = conn.getresponse()
    if response.status != 200:
        raise CLIError("control API answered HTTP %d" % response.status)
    try:
        for line in response:
            row = json.loads(line)
            print(json.dumps(row, ensure_ascii=False) if args.json else log_line(row), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()
    return 0


# parser ---------------------------------------------------------------------------------------


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        help="state directory (default: $ALIYUN_LOCAL_STATE or $XDG_STATE_HOME/aliyun-local)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    parser = argparse.ArgumentParser(
        prog="aliyun-local",
        description="Local Aliyun-IoT-compatible cloud: MQTT broker, iot-auth, registry, log.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent, name, func, help_text, *parents):
        p = parent.add_parser(name, help=help_text, parents=[common, *parents])
        p.set_defaults(func=func)
        return p

    p = command(sub, "serve", cmd_serve, "run broker, HTTPS auth and control API")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    for name, title in (
        ("mqtt", "MQTT over TCP"),
        ("mqtts", "MQTT over TLS"),
        ("https", "HTTPS"),
        ("control", "control API"),
        ("console", "web console"),
    ):
        p.add_argument(
            "--%s-port" % name,
            type=int,
            default=DEFAULT_PORTS[name],
            help="%s port (0 = any free port; default %d)" % (title, DEFAULT_PORTS[name]),
        )
    p.add_argument("--region", default=DEFAULT_REGION, help="region in host names")
    p.add_argument(
        "--advertise-mqtt-port",
        type=int,
        default=1883,
        help="MQTT port reported by /auth/devicename (default 1883, as the platform)",
    )
    p.add_argument(
        "--test-connects-per-minute",
        type=int,
        default=Limits.connects_per_minute,
        metavar="N",
        help="TEST KNOB: CONNECTs per device per minute (default %d, the platform's limit); "
        "only for fault-injection stress harnesses that reconnect faster than a device may"
        % Limits.connects_per_minute,
    )
    p.add_argument("--ready-file", help="write the ready JSON here once listening")
    p.add_argument("--quiet", action="store_true", help="do not echo the message log on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="also log broker internals")

    p = command(sub, "ca", cmd_ca, "print the path of the test CA certificate", as_json)
    p.add_argument("--region", default=DEFAULT_REGION)

    product = sub.add_parser("product", help="products").add_subparsers(
        dest="action", required=True
    )
    p = command(product, "add", cmd_product_add, "create a product", as_json)
    p.add_argument("name", nargs="?", help="display name")
    p.add_argument("--product-key", help="productKey (default: generated)")
    p.add_argument("--product-secret", help="productSecret (default: generated)")
    p.add_argument("--dynamic-register", action="store_true", help="allow dynamic registration")
    command(product, "list", cmd_product_list, "list products", as_json)
    p = command(product, "set", cmd_product_set, "change a product", as_json)
    p.add_argument("product_key")
    p.add_argument("--dynamic-register", choices=("on", "off"), required=True)

    device = sub.add_parser("device", help="devices").add_subparsers(dest="action", required=True)
    p = command(device, "add", cmd_device_add, "create a device and print its triple", as_json)
    p.add_argument("product_key")
    p.add_argument("device_name", nargs="?", help="DeviceName (default: generated)")
    p.add_argument("--secret", help="DeviceSecret (default: generated)")
    p = command(device, "list", cmd_device_list, "list devices and their status", as_json)
    p.add_argument("--product", help="only this productKey")
    for name, func, text in (
        ("show", cmd_device_show, "show a device"),
        ("disable", cmd_device_disable, "disable a device (kicks it offline)"),
        ("enable", cmd_device_enable, "enable a device"),
    ):
        p = command(device, name, func, text, as_json)
        p.add_argument("device", help="DeviceName or ProductKey/DeviceName")
        p.add_argument("--product", help="productKey, when the name is ambiguous")
        if name == "show":
            p.add_argument("--secret", action="store_true", help="include the DeviceSecret")

    topic = sub.add_parser("topic", help="custom topic classes").add_subparsers(
        dest="action", required=True
    )
    p = command(topic, "add", cmd_topic_add, "add /pk/${deviceName}/user/NAME", as_json)
    p.add_argument("product_key")
    p.add_argument("name", help="class below /user/, e.g. cmd or data/+ (sub only)")
    p.add_argument("--perm", choices=reg.PERMS, required=True, help="pub, sub or all")
    p = command(topic, "list", cmd_topic_list, "list a product's topic classes", as_json)
    p.add_argument("product_key")

    p = command(sub, "pub", cmd_pub, "publish a message to a device topic", as_json)
    p.add_argument("topic")
    p.add_argument("payload")
    p.add_argument("--qos", type=int, choices=(0, 1), default=0)

    p = command(sub, "set-property", cmd_set_property, "set properties, wait for reply", as_json)
    p.add_argument("device", help="DeviceName or ProductKey/DeviceName")
    p.add_argument("assignments", nargs="+", metavar="key=value", help="value parsed as JSON")
    p.add_argument("--product", help="productKey, when the name is ambiguous")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for set_reply")
    p.add_argument("--no-check", action="store_true", help="send without the TSL check")

    p = command(sub, "log", cmd_log, "show the message log", as_json)
    p.add_argument("--device", help="DeviceName or ProductKey/DeviceName")
    p.add_argument("--product", help="productKey")
    p.add_argument("--limit", type=int, default=50, help="rows to show first (default 50)")
    p.add_argument("--follow", action="store_true", help="keep printing new rows")
    thing_cli.register(command, sub, as_json)

    from tools.cloud import otacli  # the ota commands (they use this module's helpers)

    otacli.register(sub, command, as_json)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (CLIError, ValueError, OSError) as exc:  # RegistryError, SignError, OtaError, files
        print("aliyun-local: %s" % printable(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
