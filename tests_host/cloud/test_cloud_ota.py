"""OTA on the local cloud (reference §4.6): package build, add, deploy/push, ranged download,
firmware/get, and the job state from the device's progress and version reports."""

import hashlib
import http.client
import json
import urllib.parse

import pytest

from tools.cloud import cli
from tools.cloud.ota import OtaError, build_package

from .helpers import WAIT


def make_build(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


BASE = {
    "lib/aliyun/session.mpy": b"session-1" * 50,
    "lib/aliyun/otaboot.mpy": b"boot-select",
    "firmware/app.mpy": b"app-1" * 40,
    "firmware/main.mpy": b"never in a package",
}


def entries(blob):
    """(kind, size, digest, path) of each entry, and the data of the F ones."""
    lines, rest = [], blob
    header, rest = rest.split(b"\n", 1)
    out = []
    while True:
        line, rest = rest.split(b"\n", 1)
        if line == b"E":
            break
        kind, size, digest, path = line.decode().split()
        data = b""
        if kind == "F":
            data, rest = rest[: int(size)], rest[int(size) :]
        out.append((kind, int(size), digest, path, data))
    assert rest == b"" and not lines
    return header.decode(), out


def test_package_holds_every_file_and_sends_only_the_changed_ones(tmp_path):
    base = make_build(tmp_path / "base", BASE)
    new = make_build(tmp_path / "new", dict(BASE, **{"firmware/app.mpy": b"app-2" * 40}))
    full = build_package(new, "1.1.0", tmp_path / "full.bin")
    header, items = entries((tmp_path / "full.bin").read_bytes())
    assert header == "AOTA1 1.1.0 3"
    assert {i[3] for i in items} == {
        "lib/aliyun/session.mpy",
        "lib/aliyun/otaboot.mpy",
        "firmware/app.mpy",
    }
    assert all(i[0] == "F" and hashlib.sha256(i[4]).hexdigest() == i[2] for i in items)
    assert full["changed"] == 3

    delta = build_package(new, "1.1.0", tmp_path / "delta.bin", base=base)
    _, items = entries((tmp_path / "delta.bin").read_bytes())
    kinds = {i[3]: i[0] for i in items}
    assert kinds == {
        "lib/aliyun/session.mpy": "C",
        "lib/aliyun/otaboot.mpy": "C",
        "firmware/app.mpy": "F",
    }
    assert delta["changed"] == 1 and delta["size"] < full["size"]
    assert delta["md5"] == hashlib.md5((tmp_path / "delta.bin").read_bytes()).hexdigest()
    with pytest.raises(OtaError):
        build_package(new, "1.1 beta", tmp_path / "x.bin")
    with pytest.raises(OtaError):
        build_package(tmp_path / "empty", "1.0", tmp_path / "x.bin")


def get(cloud, url, headers=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(
        "127.0.0.1", cloud.port("https"), context=cloud.ssl_context(), timeout=WAIT
    )
    try:
        conn.request("GET", parts.path + "?" + parts.query, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def main_json(capsys, *argv):
    code = cli.main(list(argv) + ["--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_add_deploy_download_and_job_states(cloud, online, capsys, tmp_path):
    sd = ("--state-dir", str(cloud.state_dir))
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    build = make_build(tmp_path / "build", BASE)
    pkg = tmp_path / "app-1.1.0.bin"
    manifest = main_json(capsys, "ota", "package", "build", "--version", "1.1.0",
                         "--from", str(build), str(pkg))  # fmt: skip
    blob = pkg.read_bytes()
    assert manifest["size"] == len(blob)
    code = cli.main(["ota", "add", pk, str(pkg), "--version", "1.2.0", *sd])
    assert code == 1  # the package says 1.1.0
    capsys.readouterr()
    added = main_json(capsys, "ota", "add", pk, str(pkg), "--version", "1.1.0",
                      "--sign-method", "SHA256", *sd)  # fmt: skip
    assert added["sign"] == hashlib.sha256(blob).hexdigest() and added["sign_method"] == "SHA256"

    dev = online(device)
    upgrade = "/ota/device/upgrade/%s/%s" % (pk, dn)
    assert dev.subscribe(upgrade) == 1
    pushed = main_json(capsys, "ota", "deploy", pk, "1.1.0", "--device", dn, *sd)
    assert pushed == [{"deviceName": dn, "push": "200"}]
    data = dev.expect_json(upgrade)["data"]
    assert data["size"] == len(blob) and data["version"] == "1.1.0" and data["module"] == "app"
    assert data["signMethod"] == "SHA256" and data["sign"] == added["sign"]
    assert data["md5"] == hashlib.md5(blob).hexdigest()

    status, headers, body = get(cloud, data["url"], {"Range": "bytes=100-299"})
    assert status == 206 and body == blob[100:300]
    assert headers["Content-Range"] == "bytes 100-299/%d" % len(blob)
    status, _, body = get(cloud, data["url"], {"Range": "bytes=%d-" % (len(blob) - 10)})
    assert status == 206 and body == blob[-10:]
    status, _, body = get(cloud, data["url"])
    assert status == 200 and body == blob
    assert get(cloud, data["url"], {"Range": "bytes=%d-" % len(blob)})[0] == 416
    assert get(cloud, data["url"], {"Range": "bytes=5-1"})[0] == 416
    assert get(cloud, data["url"].replace("id=", "id=0"))[0] == 404

    jobs = main_json(capsys, "ota", "status", "--product", pk, *sd)
    assert jobs[0]["state"] == "pushed" and jobs[0]["served"] == 200 + 10 + len(blob)

    get_topic = "/sys/%s/%s/thing/ota/firmware/get" % (pk, dn)
    assert dev.subscribe(get_topic + "_reply") == 1
    dev.publish(get_topic, {"id": "7", "version": "1.0", "params": {"module": "app"}})
    reply = dev.expect_json(get_topic + "_reply")
    assert reply["id"] == "7" and reply["code"] == 200 and reply["data"]["url"] == data["url"]

    progress = "/ota/device/progress/%s/%s" % (pk, dn)
    dev.publish(progress, {"id": "8", "params": {"step": "45", "desc": "", "module": "app"}})
    cloud.watcher.wait(lambda r: r["topic"] == progress and r["status"] == "200")
    (job,) = main_json(capsys, "ota", "status", "--product", pk, *sd)
    assert (
        job["state"] == "downloading" and job["step"] == 45 and job["status"] == "downloading 45%"
    )

    inform = "/ota/device/inform/%s/%s" % (pk, dn)
    dev.publish(inform, {"id": "9", "params": {"version": "AirM2M_V409", "module": "air724"}})
    dev.publish(inform, {"id": "10", "params": {"version": "1.1.0", "module": "app"}})
    cloud.watcher.wait(lambda r: r["topic"] == inform and '"1.1.0"' in r["content"])
    (job,) = main_json(capsys, "ota", "status", "--product", pk, *sd)
    assert job["state"] == "upgraded"
    assert job["versions"] == {"air724": "AirM2M_V409", "app": "1.1.0"}
    assert cloud.registry.device(pk, dn)["firmwareVersion"] == "1.1.0"  # not the module's
    dev.publish(get_topic, {"id": "11", "version": "1.0", "params": {"module": "app"}})
    assert dev.expect_json(get_topic + "_reply")["data"] == {}  # nothing pending


def test_a_failure_report_ends_the_job_with_its_reason(cloud, online, capsys, tmp_path):
    sd = ("--state-dir", str(cloud.state_dir))
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    pkg = tmp_path / "p.bin"
    build_package(make_build(tmp_path / "b", BASE), "2.0.0", pkg)
    main_json(capsys, "ota", "add", pk, str(pkg), "--version", "2.0.0", *sd)
    dev = online(device)
    main_json(capsys, "ota", "deploy", pk, "2.0.0", *sd)  # every device of the product
    progress = "/ota/device/progress/%s/%s" % (pk, dn)
    dev.publish(progress, {"id": "1", "params": {"step": "-3", "desc": "sign mismatch"}})
    cloud.watcher.wait(lambda r: r["topic"] == progress and r["status"] == "200")
    code = cli.main(["ota", "status", "--product", pk, *sd])
    out = capsys.readouterr().out
    assert code == 0 and "failed (step -3: sign mismatch)" in out
    dev.publish(progress, {"id": "2", "params": {"step": "250"}})
    cloud.watcher.wait(lambda r: r["topic"] == progress and r["status"] == "460")
    code = cli.main(["ota", "deploy", pk, "9.9.9", *sd])
    assert code == 1 and "no package" in capsys.readouterr().err
