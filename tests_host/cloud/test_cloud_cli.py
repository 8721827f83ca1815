"""The ``aliyun-local`` command: serve with a readiness signal, the console subcommands, --json."""

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tools.cloud import cli

from .helpers import WAIT, Endpoint, credentials

EXE = str(Path(sys.executable).with_name("aliyun-local"))


class Lines:
    """Lines of a subprocess's stdout, read by a thread, waited for with a timeout."""

    def __init__(self, proc):
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.queue.put(line)

    def next(self, timeout=WAIT):
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output line") from None


def run(*args, state_dir):
    return subprocess.run(
        [EXE, "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_reports_ports_and_cli_talks_to_it(tmp_path, clients):
    state = tmp_path / "state"
    ready = tmp_path / "ready.json"
    errors = open(tmp_path / "serve.err", "w")  # the server echoes its log on stderr
    serve = subprocess.Popen(
        [EXE, "serve", "--state-dir", str(state), "--ready-file", str(ready)]
        + ["--mqtt-port", "0", "--mqtts-port", "0", "--https-port", "0"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    follow = None
    try:
        info = json.loads(Lines(serve).next())
        assert info["ready"] is True
        assert all(port > 0 for port in info["ports"].values())
        assert json.loads(ready.read_text()) == info
        assert Path(info["ca"]) == state / "ca.pem" and Path(info["ca"]).exists()
        server_file = state / "server.json"
        assert stat.S_IMODE(os.stat(server_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700

        made = run("product", "add", "demo", "--json", state_dir=state)
        pk = json.loads(made.stdout)["productKey"]
        triple = json.loads(run("device", "add", pk, "sensor01", "--json", state_dir=state).stdout)
        assert set(triple) == {"productKey", "deviceName", "deviceSecret"}

        follow = subprocess.Popen(
            [EXE, "log", "--state-dir", str(state), "--follow", "--json", "--limit", "1000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        follow_lines = Lines(follow)
        dev = clients(Endpoint(info), *credentials(triple, securemode=2), tls=True)
        assert dev.connect() == 0
        topic = "/%s/sensor01/user/get" % pk
        assert dev.subscribe(topic) == 1
        published = run("pub", topic, "hello device", "--qos", "1", "--json", state_dir=state)
        assert published.returncode == 0, published.stderr
        assert json.loads(published.stdout)["status"] == "200"
        assert dev.expect(topic)[1] == b"hello device"
        while True:  # the log (backlog, then live rows, without a gap) shows the downlink
            row = json.loads(follow_lines.next())
            if row["type"] == "down" and row["topic"] == topic:
                assert row["content"] == "hello device" and row["deviceName"] == "sensor01"
                break
        listed = json.loads(run("device", "list", "--json", state_dir=state).stdout)
        assert [(d["deviceName"], d["status"]) for d in listed] == [("sensor01", "online")]
    finally:
        if follow is not None:
            follow.terminate()
            follow.wait(WAIT)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(WAIT) == 0
        serve.stdout.close()
        errors.close()
    assert not (state / "server.json").exists()
    echoed = (tmp_path / "serve.err").read_text()
    assert "cloud→device" in echoed and "hello device" in echoed
    console = "http://127.0.0.1:%d/" % info["ports"]["console"]
    assert info["console"] == console and "console: %slogin?once=" % console in echoed


def main(capsys, *argv):
    """Run the CLI in this process; return (exit code, stdout)."""
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def main_json(capsys, *argv):
    code, out = main(capsys, *argv, "--json")
    assert code == 0, out
    return json.loads(out)


def test_registry_subcommands(cloud, capsys):
    sd = ("--state-dir", str(cloud.state_dir))
    product = main_json(capsys, "product", "add", "meter", "--dynamic-register", *sd)
    pk = product["productKey"]
    assert product["dynamicRegister"] is True and len(product["productSecret"]) == 16
    assert pk in [p["productKey"] for p in main_json(capsys, "product", "list", *sd)]
    assert (
        main_json(capsys, "product", "set", pk, "--dynamic-register", "off", *sd)[
            "dynamicRegister"
        ]
        is False
    )
    triple = main_json(capsys, "device", "add", pk, "meter001", *sd)
    assert triple["deviceName"] == "meter001" and len(triple["deviceSecret"]) == 32
    generated = main_json(capsys, "device", "add", pk, *sd)
    assert len(generated["deviceName"]) == 20
    listed = main_json(capsys, "device", "list", "--product", pk, *sd)
    assert {d["deviceName"] for d in listed} == {"meter001", generated["deviceName"]}
    assert all(d["status"] == "inactive" and "deviceSecret" not in d for d in listed)
    shown = main_json(capsys, "device", "show", "meter001", *sd)
    assert "deviceSecret" not in shown
    shown = main_json(capsys, "device", "show", pk + "/meter001", "--secret", *sd)
    assert shown["deviceSecret"] == triple["deviceSecret"]
    code, out = main(capsys, "device", "add", pk, "meter001", *sd)
    assert code == 1  # duplicate
    topic = main_json(capsys, "topic", "add", pk, "cmd/+", "--perm", "sub", *sd)
    assert topic == {"productKey": pk, "topic": "/%s/${deviceName}/user/cmd/+" % pk, "perm": "sub"}
    assert main(capsys, "topic", "add", pk, "data/#", "--perm", "pub", *sd)[0] == 1
    classes = main_json(capsys, "topic", "list", pk, *sd)
    assert {"topic": "/%s/${deviceName}/user/cmd/+" % pk, "perm": "sub"} in classes
    assert {"topic": "/%s/${deviceName}/user/get" % pk, "perm": "sub"} in classes
    code, out = main(capsys, "device", "list", *sd)  # human table
    assert code == 0 and "meter001" in out and "inactive" in out
    assert main_json(capsys, "ca", *sd)["ca"] == cloud.ca


def test_console_subcommands_with_a_live_device(cloud, online, capsys):
    sd = ("--state-dir", str(cloud.state_dir))
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    set_topic = "/sys/%s/%s/thing/service/property/set" % (pk, dn)
    assert dev.subscribe(set_topic) == 1
    assert dev.subscribe("/%s/%s/user/get" % (pk, dn)) == 1

    def on_message(client, userdata, message):
        if message.topic == set_topic:
            request = json.loads(message.payload)
            reply = {"id": request["id"], "code": 200, "data": {}}
            client.publish(set_topic + "_reply", json.dumps(reply), 0)
        else:
            dev.messages.put((message.topic, message.payload))

    dev.client.on_message = on_message
    reply = main_json(capsys, "set-property", dn, "Power=1", "Mode=eco", 'Cfg={"a": 2}', *sd)
    assert reply["code"] == 200
    row = cloud.watcher.wait(lambda r: r["topic"] == set_topic and r["type"] == "down")
    assert json.loads(row["content"])["params"] == {"Power": 1, "Mode": "eco", "Cfg": {"a": 2}}

    out = main_json(capsys, "pub", "/%s/%s/user/get" % (pk, dn), "ping", *sd)
    assert out["status"] == "200"
    assert dev.expect("/%s/%s/user/get" % (pk, dn))[1] == b"ping"
    code, _ = main(capsys, "pub", "/%s/%s/user/update" % (pk, dn), "x", *sd)
    assert code == 1  # no subscribe permission: not a downlink topic

    rows = main_json(capsys, "log", "--device", dn, *sd)
    kinds = [(r["type"], r["topic"]) for r in rows]
    assert ("api", set_topic) in kinds and ("up", set_topic + "_reply") in kinds
    assert all(r["deviceName"] == dn for r in rows)

    disabled = main_json(capsys, "device", "disable", dn, *sd)
    assert disabled["status"] == "disabled" and disabled["kicked"] is True
    dev.wait_disconnected()
    code, _ = main(capsys, "set-property", dn, "Power=0", "--timeout", "1", *sd)
    assert code == 1  # offline
    assert main_json(capsys, "device", "enable", dn, *sd)["status"] == "offline"


def test_commands_needing_a_server_say_so(tmp_path, capsys):
    code = cli.main(["--state-dir", str(tmp_path), "pub", "/a/b/user/get", "x"])
    assert code == 1
    assert "no running server" in capsys.readouterr().err


def test_log_never_holds_secrets(cloud, clients, capsys):
    """Registration, HTTPS auth and logins leave no secret in the log (the ``cloud`` fixture
    checks the same for every module when it stops)."""
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    iot_id, token = cloud.registry.issue_token(device["productKey"], device["deviceName"])
    assert clients(cloud, "sn", iot_id, token, tls=True).connect() == 0
    assert clients(cloud, "sn", iot_id, token + "x", tls=True).connect() == 3
    assert clients(cloud, *credentials(device)).connect() == 0
    cloud.watcher.wait(
        lambda r: r["status"] == "online" and r["deviceName"] == device["deviceName"]
    )
    assert cloud.secrets_in_log() == []
    code, out = main(capsys, "log", "--limit", "100000", "--state-dir", str(cloud.state_dir))
    assert code == 0 and token not in out and device["deviceSecret"] not in out


@pytest.mark.parametrize("text,expected", [("a=1", 1), ("a=on", "on"), ('a="1"', "1")])
def test_assignment_values_are_json_or_text(text, expected):
    assert cli.parse_assignment(text) == ("a", expected)
