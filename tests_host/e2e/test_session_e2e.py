"""End-to-end cases of the session supervisor (lib/aliyun/session.py) on the real VM.

Each case runs the firmware on the MicroPython VM (heap: ``tools.sim.board.FIRMWARE_HEAP``, or
``E2E_HEAPSIZE``) against the emulator and the local cloud. The waits use what the firmware
layer logs itself (firmware/app.py: ``state <name>``, ``up properties: 200``,
``property set …``, ``down …``) and the cloud's message log, so they do not depend on the
session's own wording.
"""

import json

import pytest

from tools.sim.proc import CTRL_C

from .harness import WAIT

ONLINE = r" I state online$"


def online(stack, **start):
    stack.start(**start)
    stack.wait_device(ONLINE)
    return stack.wait_row(type="status", status="online")


@pytest.mark.parametrize("auth", ["direct", "http", "dynreg"])
def test_comes_online_and_reports_with_each_auth_mode(stack, auth):
    online(stack, auth=auth)
    stack.wait_row(type="up", topic="/thing/event/property/post", status=200)
    stack.wait_device(r" I up properties: 200")


@pytest.mark.parametrize("signmethod", ["hmacmd5", "hmacsha1"])
def test_direct_auth_with_each_signmethod(stack, signmethod):
    online(stack, signmethod=signmethod)
    connect = stack.wait_row(type="status", status="online")
    assert json.loads(connect["content"])["auth"] == "sign/" + signmethod


def test_plain_tcp_and_the_imei_as_device_name(stack):
    online(stack, tls=False, device_name="")  # the device was provisioned with the IMEI
    stack.wait_row(type="up", topic="/thing/event/property/post", status=200)


def test_user_get_is_echoed_to_user_update(stack):
    online(stack)
    stack.user_get('{"n":1}', qos=1)
    row = stack.wait_row(type="up", topic="/user/update")
    assert row["content"] == '{"n":1}' and row["status"] == "200"
    stack.wait_device(r" I down user/get 7 B: \{\"n\":1\}")


def test_property_set_applies_valid_values_and_refuses_others_with_460(stack):
    online(stack)
    reply = stack.set_property(ReportInterval=30, LEDSwitch=0)
    assert reply["code"] == 200
    stack.wait_device(r" I property set LEDSwitch=0, ReportInterval=30$")
    for params, field in (
        ({"ReportInterval": 0}, "ReportInterval"),
        ({"LEDSwitch": "on"}, "LEDSwitch"),
        ({"Colour": 1}, "Colour"),
    ):
        reply = stack.set_property(**params)
        assert reply["code"] == 460 and field in reply.get("message", ""), reply


def test_malformed_property_set_gets_460(stack):
    online(stack)
    pk, dn = stack.device["productKey"], stack.device["deviceName"]
    stack.cloud.pub("/sys/%s/%s/thing/service/property/set" % (pk, dn), "{not json", 1)
    stack.wait_row(type="up", topic="/thing/service/property/set_reply", status=460)


FAULTS = {
    "drop_mqtt": {},
    "pdp_deact": {},
    "reboot": {},
    "stall": {"seconds": 25},  # a publish times out (10 s); AT sync waits the stall out
    "sim_lost": {"duration": 6},  # +CPIN: NOT INSERTED, then the SIM comes back
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_recovers_from_module_faults(stack, fault):
    online(stack)
    since_rows = len(stack.rows.rows)
    since_lines = len(stack.firmware.proc.lines)
    stack.fault(fault, **FAULTS[fault])
    stack.wait_row(type="status", status="offline", since=since_rows)
    stack.wait_row(type="status", status="online", since=since_rows)
    stack.wait_device(ONLINE, since=since_lines)
    stack.user_get('{"after":"%s"}' % fault)
    stack.wait_row(type="up", topic="/user/update", since=since_rows)


def test_twelve_faults_in_a_row_at_the_firmware_heap(stack):
    """Every bring-up unloads and re-imports code: after many, the heap must still hold it.

    Back online after each fault, with no MemoryError, no module left broken (ImportError) and
    no crash. (When the MQTT client's code was unloaded at every bring-up, one run in four
    logged a MemoryError: old copies of it stayed referenced now and then.)"""
    online(stack)
    for cycle in range(12):
        kind = ("drop_mqtt", "pdp_deact", "reboot")[cycle % 3]
        since_rows = len(stack.rows.rows)
        since_lines = len(stack.firmware.proc.lines)
        stack.user_get('{"cycle":%d,"pad":"%s"}' % (cycle, "x" * (cycle * 40)), qos=1)
        stack.fault(kind)
        stack.wait_row(type="status", status="offline", since=since_rows)
        # The cloud takes at most 5 CONNECTs a minute; the firmware spaces them, so from the
        # sixth cycle on a reconnect may wait up to 61 s for its slot.
        stack.wait_row(type="status", status="online", since=since_rows, timeout=WAIT + 61)
        stack.wait_device(ONLINE, since=since_lines)
    failures = stack.firmware.proc.find(r"MemoryError|ImportError|Traceback")
    assert failures == [], [match.string for match in failures]


def test_qos1_posts_made_during_an_outage_arrive_after_it(stack):
    online(stack, telemetry_interval_s=5)
    stack.wait_row(type="up", topic="/thing/event/property/post", status=200)
    since_rows = len(stack.rows.rows)
    since_lines = len(stack.firmware.proc.lines)
    stack.fault("network_lost", duration=12)
    stack.wait_row(type="status", status="offline", since=since_rows)
    queued, _ = stack.firmware.wait_for(r" I up properties: queued while offline", 60, since_lines)
    stack.wait_row(type="status", status="online", since=since_rows, timeout=90)
    stack.wait_device(r" I up properties: 200", since=queued)
    posts = stack.rows.matching(type="up", topic="/thing/event/property/post")
    # The device's requests share one id counter (posts, desired get/delete after a connect).
    requests = [r for r in stack.rows.matching(type="up") if "/thing/" in (r["topic"] or "")]
    ids = sorted(
        {int(json.loads(row["content"])["id"]) for row in requests if "_reply" not in row["topic"]}
    )
    # Every id the device gave out arrived (QoS1 may repeat one, never lose one); a run's ids
    # start past those of readings stored by earlier runs (aliyun.session.name_known).
    assert ids == list(range(ids[0], ids[-1] + 1)), ids
    assert len(posts) >= 3


def test_wrong_secret_is_refused_and_backs_off(stack):
    # A refused CONNECT as the manual prints it: ERROR after MCONNECT's OK (air724-at.md §7.2).
    stack.start(device_secret="W" * 32, emulator_args=("--dialect", "connack_refused=error"))
    refused = stack.wait_row(type="status", status="rc=4 bad user name or password")
    assert refused["deviceName"] == stack.device["deviceName"]
    # Three refusals in a row (with short backoffs) make it a permanent fault: reported, then
    # the next attempt only after the first permanent wait (1 min, jittered down by at most a
    # quarter; then 2, 5, 15, 60 min), so no tight loop.
    stack.wait_device(r" E permanent fault: .*refused 3 times")
    wait = int(stack.wait_device(r" I retry in (\d+) ms \(wait\)").group(1))
    assert 45000 <= wait <= 60000, wait
    assert stack.firmware.stop() == 0
    assert len(stack.rows.matching(type="status", status=refused["status"])) == 3


@pytest.mark.parametrize("when", ["online", "reported"])
def test_ctrl_c_on_the_console_stops_with_the_stats_line(stack, when):
    """The unix board's console Ctrl-C (boards/unix.py), at once and after a report; no
    SIGINT, whose asynchronous KeyboardInterrupt can land inside a garbage collection."""
    online(stack)
    if when == "reported":
        stack.wait_device(r" I up properties: 200")
    assert stack.firmware.proc.send(CTRL_C)
    assert stack.firmware.proc.wait_exit(30) == 0
    stats = stack.firmware.stats()
    assert stats is not None and stats["time_to_online_ms"] is not None, json.dumps(stats)
    if when == "reported":
        assert stats["reports"] >= 1, json.dumps(stats)
