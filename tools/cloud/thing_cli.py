"""``aliyun-local`` commands of the thing model: ``tsl import|export``, ``invoke-service``,
``set-desired``, ``property`` (registered by ``cli.build_parser``).

``tsl`` and ``property`` work on the state dir; ``invoke-service`` and ``set-desired`` go through
the running server's control API (routes ``/invoke-service`` and ``/set-desired``).
"""

import json
import sys
from pathlib import Path

from tools.cloud import tsl
from tools.cloud.thingmodel import SYNC_TIMEOUT_S


def _cli():
    from tools.cloud import cli  # the shared helpers (emit, registry, control API)

    return cli


def cmd_tsl_import(args):
    cli = _cli()
    try:
        text = (
            Path(args.file).read_text(encoding="utf-8") if args.file != "-" else sys.stdin.read()
        )
    except OSError as exc:
        raise cli.CLIError("cannot read %s: %s" % (args.file, exc)) from None
    registry = cli.open_registry(args)
    try:
        model = registry.things.import_tsl(args.product_key, text, cli.reg.now_ms())
    except tsl.TslError as exc:
        raise cli.CLIError("TSL refused: %s" % exc) from None
    counts = {k: len(v) for k, v in model.items()}
    cli.emit(
        args,
        dict(counts, productKey=args.product_key),
        "TSL of %s: %d properties, %d services, %d events"
        % (args.product_key, counts["properties"], counts["services"], counts["events"]),
    )


def cmd_tsl_export(args):
    cli = _cli()
    text = cli.open_registry(args).things.export_tsl(args.product_key)
    if text is None:
        raise cli.CLIError("product %s has no TSL (import one first)" % args.product_key)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _device(args):
    return _cli().open_registry(args).resolve(args.device, args.product)


def cmd_invoke_service(args):
    """InvokeThingService: async waits for ``<id>_reply``; sync (``--sync`` or the TSL's
    callType) goes over RRPC with the platform's 8 s limit."""
    cli = _cli()
    params = dict(cli.parse_assignment(a) for a in args.assignments)
    device = _device(args)
    body = {
        "productKey": device["productKey"],
        "deviceName": device["deviceName"],
        "identifier": args.identifier,
        "params": params,
        "timeout": min(args.timeout, SYNC_TIMEOUT_S) if args.sync else args.timeout,
        "sync": args.sync,
        "check": not args.no_check,
    }
    reply = cli.control_ok(
        cli.server_info(args), "POST", "/invoke-service", body, args.timeout + 10
    )
    code = reply["reply"].get("code")
    cli.emit(
        args,
        reply["reply"],
        "%s code %s: %s" % (args.identifier, code, json.dumps(reply["reply"])),
    )
    return 0 if code == 200 else 1


def cmd_set_desired(args):
    cli = _cli()
    params = dict(cli.parse_assignment(a) for a in args.assignments)
    device = _device(args)
    body = {"productKey": device["productKey"], "deviceName": device["deviceName"]}
    body["params"] = params
    reply = cli.control_ok(cli.server_info(args), "POST", "/set-desired", body)
    lines = [
        "%s = %s (version %d)" % (k, json.dumps(v["value"], ensure_ascii=False), v["version"])
        for k, v in sorted(reply["desired"].items())
    ]
    lines.append("pushed to the online device" if reply["pushed"] else "device offline: kept")
    cli.emit(args, reply, lines)


def cmd_property(args):
    cli = _cli()
    registry = cli.open_registry(args)
    device = _device(args)
    pk, dn = device["productKey"], device["deviceName"]
    if args.history:
        rows = registry.things.history(pk, dn, args.identifier, args.limit)
        text = [
            "%s  %-20s %s" % (cli.format_time(r["time"]), r["identifier"], _show(r["value"]))
            for r in rows
        ]
        cli.emit(args, rows, text or ["(no history)"])
        return
    props = device["properties"]
    if args.identifier:
        props = {k: v for k, v in props.items() if k == args.identifier}
    rows = [
        {"identifier": k, "value": _show(v.get("value")), "time": cli.format_time(v.get("time"))}
        for k, v in sorted(props.items())
    ]
    table = cli.table(rows, [("identifier", "Identifier"), ("value", "Value"), ("time", "Time")])
    cli.emit(args, props, table)


def _show(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def register(command, sub, as_json):
    """Add the commands to the parser (``command(parent, name, func, help, *parents)``)."""
    group = sub.add_parser("tsl", help="the product's thing model (TSL)").add_subparsers(
        dest="action", required=True
    )
    p = command(group, "import", cmd_tsl_import, "store a product's TSL (console export)", as_json)
    p.add_argument("product_key")
    p.add_argument("file", help="TSL JSON file (- for stdin)")
    p = command(group, "export", cmd_tsl_export, "print a product's TSL")
    p.add_argument("product_key")

    def device_args(p):
        p.add_argument("device", help="DeviceName or ProductKey/DeviceName")
        p.add_argument("--product", help="productKey, when the name is ambiguous")

    p = command(
        sub, "invoke-service", cmd_invoke_service, "call a service, wait for its reply", as_json
    )
    device_args(p)
    p.add_argument("identifier", help="service identifier (TSL)")
    p.add_argument("assignments", nargs="*", metavar="key=value", help="value parsed as JSON")
    p.add_argument("--sync", action="store_true", help="over RRPC (the TSL's sync services are)")
    p.add_argument("--no-check", action="store_true", help="send without the TSL check")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (sync: at most 8)")

    p = command(sub, "set-desired", cmd_set_desired, "set desired property values", as_json)
    device_args(p)
    p.add_argument("assignments", nargs="+", metavar="key=value", help="value parsed as JSON")

    p = command(
        sub, "property", cmd_property, "latest property values (or their history)", as_json
    )
    device_args(p)
    p.add_argument("--history", action="store_true", help="every stored value with its time")
    p.add_argument("--identifier", help="one property only")
    p.add_argument("--limit", type=int, default=100, help="history rows (default 100)")
