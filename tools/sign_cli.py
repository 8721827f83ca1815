"""aliyun-sign: Aliyun IoT device credentials and ready-to-paste Air724UG AT commands.

Replaces the web tools and the byte counting of the vendor how-to. Three commands:

    aliyun-sign mqtt       direct MQTT CONNECT (clientId, username, password, AT+MCONFIG ...)
    aliyun-sign http-auth  HTTPS device auth form body, its length, the AT+HTTP* sequence
    aliyun-sign dynreg     dynamic registration (HTTPS form, or MQTT with --mqtt)

It warns when a key, name or secret mixes look-alike characters (I/l/1, O/0) and, with
``--expect SIGN``, searches the look-alike spellings of the secret for the one that gives SIGN.
Exit status: 0 success, 1 ``--expect`` mismatch, 2 usage error. The secret itself is never
printed, except as the corrected spelling found by ``--expect``.
"""

import argparse
import itertools
import json
import sys
import time

from tools import aliyun_sign as sign
from tools.aliyun_sign import SignError

PROG = "aliyun-sign"
LOOKALIKES = ("Il1", "O0")
MAX_VARIANTS = 20000  # spellings tried by --expect; 2**k * 3**m grows fast
HTTPDATA_TIMEOUT_MS = 20000  # input window of AT+HTTPDATA, as in the vendor how-to
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Input the CLI cannot turn into safe output."""


def at_quote(field: str, value: str) -> str:
    """``"value"`` for an AT command argument.

    A quoted argument cannot safely carry ``"``, CR or LF (the module ends the argument or the
    command there), and the escape rules for ``\\`` outside AT+MPUB are undocumented
    (air724-at.md §7.2), so such values are rejected rather than escaped.
    """
    for ch in value:
        if ch in '"\\' or ord(ch) < 32 or ord(ch) == 127:
            raise UsageError("%s: %r cannot be placed in a quoted AT argument" % (field, ch))
    return '"' + value + '"'


def mixed_lookalikes(value: str) -> list:
    """``[(group, [1-based positions])]`` for each look-alike group ``value`` mixes."""
    found = []
    for group in LOOKALIKES:
        if len({ch for ch in value if ch in group}) > 1:
            found.append((group, [i + 1 for i, ch in enumerate(value) if ch in group]))
    return found


def lookalike_variants(value: str):
    """(total, iterator) over the other look-alike spellings of ``value``, fewest changes first."""
    spots = [(i, g) for i, ch in enumerate(value) for g in LOOKALIKES if ch in g]
    total = 1
    for _, group in spots:
        total *= len(group)

    def generate():
        for k in range(1, len(spots) + 1):
            for chosen in itertools.combinations(spots, k):
                others = [[c for c in g if c != value[i]] for i, g in chosen]
                for repl in itertools.product(*others):
                    chars = list(value)
                    for (i, _), ch in zip(chosen, repl, strict=True):
                        chars[i] = ch
                    yield "".join(chars)

    return total - 1, generate()


def find_spelling(value: str, expect: str, compute) -> dict:
    """Try look-alike spellings of ``value`` until ``compute(spelling) == expect``."""
    total, variants = lookalike_variants(value)
    tried = 0
    for spelling in itertools.islice(variants, MAX_VARIANTS):
        tried += 1
        if compute(spelling) == expect:
            return {"spelling": spelling, "tried": tried, "total": total}
    return {"spelling": None, "tried": tried, "total": total}


def _changes(old: str, new: str) -> str:
    return ", ".join(
        "position %d %s->%s" % (i + 1, a, b)
        for i, (a, b) in enumerate(zip(old, new, strict=True))
        if a != b
    )


def _read_secrets(args) -> None:
    """A secret given as ``-`` is read from stdin, which keeps it out of shell history."""
    for name in ("device_secret", "product_secret"):
        if getattr(args, name, None) == "-":
            setattr(args, name, sys.stdin.readline().strip())


def _timestamp(args):
    """The timestamp to send: --timestamp, none with --no-timestamp, else now."""
    if args.no_timestamp:
        return None
    if args.timestamp is not None:
        return args.timestamp
    return str(int(time.time() * 1000))  # milliseconds, as Aliyun documents (§1.2)


# --- commands -------------------------------------------------------------------------------


def cmd_mqtt(args) -> dict:
    """Direct MQTT CONNECT (aliyun-iot.md §1.2) and the AT+MCONFIG/…MIPSTART/MCONNECT lines."""
    secret = args.device_secret
    ts = _timestamp(args)
    creds = sign.mqtt_credentials(
        args.product_key,
        args.device_name,
        secret,
        args.client_id,
        ts,
        args.signmethod,
        sign.SECUREMODE_TCP if args.tcp else sign.SECUREMODE_TLS,
        region=args.region,
        host=args.host,
        port=args.port,
        keepalive=args.keepalive,
    )
    content = sign.sign_content(_sign_params(args, ts))
    # securemode=2 is TLS (AT+SSLMIPSTART), 3 plain TCP (AT+MIPSTART): the vendor how-to wrongly
    # pairs 3 with SSLMIPSTART. MIPSTART's manual syntax quotes the port (air724-at.md §7.2).
    start = "AT+SSLMIPSTART=%s,%d" if creds.tls else 'AT+MIPSTART=%s,"%d"'
    out = {
        "command": "mqtt",
        "clientId": creds.client_id,
        "username": creds.username,
        "password": creds.password,
        "signmethod": args.signmethod,
        "signContent": content,
        "host": creds.host,
        "port": creds.port,
        "tls": creds.tls,
        "securemode": sign.SECUREMODE_TLS if creds.tls else sign.SECUREMODE_TCP,
        "keepalive": creds.keepalive,
        "at": [
            _mconfig(creds),
            start % (at_quote("host", creds.host), creds.port),
            "AT+MCONNECT=1,%d" % creds.keepalive,
        ],
    }

    def compute(spelling):
        return sign.hmac_sign(content, spelling, args.signmethod)

    _expect(args, out, "password", secret, "device secret", compute)
    return out


def _sign_params(args, ts) -> dict:
    """The signed parameters, as sent (clientId defaults to the device name)."""
    params = {
        "clientId": args.device_name if args.client_id is None else args.client_id,
        "deviceName": args.device_name,
        "productKey": args.product_key,
    }
    if ts is not None:
        params["timestamp"] = ts
    return params


def _mconfig(creds) -> str:
    """``AT+MCONFIG="clientid","user","pwd"`` (air724-at.md §7.2: this argument order)."""
    return "AT+MCONFIG=%s,%s,%s" % (
        at_quote("clientId", creds.client_id),
        at_quote("username", creds.username),
        at_quote("password", creds.password),
    )


def cmd_http_auth(args) -> dict:
    """HTTPS device auth (§2): form body, length, the AT+HTTP* flow and the MQTT step after it."""
    secret = args.device_secret
    ts = _timestamp(args)
    body = sign.auth_form(
        args.product_key, args.device_name, secret, args.client_id, ts, args.signmethod
    )
    params = _sign_params(args, ts)
    content = sign.sign_content(params)
    host = args.host or sign.auth_host(args.region)
    out = _http_flow("http-auth", sign.url(host, sign.AUTH_PATH), body)
    out["sign"] = sign.hmac_sign(content, secret, args.signmethod)
    out["signmethod"] = args.signmethod
    out["signContent"] = content
    # The seed's next step: iotId/iotToken become the MQTT username/password, over TLS (§2).
    out["next"] = [
        'AT+MCONFIG=%s,"<iotId>","<iotToken>"' % at_quote("clientId", params["clientId"]),
        "AT+SSLMIPSTART=%s,1883" % at_quote("host", sign.mqtt_host(args.product_key, args.region)),
        "AT+MCONNECT=1,%d" % sign.DEFAULT_KEEPALIVE,
    ]

    def compute(spelling):
        return sign.hmac_sign(content, spelling, args.signmethod)

    _expect(args, out, "sign", secret, "device secret", compute)
    return out


def cmd_dynreg(args) -> dict:
    """Dynamic registration (§3): HTTPS form and AT+HTTP* flow, or MQTT CONNECT with --mqtt."""
    secret = args.product_secret
    random = args.random or sign.make_random()
    pk, dn = args.product_key, args.device_name
    if args.mqtt:
        creds = sign.register_mqtt_credentials(
            pk,
            dn,
            secret,
            random,
            args.mqtt,
            args.signmethod,
            args.instance_id,
            host=args.host,
            region=args.region,
            port=args.port,
        )
        out = {
            "command": "dynreg",
            "transport": "mqtt",
            "sign": creds.password,
            "clientId": creds.client_id,
            "username": creds.username,
            "password": creds.password,
            "host": creds.host,
            "port": creds.port,
            "replyTopic": "/ext/" + args.mqtt,
            "at": [
                _mconfig(creds),
                "AT+SSLMIPSTART=%s,%d" % (at_quote("host", creds.host), creds.port),
                "AT+MCONNECT=1,%d" % creds.keepalive,
            ],
        }
    else:
        if args.instance_id:
            raise UsageError("--instance-id applies to --mqtt registration only")
        body = sign.register_form(pk, dn, secret, random, args.signmethod)
        host = args.host or sign.auth_host(args.region)
        out = _http_flow("dynreg", sign.url(host, sign.REGISTER_PATH), body)
        out["transport"] = "https"
        out["sign"] = sign.register_sign(pk, dn, secret, random, args.signmethod)
    out["random"] = random
    out["signmethod"] = args.signmethod
    out["signContent"] = "deviceName" + dn + "productKey" + pk + "random" + random

    def compute(spelling):
        return sign.register_sign(pk, dn, spelling, random, args.signmethod)

    _expect(args, out, "sign", secret, "product secret", compute)
    return out


def _http_flow(command: str, url: str, body: str) -> dict:
    """The vendor how-to's AT+HTTP* sequence (seed errata fixed: HTTPINIT, HTTPPARA)."""
    length = len(body.encode())
    return {
        "command": command,
        "url": url,
        "body": body,
        "length": length,
        "at": [
            "AT+HTTPINIT",
            'AT+HTTPPARA="URL",%s' % at_quote("url", url),
            'AT+HTTPPARA="USER_DEFINED",%s'
            % at_quote("header", "Content-Type: " + sign.CONTENT_TYPE),
            "AT+HTTPDATA=%d,%d" % (length, HTTPDATA_TIMEOUT_MS),
            body,  # sent when the module answers DOWNLOAD
            "AT+HTTPACTION=1",
            "AT+HTTPREAD",
            "AT+HTTPTERM",
        ],
    }


def _expect(args, out: dict, key: str, secret: str, what: str, compute) -> None:
    """Compare ``out[key]`` with ``--expect``; on mismatch search look-alike spellings."""
    if args.expect is None:
        return
    expect = args.expect.strip().lower()
    result = {"value": expect, "match": out[key] == expect}
    if not result["match"]:
        result.update(find_spelling(secret, expect, compute))
        result["what"] = what
        result["changes"] = result["spelling"] and _changes(secret, result["spelling"])
    out["expect"] = result


# --- output ---------------------------------------------------------------------------------

_LABELS = (
    ("clientId", "clientId"),
    ("username", "username"),
    ("password", "password"),
    ("sign", "sign"),
    ("signmethod", "signmethod"),
    ("signContent", "sign content"),
    ("random", "random"),
    ("url", "url"),
    ("body", "body"),
    ("length", "length"),
)


def render_text(out: dict) -> str:
    """Human output: aligned ``label value`` lines, then the AT commands in sending order."""
    lines = []
    for key, label in _LABELS:
        if key in out and not (key == "sign" and "password" in out):
            value = out[key]
            if key == "length":
                value = "%d bytes (AT+HTTPDATA counts these)" % value
            lines.append("%-13s%s" % (label, value))
    if "host" in out:
        mode = "TLS" if out.get("tls", True) else "TCP"
        lines.append("%-13s%s:%d (%s)" % ("endpoint", out["host"], out["port"], mode))
    if "replyTopic" in out:
        lines.append("%-13s%s (pushed after CONNACK)" % ("reply topic", out["replyTopic"]))
    if "body" in out:
        lines += ["", "AT commands (send the body line when the module answers DOWNLOAD):"]
    else:
        lines += ["", "AT commands (send AT+MCONNECT as soon as CONNECT OK arrives):"]
    lines += out["at"]
    if "next" in out:
        lines += ["", "then, with iotId and iotToken from the +HTTPREAD reply (connect to"]
        lines += ["data.resources.mqtt host and port instead when the reply has them):"]
        lines += out["next"]
    return "\n".join(lines)


def report_expect(out: dict, err) -> int:
    """Explain the --expect outcome on ``err``; return the exit status."""
    result = out.get("expect")
    if result is None:
        return EXIT_OK
    if result["match"]:
        print("%s: --expect matches" % PROG, file=err)
        return EXIT_OK
    key = "password" if "password" in out else "sign"
    print(
        "%s: %s %s does not match --expect %s" % (PROG, key, out[key], result["value"]), file=err
    )
    capped = result["tried"] < result["total"]
    if result["spelling"]:
        print(
            "%s: the %s spelled %s reproduces it (%s)"
            % (PROG, result["what"], result["spelling"], result["changes"]),
            file=err,
        )
    elif result["total"] == 0:
        print("%s: the %s has no look-alike characters to vary" % (PROG, result["what"]), file=err)
    else:
        print(
            "%s: no look-alike spelling of the %s reproduces it (tried %d of %d%s)"
            % (
                PROG,
                result["what"],
                result["tried"],
                result["total"],
                ", search capped at %d" % MAX_VARIANTS if capped else "",
            ),
            file=err,
        )
    return EXIT_MISMATCH


def warn_lookalikes(args, err) -> list:
    """Print (and return) warnings for look-alike characters and plain TCP; no secret values."""
    warnings = []
    for name in ("product_key", "device_name", "client_id", "device_secret", "product_secret"):
        value = getattr(args, name, None)
        if not value:
            continue
        for group, positions in mixed_lookalikes(value):
            text = "--%s mixes look-alike characters %s (positions %s): check them" % (
                name.replace("_", "-"),
                "/".join(group),
                ", ".join(map(str, positions)),
            )
            warnings.append(text)
    if getattr(args, "tcp", False):
        # aliyun-iot.md §1.1: since 2022-08-02 new devices may not connect over plain TCP.
        warnings.append("--tcp: plain TCP is refused for many newer instances and devices")
    for text in warnings:
        print("%s: warning: %s" % (PROG, text), file=err)
    return warnings


# --- argument parsing -----------------------------------------------------------------------


def _add_common(p, secret: str, client_id: bool = True, timestamp: bool = True) -> None:
    """Options shared by the subcommands; ``secret`` names the secret option."""
    p.add_argument("--product-key", required=True, metavar="PK")
    p.add_argument("--device-name", required=True, metavar="DN")
    p.add_argument("--" + secret, required=True, metavar="SECRET", help="'-' reads it from stdin")
    if client_id:
        p.add_argument("--client-id", metavar="ID", help="default: the device name")
    if timestamp:
        ts = p.add_mutually_exclusive_group()
        ts.add_argument("--timestamp", metavar="MS", help="default: the current time in ms")
        ts.add_argument("--no-timestamp", action="store_true", help="leave the timestamp out")
    p.add_argument("--signmethod", choices=sign.SIGN_METHODS, default=sign.DEFAULT_SIGN_METHOD)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--region", default=sign.DEFAULT_REGION, help="default: %(default)s")
    where.add_argument("--host", help="explicit endpoint (e.g. an instance endpoint)")
    p.add_argument("--expect", metavar="SIGN", help="the sign you expect; exit 1 if it differs")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Aliyun IoT device signing and Air724UG AT commands."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mqtt", help="direct MQTT CONNECT credentials (one device, one secret)")
    _add_common(p, "device-secret")
    p.add_argument("--tcp", action="store_true", help="plain TCP, securemode=3 (default TLS)")
    p.add_argument("--port", type=int, help="default 1883 (TLS or TCP); 8883 is TLS only")
    p.add_argument("--keepalive", type=int, default=sign.DEFAULT_KEEPALIVE, metavar="S")
    p.set_defaults(run=cmd_mqtt)
    p = sub.add_parser("http-auth", help="HTTPS device auth body and AT+HTTP* commands")
    _add_common(p, "device-secret")
    p.set_defaults(run=cmd_http_auth)
    p = sub.add_parser("dynreg", help="dynamic registration with the product secret")
    _add_common(p, "product-secret", client_id=False, timestamp=False)
    p.add_argument("--random", help="default: 15 random letters and digits")
    p.add_argument("--mqtt", choices=sign.AUTH_TYPES, help="register over MQTT instead of HTTPS")
    p.add_argument("--instance-id", help="instance id of a new public/Enterprise instance")
    p.add_argument("--port", type=int, default=sign.PORT_PLAIN_OR_TLS)
    p.set_defaults(run=cmd_dynreg)
    return parser


# The options whose values go into a quoted AT argument, checked under the name the user typed
# (a quote in --product-key would otherwise surface as one in the derived "username").
QUOTED_OPTIONS = ("product_key", "device_name", "client_id", "host", "random", "instance_id")
# Protocol field (as SignError names it) -> the option that supplies it.
FIELD_OPTIONS = {
    "productKey": "product_key",
    "deviceName": "device_name",
    "deviceSecret": "device_secret",
    "productSecret": "product_secret",
    "clientId": "client_id",
    "timestamp": "timestamp",
    "keepalive": "keepalive",
    "port": "port",
    "region": "region",
    "signmethod": "signmethod",
    "authType": "mqtt",
}


def _option(args, dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_quoted(args) -> None:
    for dest in QUOTED_OPTIONS:
        value = getattr(args, dest, None)
        if value is not None:
            at_quote(_option(args, dest), value)


def _named_by_option(args, exc: SignError) -> str:
    """``exc``'s message with the option the user typed in place of the protocol field."""
    if exc.field == "secret":
        dest = "product_secret" if args.command == "dynreg" else "device_secret"
    else:
        dest = FIELD_OPTIONS.get(exc.field, "")
    text = str(exc)
    if not dest or not hasattr(args, dest) or not text.startswith(exc.field + ": "):
        return text
    return _option(args, dest) + text[len(exc.field) :]


def _value_options(parser: argparse.ArgumentParser) -> tuple:
    """(options that take a value, every option string) over the parser and its subcommands."""
    takes, known = set(), set()
    parsers = [parser]
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            parsers += list(action.choices.values())
    for p in parsers:
        for action in p._actions:  # noqa: SLF001
            known.update(action.option_strings)
            if action.option_strings and action.nargs is None and action.const is None:
                takes.update(action.option_strings)
    return takes, known


def join_dash_values(argv: list, parser: argparse.ArgumentParser) -> list:
    """``--device-name -abc`` -> ``--device-name=-abc``: a value may start with ``-`` (a valid
    DeviceName can), which argparse would otherwise take for an option. A following token that
    is one of the CLI's own options (or an abbreviation of one) stays an option."""
    takes, known = _value_options(parser)
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if token in takes and nxt is not None and nxt.startswith("-") and nxt != "-":
            head = nxt.split("=", 1)[0]
            if not (head.startswith("--") and any(o.startswith(head) for o in known)):
                out.append(token + "=" + nxt)
                i += 2
                continue
        out.append(token)
        i += 1
    return out


def main(argv: "list | None" = None) -> int:
    """Console entry point; returns the exit status (argparse itself exits 2 on bad usage)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(join_dash_values(argv, parser))  # exits 2 on usage errors
    err = sys.stderr
    _read_secrets(args)
    try:
        _check_quoted(args)
    except UsageError as exc:
        print("%s: error: %s" % (PROG, exc), file=err)
        return EXIT_USAGE
    warnings = warn_lookalikes(args, err)
    try:
        out = args.run(args)
    except SignError as exc:
        print("%s: error: %s" % (PROG, _named_by_option(args, exc)), file=err)
        return EXIT_USAGE
    except UsageError as exc:
        print("%s: error: %s" % (PROG, exc), file=err)
        return EXIT_USAGE
    if args.json:
        out["warnings"] = warnings
        print(json.dumps(out, indent=1))
    else:
        print(render_text(out))
    return report_expect(out, err)


if __name__ == "__main__":
    sys.exit(main())
