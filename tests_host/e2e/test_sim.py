"""``make sim``'s orchestrator (tools/sim/run.py) and process plumbing (the rest of tools/sim/)."""

import io
import json
import os
import signal
import sys
from types import SimpleNamespace

import config
import pytest

from tools.sim.board import FIRMWARE_HEAP, layout_board
from tools.sim.cli import SOURCE_HEAP, build_parser
from tools.sim.console import Console, format_row
from tools.sim.parts import device_config, resolve_rules
from tools.sim.proc import Proc, SimError
from tools.sim.run import Sim, downlink_plan
from tools.sim.summary import render_summary, summarize

PK, DN = "a1B2c3D4e5F", "862991419835241"


def row(kind, status, topic=None, content="", time=0, pk=PK, dn=DN):
    return {
        "type": kind,
        "status": str(status),
        "topic": topic,
        "content": content,
        "time": time,
        "productKey": pk,
        "deviceName": dn,
    }


def thing(name):
    return "/sys/%s/%s/thing/%s" % (PK, DN, name)


def user(name):
    return "/%s/%s/user/%s" % (PK, DN, name)


def test_rows_read_as_short_lines():
    assert format_row(row("status", "online"), PK, DN) == "device online"
    assert format_row(row("status", 200, user("get"), "subscribe"), PK, DN) == (
        "subscribe user/get: 200"
    )
    line = format_row(row("up", 200, thing("event/property/post"), '{"id":"1"}'), PK, DN)
    assert line == 'up   thing/event/property/post {"id":"1"}  [200]'
    long = format_row(row("down", 200, user("get"), "x" * 300), PK, DN)
    assert long.endswith("...  [200]") and len(long) < 160
    assert format_row(row("up", 200, "/other", dn="someone-else"), PK, DN) is None
    assert format_row(row("api", 200, None, '{"api": "Pub"}'), PK, DN) == 'api {"api": "Pub"}'


def conversation():
    return [
        row("status", "online", time=5000),
        row("up", 200, thing("event/property/post")),
        row("down", 200, thing("event/property/post_reply")),
        row("up", 200, "/ext/ntp/%s/%s/request" % (PK, DN)),
        row("down", 200, "/ext/ntp/%s/%s/response" % (PK, DN)),
        row("down", 200, user("get"), '{"seq":0}'),
        row("up", 200, user("update"), '{"seq":0}'),
        row("down", 200, thing("service/property/set")),
        row("up", 460, thing("service/property/set_reply")),
        row("up", 200, thing("event/alarm/post")),
        row("up", 200, "/%s/%s/elsewhere" % (PK, DN)),
        row("down", "no subscriber", user("get")),
        row("status", "offline"),
        row("status", "online", time=9000),
        row("up", 200, "/%s/other/user/update" % PK, dn="other"),
    ]


def test_summary_counts_both_directions_from_the_log():
    stats = {
        "time_to_online_ms": 1234,
        "reconnects": 1,
        "dropped": 2,
        "echo_dropped": 1,
        "published": 6,
    }
    summary = summarize(
        conversation(), PK, DN, started_ms=3000, stats=stats, device_online_ms=4500
    )
    assert summary["ok"] and summary["online"]
    assert summary["time_to_online_s"] == 2.0 and summary["device_time_to_online_s"] == 1.23
    assert summary["host_time_to_device_online_s"] == 1.5
    assert summary["up"] == 6 and summary["set_replies"] == ["460"]
    up = {k: v for k, v in summary["up_by"].items() if v}
    assert up == {
        "properties": 1,
        "events": 1,
        "set_replies": 1,
        "echoes": 1,
        "ntp": 1,
        "other": 1,
    }
    assert (summary["down"], summary["down_undelivered"]) == (4, 1)
    down = {k: v for k, v in summary["down_by"].items() if v}
    assert down == {"post_replies": 1, "property_set": 1, "user_get": 1, "ntp": 1}
    assert sum(summary["up_by"].values()) == summary["up"]
    assert sum(summary["down_by"].values()) == summary["down"]
    assert summary["reconnects"] == 1 and summary["dropped"] == 3
    text = "\n".join(render_summary(summary, 42))
    assert "PASS" in text and "connected 2.00 s after the VM process started" in text
    assert "online (subscribed) 1.50 s after the VM process started" in text
    assert "by its own clock 1.23 s from its session's start (0.27 s before it" in text
    assert (
        "6 logged by the cloud (property posts 1, event posts 1, property set replies 1," in text
    )
    assert "device published: 6 (its stats line), as the cloud logged" in text
    assert (
        "4 delivered (property post replies 1, property sets 1, user/get 1, NTP responses 1)"
        in text
    )


def test_summary_explains_a_published_count_that_differs_from_the_log():
    rows = conversation()
    fewer = summarize(rows, PK, DN, stats={"published": 5})
    assert "the cloud logged 1 more" in "\n".join(render_summary(fewer, 1))
    more = summarize(rows, PK, DN, stats={"published": 8})
    assert "2 not in the cloud's log" in "\n".join(render_summary(more, 1))
    assert "unknown (no stats line)" in "\n".join(render_summary(summarize(rows, PK, DN), 1))


def test_summary_fails_without_an_answer_from_the_device():
    rows = [r for r in conversation() if not r["topic"] or "user/update" not in r["topic"]]
    rows = [r for r in rows if not (r["topic"] or "").endswith("set_reply")]
    summary = summarize(rows, PK, DN, started_ms=0)
    assert summary["online"] and summary["up"] == 4 and not summary["ok"]
    assert summary["dropped"] is None
    assert "FAIL" in "\n".join(render_summary(summary, 1))
    assert not summarize([], PK, DN)["ok"]


def test_downlink_plan_cycles_through_messages_and_property_sets():
    actions = [downlink_plan(step, 10) for step in range(8)]
    assert actions[0][0] == "pub" and json.loads(actions[0][1])["seq"] == 0
    sets = [a for a in actions if a[0] == "set"]
    assert ("set", {"LEDSwitch": 0}, 200) in sets and ("set", {"ReportInterval": 10}, 200) in sets
    assert ("set", {"ReportInterval": 0}, 460) in sets  # the device must refuse it
    assert actions[7][0] == "pub" and json.loads(actions[7][1])["seq"] == 7


def test_console_prefixes_sources_and_hides_the_at_transcript_unless_asked():
    out = io.StringIO()
    console = Console(out, colour=False)
    console.proc_line("module", "err", "21:30:00.123 *** power-on: RDY in 0 s")
    console.proc_line("module", "err", "21:30:00.200 --> AT+CGMR")
    console.proc_line("module", "err", '21:30:00.201 *** ready: {"ready": true}')
    console.proc_line("device", "out", "    1.234 I state online")
    console.proc_line("device", "out", "   ")
    console.show_at = True
    console.proc_line("module", "err", "21:30:00.300 <-- OK")
    console.quiet.add("cloud")
    console.line("cloud", "muted while shutting down")
    lines = out.getvalue().splitlines()
    assert [line[13:] for line in lines] == [
        "module | power-on: RDY in 0 s",
        "device |     1.234 I state online",
        "module | <-- OK",
    ]
    assert all(line[2] == ":" and line[8] == "." for line in lines)


def test_resolve_rules_send_the_real_names_to_the_local_cloud():
    info = {"ports": {"mqtt": 1001, "mqtts": 1002, "https": 1003, "control": 1004}}
    assert resolve_rules(info, tls=True) == [
        "*.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883=127.0.0.1:1002",
        "*.iot-as-mqtt.cn-shanghai.aliyuncs.com:8883=127.0.0.1:1002",
        "iot-auth.cn-shanghai.aliyuncs.com=127.0.0.1:1003",
    ]
    assert resolve_rules(info, tls=False)[0].endswith(":1001")


@pytest.mark.parametrize("auth", ["direct", "http", "dynreg"])
def test_generated_config_is_valid_for_each_auth_mode(auth):
    device = {"productKey": PK, "deviceName": DN, "deviceSecret": "d" * 32}
    cfg = device_config(device, auth, "tcp://127.0.0.1:5000", product_secret="p" * 16)
    checked = config.validate(cfg)
    assert checked["auth"] == auth and checked["uart"]["url"] == "tcp://127.0.0.1:5000"
    if auth == "dynreg":
        assert checked["device_secret"] == "" and checked["product_secret"] == "p" * 16
    else:
        assert checked["device_secret"] == "d" * 32 and checked["product_secret"] == ""


@pytest.mark.parametrize("mpy", [True, False])
def test_board_layout_is_the_device_filesystem(tmp_path, mpy):
    board = layout_board(tmp_path / "board", mpy)
    ext = ".mpy" if mpy else ".py"
    assert (board / "main.py").exists() and (board / "boot.py").exists()
    assert (board / ("app" + ext)).exists() and (board / "boards" / ("unix" + ext)).exists()
    assert (board / "lib" / "aliyun" / ("alink" + ext)).exists()
    assert not (board / "main.mpy").exists() and not (board / "config.json").exists()
    assert not list(board.rglob("*.egg-info")) and not list(board.rglob("*.json"))
    if mpy:
        assert not [p for p in board.rglob("*.py") if p.name not in ("main.py", "boot.py")]


def child(code):
    return Proc("child", [sys.executable, "-c", code]).start()


def test_proc_waits_on_lines_and_reports_an_early_exit():
    proc = child("import sys; print('one'); print('two', file=sys.stderr); print('three')")
    index, match = proc.wait_for(r"^t(\w+)$", 30, stream="out")
    assert match.group(1) == "hree" and proc.lines[index] == ("out", "three")
    assert proc.wait_for("two", 30)[1].string == "two"
    with pytest.raises(SimError, match="ended"):
        proc.wait_for("never printed", 30)
    assert proc.wait_exit(30) == 0


def test_proc_wait_times_out_and_stop_kills_a_stubborn_child():
    proc = child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    proc.wait_for("ready", 30)
    with pytest.raises(SimError, match="no /nothing/ within"):
        proc.wait_for("nothing", 0.2)
    status = proc.stop(signal.SIGINT, grace=0.5)
    assert status == -signal.SIGKILL and not proc.running()


def options(**changes):
    values = vars(build_parser().parse_args([]))
    values.update(changes)
    return SimpleNamespace(**values)


def test_parser_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SIM_SECONDS", "30")
    monkeypatch.setenv("SIM_AUTH", "http")
    monkeypatch.setenv("SIM_AT", "1")
    o = options()
    assert (o.seconds, o.auth, o.at, o.tls) == (30, "http", True, True)
    assert o.heapsize == FIRMWARE_HEAP
    monkeypatch.delenv("SIM_SECONDS")
    assert options().seconds == 0  # until interrupted


def test_sim_starts_the_three_parts_and_cleans_up(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))
    out = io.StringIO()
    run = Sim(options(seconds=5), Console(out, colour=False))
    try:
        run.start()
        run.firmware.wait_for(r" I firmware start \(unix\)", 60)
        procs = [run.cloud.proc, run.cloud.follower, run.emulator.proc, run.firmware.proc]
        cfg = json.loads((run.firmware.board_dir / "config.json").read_text())
        assert cfg["uart"]["url"] == run.emulator.uart_url and cfg["telemetry_interval_s"] == 10
    finally:
        run.shutdown()
        workdir = run.workdir
        run.cleanup()
    assert all(p.popen.poll() is not None for p in procs)
    assert not (tmp_path / "unused-state").exists()
    assert not os.path.exists(workdir)
    log = out.getvalue()
    assert "sim    | cloud ready: product" in log and "device |" in log
    assert run.device["deviceSecret"] not in log


def test_source_runs_pick_the_heap_the_sources_need():
    assert build_parser().parse_args(["--source"]).heapsize == SOURCE_HEAP
    assert build_parser().parse_args(["--source", "--heapsize", "256k"]).heapsize == "256k"
    assert build_parser().parse_args([]).heapsize == FIRMWARE_HEAP
