"""``air724-sim``: an emulated Air724UG on a pty or TCP, and ``air724-sim ctl`` to steer it."""

import argparse
import asyncio
import ipaddress
import json
import os
import sys
from types import SimpleNamespace

from . import control
from .basic import Identity
from .dialect import OPTIONS, Dialect, parse_assignment
from .faults import FAULTS, FaultError, load_scenario
from .net import Network, parse_rule
from .profiles import NAMES, PROFILES, make_profile
from .server import serve

CTL_ENV = "AIR724_SIM_CTL"


def _run_parser():
    p = argparse.ArgumentParser(
        prog="air724-sim",
        description="Emulated AirM2M Air724UG (AT dialect) backed by real networking. "
        "Use `air724-sim ctl --help` to steer a running emulator.",
    )
    serve_group = p.add_argument_group("endpoints")
    serve_group.add_argument(
        "--pty",
        action="store_true",
        help="serve on a pseudo-terminal (default when --listen is absent)",
    )
    serve_group.add_argument(
        "--listen",
        metavar="tcp://HOST:PORT",
        help="serve on TCP (port 0: any free port; loopback only unless --allow-remote)",
    )
    serve_group.add_argument(
        "--allow-remote", action="store_true", help="allow a --listen address that is not loopback"
    )
    serve_group.add_argument("--link", metavar="PATH", help="symlink PATH to the pty device")
    serve_group.add_argument(
        "--ctl",
        metavar="ADDR",
        help="control socket: unix:PATH or tcp://127.0.0.1:PORT "
        "(default: a unix socket in a private temporary directory)",
    )
    serve_group.add_argument(
        "--ready-file", metavar="FILE", help="also write the JSON ready line to FILE (atomically)"
    )
    module = p.add_argument_group("module")
    module.add_argument(
        "--profile", choices=sorted(PROFILES), default="fast", help="timing profile (default fast)"
    )
    module.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help=f"override one latency: {', '.join(NAMES)}",
    )
    module.add_argument(
        "--baud",
        type=int,
        default=0,
        help="pace both directions at this UART line rate (N/10 bytes/s)",
    )
    module.add_argument(
        "--dialect",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="dialect option (see --list-dialect)",
    )
    module.add_argument(
        "--list-dialect", action="store_true", help="list dialect options and exit"
    )
    module.add_argument("--firmware", default=Identity.firmware)
    module.add_argument("--imei", default=Identity.imei)
    module.add_argument("--iccid", default=Identity.iccid)
    module.add_argument("--imsi", default=Identity.imsi)
    module.add_argument("--csq", type=int, default=Identity.rssi, help="signal (rssi 0-31)")
    module.add_argument("--no-sim", action="store_true", help="start without a SIM card")
    net = p.add_argument_group("network")
    net.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST[:PORT]=IP[:PORT]",
        help="map a host name (wildcards allowed) to a local server; repeatable",
    )
    net.add_argument(
        "--strict-resolve",
        action="store_true",
        help="names not mapped by --resolve fail like a DNS error",
    )
    net.add_argument(
        "--ca",
        metavar="FILE",
        help="verify TLS servers against this CA (default: no verification, as "
        "the module without AT+SSLCFG)",
    )
    net.add_argument("--net-timeout", type=float, default=10.0, help="connect timeout in seconds")
    faults = p.add_argument_group("faults and transcript")
    faults.add_argument("--scenario", metavar="FILE", help="JSON fault scenario")
    faults.add_argument(
        "--transcript",
        default="-",
        metavar="FILE",
        help="transcript file; - is stderr (default), none disables it",
    )
    faults.add_argument(
        "--show-secrets",
        action="store_true",
        help="do not mask the AT+MCONFIG password in the transcript",
    )
    faults.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return p


def _listen(text, allow_remote):
    if not text.startswith("tcp://"):
        raise ValueError("--listen expects tcp://HOST:PORT")
    host, _, port = text[6:].rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not allow_remote and not (host == "localhost" or ipaddress.ip_address(host).is_loopback):
        raise ValueError(f"--listen {host}: not loopback (add --allow-remote)")
    return host, int(port)


def build_options(argv):
    parser = _run_parser()
    args = parser.parse_args(argv)
    if args.list_dialect:
        for option in OPTIONS:
            choices = "|".join(option.choices) or type(option.default).__name__
            default = f"{option.name}={option.default}"
            print(f"{default:<28} {choices:<32} {option.ref}: {option.help}")
        raise SystemExit(0)
    try:
        dialect_values, events = {}, []
        if args.scenario:
            with open(args.scenario, encoding="utf-8") as handle:
                dialect_values, events = load_scenario(json.load(handle))
        dialect_values = dict(dialect_values)
        dialect_values.update(parse_assignment(a) for a in args.dialect)
        Dialect(dialect_values)  # validate now, with a clear message
        profile = make_profile(args.profile, [parse_assignment(a) for a in args.latency])
        network = Network(
            [parse_rule(r) for r in args.resolve], args.strict_resolve, args.ca, args.net_timeout
        )
        listen = _listen(args.listen, args.allow_remote) if args.listen else None
        if args.ctl:
            control.parse_address(args.ctl)
        if args.ca and not os.path.exists(args.ca):
            raise ValueError(f"--ca {args.ca}: no such file")
        if args.baud < 0:
            raise ValueError("--baud must be positive")
    except (ValueError, OSError, FaultError) as err:
        parser.error(str(err))
    identity = Identity(
        args.firmware, args.imei, args.iccid, args.imsi, args.csq, sim=not args.no_sim
    )
    return SimpleNamespace(
        pty=args.pty or not listen,
        listen=listen,
        link=args.link,
        ctl=args.ctl,
        ready_file=args.ready_file,
        profile=profile,
        profile_name=args.profile,
        baud=args.baud or None,
        dialect=dialect_values,
        identity=identity,
        network=network,
        events=events,
        transcript=args.transcript,
        show_secrets=args.show_secrets,
        color=args.color,
    )


def _ctl_parser():
    p = argparse.ArgumentParser(
        prog="air724-sim ctl",
        description="Steer a running air724-sim: inject a fault or query it. Commands: status, "
        "set NAME=VALUE (dialect), dialect, faults, or a fault kind: " + ", ".join(FAULTS),
    )
    p.add_argument("--ctl", metavar="ADDR", help=f"control address (or ${CTL_ENV})")
    p.add_argument("--ready-file", metavar="FILE", help="read the control address from here")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("command")
    p.add_argument("params", nargs="*", metavar="NAME=VALUE")
    return p


def ctl_main(argv):
    parser = _ctl_parser()
    args = parser.parse_args(argv)
    address = args.ctl or os.environ.get(CTL_ENV)
    if not address and args.ready_file:
        with open(args.ready_file, encoding="utf-8") as handle:
            address = json.loads(handle.readline())["ctl"]
    if not address:
        parser.error(f"no control address: give --ctl, --ready-file or ${CTL_ENV}")
    try:
        params = dict(parse_assignment(p) for p in args.params)
        reply = control.request(address, args.command, params, args.timeout)
    except (ValueError, OSError) as err:
        print(json.dumps({"ok": False, "error": str(err)}))
        return 2
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ctl"]:
        return ctl_main(argv[1:])
    options = build_options(argv)
    try:
        return asyncio.run(serve(options))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
