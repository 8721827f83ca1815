"""The thing model end to end: the firmware on the VM (128 KB heap), the emulator, the local
cloud with the product's TSL and the ``/sys/PK/DN/thing/#`` wildcard refused.

The firmware subscribes the explicit topics (as the SDKs do) and every thing-model path works:
property set, async and sync (RRPC) services, desired properties, post replies. With the
every-type TSL (tests_host/tsl_all_types.json and its table, a test application as the board's
``app``), valid and invalid sets and calls get their codes, a post that breaks the TSL is refused
on the device, and a sync service too slow for the deadline answers the timeout code.
"""

import json
from pathlib import Path

from tools.sim.proc import ROOT

HERE = Path(__file__).resolve().parent
FIRMWARE_TSL = ROOT / "firmware" / "tsl.json"
ALL_TYPES = HERE.parent / "tsl_all_types.json"
ALL_TYPES_TABLE = HERE.parent / "portable" / "tsl_all_types_table.py"
TEST_APP = HERE / "board" / "tsl_app.py"
ONLINE = r" I state online$"
DOWNLINKS = (
    "thing/service/property/set",
    "thing/service/+",
    "thing/event/+/post_reply",
    "thing/event/property/batch/post_reply",
    "thing/property/desired/get_reply",
    "thing/property/desired/delete_reply",
)


def start(stack, tsl, replace=None, desired=None, heapsize=None):
    """Cloud with ``tsl`` imported (and ``desired`` values set while the device is offline),
    emulator, firmware; returns once the device is online."""
    stack.start_cloud()
    pk, dn = stack.device["productKey"], stack.device["deviceName"]
    code, out, err = stack.cli("tsl", "import", pk, tsl)
    assert code == 0, err
    if desired:
        code, out, err = stack.cli("set-desired", dn, *assign(desired))
        assert code == 0 and out["pushed"] is False, err
    stack.start_emulator()
    stack.start_firmware(stack.config("direct"), heapsize=heapsize, replace=replace)
    stack.wait_device(ONLINE)
    stack.wait_row(type="status", status="online")
    return pk, dn


def assign(params):
    return ["%s=%s" % (k, json.dumps(v)) for k, v in params.items()]


def call(stack, *args, timeout=30):
    """A console command whose answer is the device's reply: that reply (a dict)."""
    code, out, err = stack.cli(*args, timeout=timeout)
    assert out is not None, err
    return out


def set_property(stack, dn, params, check=True):
    extra = [] if check else ["--no-check"]
    return call(stack, "set-property", dn, *assign(params), *extra)


def invoke(stack, dn, identifier, params, check=True):
    extra = [] if check else ["--no-check"]
    return call(stack, "invoke-service", dn, identifier, *assign(params), *extra)


def test_every_path_of_the_example_application_without_the_wildcard(stack):
    pk, dn = start(stack, FIRMWARE_TSL, desired={"ReportInterval": 45, "LEDSwitch": 0})
    sys_prefix = "/sys/%s/%s/" % (pk, dn)
    for suffix in DOWNLINKS + ("rrpc/request/+",):
        row = stack.wait_row(type="status", topic=sys_prefix + suffix, content="subscribe")
        assert row["status"] == "200", row
    assert not stack.rows.matching(topic=sys_prefix + "thing/#")
    # desired: got after the connect, applied through the property-set path, then deleted
    stack.wait_device(r" I property set LEDSwitch=0, ReportInterval=45$")
    row = stack.wait_row(type="up", topic="/thing/property/desired/delete")
    assert json.loads(row["content"])["params"] == {
        "LEDSwitch": {"version": 1},
        "ReportInterval": {"version": 1},
    }
    # post_reply
    stack.wait_row(type="up", topic="/thing/event/property/post", status=200)
    stack.wait_device(r" I up properties: 200")
    # property set: valid, then refused by the device (sent unchecked) naming field and rule
    reply = set_property(stack, dn, {"ReportInterval": 20, "LEDSwitch": 1})
    assert reply["code"] == 200, reply
    reply = set_property(stack, dn, {"ReportInterval": 0}, check=False)
    assert reply["code"] == 460 and "ReportInterval: out of range 1..86400" in reply["message"]
    # async service, sync service over RRPC
    assert invoke(stack, dn, "Blink", {"Times": 1})["code"] == 200
    reply = invoke(stack, dn, "Status", {"WaitMs": 0})
    assert reply["code"] == 200 and set(reply["data"]) == {"Uptime", "Reports"}, reply
    answers = [r for r in stack.rows.matching(type="up") if "/rrpc/response/" in r["topic"]]
    assert answers and answers[0]["topic"].startswith(sys_prefix + "rrpc/response/")
    # desired pushed while online: a property set
    code, out, err = stack.cli("set-desired", dn, "ReportInterval=50")
    assert code == 0 and out["pushed"] is True, err
    stack.wait_device(r" I property set ReportInterval=50$")


def test_every_data_type_sets_calls_and_posts(stack):
    # The bigger model (structs, arrays, 11 properties) costs more RAM while it is loaded:
    # 160k on the 64-bit unix port (the example's six properties: FIRMWARE_HEAP).
    replace = {"app": TEST_APP, "tsl_table": ALL_TYPES_TABLE}
    pk, dn = start(stack, ALL_TYPES, replace=replace, heapsize="160k")
    wildcard = "/sys/%s/%s/thing/#" % (pk, dn)  # the application asks for it: refused
    assert stack.wait_row(type="status", topic=wildcard)["status"] == "denied"
    stack.wait_device(r" E subscribe refused \(SUBACK 0x80\): " + wildcard + "$")
    valid = {
        "Count": 100,
        "Temp": -40.0,
        "Ratio": 0.25,
        "Mode": 2,
        "Power": 1,
        "Label": "8 chars!",
        "Stamp": "1700000000000",
        "Point": {"x": -3, "name": "abcd"},
        "Levels": [0, 9],
        "Track": [{"t": 99.5}],
    }
    assert set_property(stack, dn, valid)["code"] == 200
    stack.wait_device(r' I applied \{.*"Track": \[\{"t": 99\.5\}\]')
    invalid = [
        ({"Count": 101}, "Count: out of range 0..100"),
        ({"Temp": "hot"}, "Temp: float expected"),
        ({"Ratio": 2.0}, "Ratio: out of range 0.0..1.0"),
        ({"Mode": 7}, "Mode: value must be one of 0, 1, 2"),
        ({"Power": 2}, "Power: value must be one of 0, 1"),
        ({"Label": "far too long"}, "Label: text longer than 8"),
        ({"Stamp": 17}, "Stamp: date expected"),
        ({"Point": {"x": 1, "z": 2}}, "Point: struct has no member z"),
        ({"Levels": [1, 2, 3, 4]}, "Levels: array longer than 3"),
        ({"Track": [{"t": 101.0}]}, "Track[0].t: out of range"),
        ({"Serial": "x"}, "Serial: read-only"),
    ]
    for params, message in invalid:
        reply = set_property(stack, dn, params, check=False)
        assert reply["code"] == 460 and reply["message"].startswith(message), (params, reply)
    assert invoke(stack, dn, "Calibrate", {"Offset": 1.5, "Mode": 0})["data"] == {"Applied": 1}
    reply = invoke(stack, dn, "Calibrate", {"Offset": "1"}, check=False)
    assert reply["code"] == 460 and reply["message"].startswith("Offset: float expected"), reply
    reply = invoke(stack, dn, "Query", {"Delay": 100})
    assert reply["code"] == 200 and reply["data"] == {"Count": 7}, reply
    reply = invoke(stack, dn, "Query", {"Delay": 7500})  # past the device's 7 s deadline
    assert reply["code"] == 503 and "timeout" in reply["message"], reply
    # the application's posts: refused on the device when they break the TSL
    topic = stack.topic("get")
    stack.cloud.pub(topic, json.dumps({"do": "post", "params": {"Count": 500}}), 1)
    stack.wait_device(r" W post refused on the device: Count: out of range 0\.\.100$")
    stack.cloud.pub(topic, json.dumps({"do": "post", "params": {"Count": 5, "Temp": 20}}), 1)
    stack.wait_device(r" I post answered 200$")
    batch = {"do": "batch", "properties": {"Count": [{"value": 1, "time": 1700000000000}]}}
    batch["events"] = {"Overheat": [{"value": {"Temp": 99.0, "Level": 1}, "time": 1700000000001}]}
    stack.cloud.pub(topic, json.dumps(batch), 1)
    stack.wait_device(r" I batch answered 200$")
    event = {"do": "event", "id": "Overheat", "values": {"Temp": 500.0}}
    stack.cloud.pub(topic, json.dumps(event), 1)
    stack.wait_device(r" W event refused on the device: Temp: out of range")
    event["values"] = {"Temp": 60.0, "Level": 2}
    stack.cloud.pub(topic, json.dumps(event), 1)
    stack.wait_device(r" I event answered 200$")
    posts = stack.rows.matching(type="up", topic="/thing/event/property/post")
    assert all(json.loads(r["content"])["params"].get("Count") != 500 for r in posts)
    row = stack.wait_row(type="up", topic="/thing/event/Overheat/post", status=200)
    assert isinstance(json.loads(row["content"])["params"]["time"], int)
