"""``aliyun-local ota …``: build and add packages, deploy them, watch the jobs (§4.6)."""

from tools.cloud import cli
from tools.cloud.ota import OtaStore, build_package


def cmd_build(args):
    manifest = build_package(args.src, args.version, args.out, args.base)
    lines = ["%s: version %s, %d B" % (args.out, manifest["version"], manifest["size"])]
    lines.append(
        "%d files, %d sent, %d copied on the device from the running set"
        % (
            len(manifest["files"]),
            manifest["changed"],
            len(manifest["files"]) - manifest["changed"],
        )
    )
    lines.append("md5 %s  sha256 %s" % (manifest["md5"], manifest["sha256"]))
    cli.emit(args, manifest, lines)


def cmd_add(args):
    store = OtaStore(cli.state_dir(args))
    try:
        if cli.open_registry(args).product(args.product_key) is None:
            raise cli.CLIError("no product %s" % args.product_key)
        package = store.add(
            args.product_key, args.file, args.version, args.module, args.sign_method
        )
    finally:
        store.close()
    text = "%s %s %s: %d B, %s %s" % (
        package["product_key"],
        package["module"],
        package["version"],
        package["size"],
        package["sign_method"],
        package["sign"],
    )
    cli.emit(args, package, text)


def cmd_deploy(args):
    body = {"productKey": args.product_key, "version": args.version, "devices": args.device}
    body["module"] = args.module
    reply = cli.control_ok(cli.server_info(args), "POST", "/ota/deploy", body)
    lines = ["%s: pushed (%s)" % (d["deviceName"], d["push"]) for d in reply["devices"]]
    cli.emit(args, reply["devices"], lines or ["(no devices)"])


def describe(row) -> str:
    state = row["state"]
    if state == "downloading":
        return "downloading %d%%" % (row["step"] or 0)
    if state == "failed":
        return "failed (step %s: %s)" % (row["step"], row["desc"])
    return state


def cmd_status(args):
    store = OtaStore(cli.state_dir(args))
    try:
        rows = store.status(args.product)
    finally:
        store.close()
    for row in rows:
        row["status"] = describe(row)
        row["running"] = row["versions"].get(row["module"]) or row["versions"].get("default")
    cols = [
        ("product_key", "ProductKey"),
        ("device_name", "DeviceName"),
        ("module", "Module"),
        ("version", "Target"),
        ("running", "Reported"),
        ("status", "Status"),
        ("served", "BytesServed"),
    ]
    cli.emit(args, rows, cli.table(rows, cols))


def register(sub, command, as_json):
    """Add the ``ota`` commands to the parser (``command`` as in ``cli.build_parser``)."""
    ota = sub.add_parser("ota", help="over-the-air updates").add_subparsers(
        dest="action", required=True
    )
    package = ota.add_parser("package", help="OTA packages").add_subparsers(
        dest="what", required=True
    )
    p = command(package, "build", cmd_build, "build a package from an .mpy build", as_json)
    p.add_argument("out", help="package file to write")
    p.add_argument("--version", required=True, help="the version the package installs")
    p.add_argument("--from", dest="src", default="build", help="the build (default: build/)")
    p.add_argument(
        "--base", help="the build the devices run: its unchanged files are not sent again"
    )
    p = command(ota, "add", cmd_add, "add a package to a product", as_json)
    p.add_argument("product_key")
    p.add_argument("file")
    p.add_argument("--version", required=True)
    p.add_argument("--module", default="app", help="OTA module (default app)")
    p.add_argument("--sign-method", default="Md5", help="Md5 (default) or SHA256")
    p = command(ota, "deploy", cmd_deploy, "push a version to devices", as_json)
    p.add_argument("product_key")
    p.add_argument("version")
    p.add_argument("--device", nargs="+", help="DeviceNames (default: every device)")
    p.add_argument("--module", default="app")
    p = command(ota, "status", cmd_status, "jobs per device: pushed, downloading, …", as_json)
    p.add_argument("--product", help="only this productKey")
