"""The thing model in the local cloud: TSL import/export and checks, posts and their replies,
batch post, desired properties, async and sync (RRPC) service calls."""

import json
import threading
import time
from pathlib import Path

import pytest

from tools.cloud import cli, tsl

from .helpers import WAIT

ALL_TYPES = Path(__file__).resolve().parent.parent / "tsl_all_types.json"
MODEL = tsl.load(ALL_TYPES.read_text())[1]

VALID = [
    ("Count", 0),
    ("Count", 100),
    ("Temp", -40.0),
    ("Temp", 21.5),
    ("Ratio", 0.5),
    ("Mode", 2),
    ("Power", 0),
    ("Power", 1),
    ("Label", "8 chars!"),
    ("Stamp", "1700000000000"),
    ("Point", {"x": -10, "name": "abcd"}),
    ("Point", {"x": 3}),
    ("Levels", []),
    ("Levels", [0, 9, 5]),
    ("Track", [{"t": 1.5}, {"t": 99.9}]),
]
INVALID = [  # (identifier, value, words of the message)
    ("Count", 101, "out of range 0..100"),
    ("Count", 1.0, "int expected"),
    ("Count", True, "int expected"),
    ("Temp", 20, "decimal point"),
    ("Temp", 120.5, "out of range"),
    ("Ratio", "0.5", "double expected"),
    ("Mode", 3, "enum value must be one of"),
    ("Power", 2, "bool value"),
    ("Power", True, "bool value"),
    ("Label", "9 chars!!", "longer than 8"),
    ("Label", 5, "text expected"),
    ("Stamp", 1700000000000, "date expected"),
    ("Point", {"x": 11}, "Point.x: out of range"),
    ("Point", {"y": 1}, "no member y"),
    ("Point", [1], "struct"),
    ("Levels", [1, 2, 3, 4], "longer than 3"),
    ("Levels", [1, 10], "Levels[1]: out of range"),
    ("Track", [{"t": 1}], "Track[0].t"),
    ("Nope", 1, "Nope is not in the thing model"),
]


@pytest.mark.parametrize("name,value", VALID)
def test_tsl_accepts_valid_values(name, value):
    tsl.check_post(MODEL, {name: value})
    tsl.check_post(MODEL, {name: {"value": value, "time": 1}})


@pytest.mark.parametrize("name,value,words", INVALID)
def test_tsl_refuses_invalid_values_naming_field_and_rule(name, value, words):
    with pytest.raises(tsl.TslError) as err:
        tsl.check_post(MODEL, {name: value})
    assert words in str(err.value) and name in str(err.value)
    assert err.value.code == 460


def test_tsl_set_refuses_read_only_and_import_refuses_bad_documents():
    with pytest.raises(tsl.TslError, match="Serial is read-only"):
        tsl.check_set(MODEL, {"Serial": "x"})
    assert MODEL["services"]["Query"]["callType"] == "sync"
    assert "set" not in MODEL["services"] and "post" not in MODEL["events"]
    bad = [
        "[]",
        '{"properties": [{"identifier": "A-b", "dataType": {"type": "int"}}]}',
        '{"properties": [{"identifier": "A", "dataType": {"type": "long"}}]}',
        '{"properties": [{"identifier": "A", "dataType": {"type": "int",'
        ' "specs": {"min": "5", "max": "1"}}}]}',
        '{"properties": [{"identifier": "A", "dataType": {"type": "text", "specs": {}}}]}',
        '{"properties": [{"identifier": "A", "dataType": {"type": "array",'
        ' "specs": {"size": "2", "item": {"type": "enum"}}}}]}',
        '{"services": [{"identifier": "S", "callType": "later"}]}',
    ]
    for text in bad:
        with pytest.raises(tsl.TslError):
            tsl.load(text)


def main(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


@pytest.fixture
def thing(cloud, online, capsys):
    """A product with the all-types TSL (imported by the CLI), a device online."""
    product = cloud.product()
    pk = product["productKey"]
    sd = ("--state-dir", str(cloud.state_dir))
    code, out = main(capsys, "tsl", "import", pk, str(ALL_TYPES), *sd)
    assert code == 0 and "11 properties, 2 services, 1 events" in out.out
    device = cloud.device(product)
    return pk, device["deviceName"], online(device), sd


def test_tsl_export_gives_the_imported_document(cloud, thing, capsys):
    pk, _dn, _dev, sd = thing
    code, out = main(capsys, "tsl", "export", pk, *sd)
    assert code == 0 and json.loads(out.out) == json.loads(ALL_TYPES.read_text())
    bad = Path(cloud.state_dir) / "bad.json"
    bad.write_text(
        '{"properties": [{"identifier": "X", "dataType": {"type": "int", "specs": {"min": "a"}}}]}'
    )
    code, out = main(capsys, "tsl", "import", pk, str(bad), *sd)
    assert code == 1 and "TSL refused" in out.err
    code, out = main(capsys, "tsl", "export", pk, *sd)  # the stored TSL is unchanged
    assert json.loads(out.out) == json.loads(ALL_TYPES.read_text())


def _post(dev, pk, dn, params, topic="property/post", method="thing.event.property.post"):
    base = "/sys/%s/%s/thing/event/%s" % (pk, dn, topic)
    assert dev.subscribe(base + "_reply") == 1
    dev.publish(base, {"id": "7", "version": "1.0", "params": params, "method": method})
    return dev.expect_json(base + "_reply")


def test_posts_are_checked_against_the_tsl(cloud, thing, capsys):
    pk, dn, dev, sd = thing
    measured = int(time.time() * 1000) - 60000  # within the 24 h of a normal post's time
    reply = _post(dev, pk, dn, {"Count": 5, "Temp": {"value": 21.5, "time": measured}})
    assert reply["code"] == 200
    reply = _post(dev, pk, dn, {"Count": 6, "Temp": 200.0})
    assert reply["code"] == 460 and "Temp: out of range -40.0..120.0" in reply["message"]
    stored = cloud.registry.device(pk, dn)["properties"]
    assert (
        stored["Count"]["value"] == 5 and stored["Temp"]["time"] == measured
    )  # refused whole
    event = _post(
        dev,
        pk,
        dn,
        {"value": {"Temp": 130.0, "Level": 1}, "time": 1},
        "Overheat/post",
        "thing.event.Overheat.post",
    )
    assert event["code"] == 460 and "Temp" in event["message"]
    event = _post(
        dev,
        pk,
        dn,
        {"value": {"Temp": 100.0, "Level": 1}, "time": 1},
        "Overheat/post",
        "thing.event.Overheat.post",
    )
    assert event["code"] == 200
    unknown = _post(dev, pk, dn, {"value": {}}, "Flood/post", "thing.event.Flood.post")
    assert unknown["code"] == 460 and "Flood" in unknown["message"]


def test_batch_post_and_history(cloud, thing, capsys):
    pk, dn, dev, sd = thing
    params = {
        "properties": {"Count": [{"value": 1, "time": 1000}, {"value": 2, "time": 2000}]},
        "events": {"Overheat": [{"value": {"Temp": 50.0, "Level": 0}, "time": 1500}]},
    }
    reply = _post(dev, pk, dn, params, "property/batch/post", "thing.event.property.batch.post")
    assert reply["code"] == 200
    params["properties"]["Count"].append({"value": 500, "time": 3000})
    reply = _post(dev, pk, dn, params, "property/batch/post", "thing.event.property.batch.post")
    assert reply["code"] == 460 and "Count" in reply["message"]
    code, out = main(capsys, "property", dn, "--history", "--json", *sd)
    assert code == 0
    rows = json.loads(out.out)
    assert [(r["identifier"], r["time"], r["value"]) for r in rows] == [
        ("Count", 1000, 1),
        ("Count", 2000, 2),
    ]
    code, out = main(capsys, "property", dn, *sd)
    assert code == 0 and "Count" in out.out and "2" in out.out


def test_desired_properties_get_push_and_delete(cloud, thing, capsys):
    pk, dn, dev, sd = thing
    base = "/sys/%s/%s/thing/" % (pk, dn)
    assert dev.subscribe(base + "service/property/set") == 1
    assert dev.subscribe(base + "property/desired/get_reply") == 1
    assert dev.subscribe(base + "property/desired/delete_reply") == 1
    code, out = main(capsys, "set-desired", dn, "Count=7", "Mode=1", "--json", *sd)
    assert code == 0
    result = json.loads(out.out)
    assert result["pushed"] is True and result["desired"]["Count"]["version"] == 1
    pushed = dev.expect_json(base + "service/property/set")  # online: pushed as a set
    assert pushed["params"] == {"Count": 7, "Mode": 1}
    code, out = main(capsys, "set-desired", dn, "Count=8", *sd)
    assert code == 0 and "version 2" in out.out
    code, out = main(capsys, "set-desired", dn, "Count=800", *sd)
    assert code == 1 and "Count: out of range" in out.err
    dev.publish(base + "property/desired/get", {"id": "3", "version": "1.0", "params": []})
    got = dev.expect_json(base + "property/desired/get_reply")
    assert got["code"] == 200 and got["id"] == "3"
    assert got["data"] == {"Count": {"value": 8, "version": 2}, "Mode": {"value": 1, "version": 1}}
    delete = {"Count": {"version": 1}, "Mode": {"version": 1}}  # Count v1 is stale: kept
    dev.publish(base + "property/desired/delete", {"id": "4", "version": "1.0", "params": delete})
    assert dev.expect_json(base + "property/desired/delete_reply")["code"] == 200
    dev.publish(base + "property/desired/get", {"id": "5", "version": "1.0", "params": ["Mode"]})
    assert dev.expect_json(base + "property/desired/get_reply")["data"] == {}
    assert cloud.registry.things.desired(pk, dn) == {"Count": {"value": 8, "version": 2}}


def _answer(dev, topic_filter, make_reply):
    """Answer requests on a topic (filter) from paho's thread; returns the list of requests."""
    seen = []

    def on_message(client, userdata, message):
        if message.topic.startswith(topic_filter.rstrip("+#")):
            request = json.loads(message.payload)
            seen.append((message.topic, request))
            out = make_reply(message.topic, request)
            if out is not None:
                client.publish(out[0], json.dumps(out[1]), 0)

    dev.client.on_message = on_message
    return seen


def test_async_service_is_checked_then_answered(cloud, thing, capsys):
    pk, dn, dev, sd = thing
    service = "/sys/%s/%s/thing/service/" % (pk, dn)
    assert dev.subscribe(service + "+") == 1
    seen = _answer(
        dev,
        service,
        lambda t, r: (t + "_reply", {"id": r["id"], "code": 200, "data": {"Applied": 1}}),
    )
    code, out = main(
        capsys, "invoke-service", dn, "Calibrate", "Offset=1.5", "Mode=2", "--json", *sd
    )
    assert code == 0 and json.loads(out.out)["data"] == {"Applied": 1}
    assert seen[0][1]["method"] == "thing.service.Calibrate"
    code, out = main(capsys, "invoke-service", dn, "Calibrate", "Offset=1", *sd)
    assert code == 1 and "Offset: float expected" in out.err and len(seen) == 1  # not sent
    code, out = main(capsys, "invoke-service", dn, "Calibrate", "Offset=1", "--no-check", *sd)
    assert code == 0 and len(seen) == 2  # sent unchecked: the device decides


def test_sync_service_over_rrpc_and_its_timeout(cloud, thing, capsys):
    pk, dn, dev, sd = thing
    request_topic = "/sys/%s/%s/rrpc/request/" % (pk, dn)
    assert dev.subscribe(request_topic + "+") == 1
    answer = threading.Event()
    answer.set()

    def reply(topic, request):
        if not answer.is_set():
            return None  # the slow device: never answers
        msg_id = topic.rsplit("/", 1)[1]
        body = {"id": request["id"], "code": 200, "data": {"Count": 3}}
        return ("/sys/%s/%s/rrpc/response/%s" % (pk, dn, msg_id), body)

    seen = _answer(dev, request_topic, reply)
    code, out = main(capsys, "invoke-service", dn, "Query", "Delay=0", "--json", *sd)
    assert code == 0 and json.loads(out.out)["data"] == {"Count": 3}
    assert seen[0][1]["method"] == "thing.service.Query" and seen[0][0].startswith(request_topic)
    answer.clear()
    code, out = main(capsys, "invoke-service", dn, "Query", "Delay=0", "--timeout", "0.5", *sd)
    assert code == 1 and "TIMEOUT" in out.err
    row = cloud.watcher.wait(lambda r: r["type"] == "api" and r["status"] == "TIMEOUT")
    assert row["deviceName"] == dn
    assert WAIT > 8  # the platform's limit fits the test's bound
