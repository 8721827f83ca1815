"""Thing-model checks on the device (lib/aliyun/tsl.py) with the table generated from the
every-type TSL (tests_host/tsl_all_types.json → tsl_all_types_table.py)."""

import tsl_all_types_table as table

from aliyun.alink import AlinkError
from aliyun.tsl import Model, check

MODEL = Model(table)


def refused(call, *args):
    try:
        call(*args)
    except AlinkError as exc:
        assert exc.code == 460
        return exc.message
    raise AssertionError("accepted: %r" % (args,))


def test_every_type_accepts_its_values():
    cases = [
        ("Count", 0),
        ("Count", 100),
        ("Temp", -40.0),
        ("Ratio", 1.0),
        ("Mode", 2),
        ("Power", 1),
        ("Label", "8 chars!"),
        ("Stamp", "1700000000000"),
        ("Point", {"x": -10, "name": "abcd"}),
        ("Levels", [0, 9, 5]),
        ("Track", [{"t": 1.5}]),
    ]
    for name, value in cases:
        assert MODEL.check_set({name: value}) == {name: value}, name


def test_every_type_refuses_naming_field_and_rule():
    cases = [
        ({"Count": 101}, "Count: out of range 0..100"),
        ({"Count": True}, "Count: int expected"),
        ({"Count": 2.0}, "Count: int expected"),
        ({"Temp": 120.5}, "Temp: out of range -40.0..120.0"),
        ({"Ratio": "1"}, "Ratio: float expected"),
        ({"Mode": 3}, "Mode: value must be one of 0, 1, 2"),
        ({"Power": 2}, "Power: value must be one of 0, 1"),
        ({"Label": "9 chars!!"}, "Label: text longer than 8"),
        ({"Label": 1}, "Label: text expected"),
        ({"Stamp": 17}, "Stamp: date expected"),
        ({"Stamp": "17a"}, "Stamp: date expected"),
        ({"Point": {"x": 11}}, "Point.x: out of range -10..10"),
        ({"Point": {"y": 1}}, "Point: struct has no member y"),
        ({"Point": 1}, "Point: struct expected"),
        ({"Levels": [1, 2, 3, 4]}, "Levels: array longer than 3"),
        ({"Levels": [1, 10]}, "Levels[1]: out of range 0..9"),
        ({"Track": [{"t": "x"}]}, "Track[0].t: float expected"),
        ({"Serial": "x"}, "Serial: read-only"),
        ({"Nope": 1}, "Nope: not in the thing model"),
    ]
    for params, message in cases:
        got = refused(MODEL.check_set, params)
        assert got.startswith(message), (got, message)


def test_an_int_for_a_float_becomes_that_float():
    assert MODEL.check_set({"Temp": 20}) == {"Temp": 20.0}
    assert isinstance(MODEL.check_set({"Temp": 20})["Temp"], float)
    assert check(("a", 2, ("f", None, None)), [1, 2.5], "A") == [1.0, 2.5]


def test_posts_take_plain_and_timed_values():
    assert MODEL.check_post({"Count": 1, "Temp": {"value": 3, "time": 5}}) == {
        "Count": 1,
        "Temp": {"value": 3.0, "time": 5},
    }
    assert MODEL.check_post({"Serial": "abc"}) == {"Serial": "abc"}  # read-only: may be posted
    assert "Count" in refused(MODEL.check_post, {"Count": {"value": -1, "time": 5}})
    assert "Point" in refused(MODEL.check_post, {"Point": {"value": 1}})  # a struct has no value


def test_services_and_events():
    assert MODEL.service("Query")[0] is True and MODEL.service("Calibrate")[0] is False
    assert MODEL.check_input("Calibrate", {"Offset": 1.5, "Mode": 0}) == {"Offset": 1.5, "Mode": 0}
    assert refused(MODEL.check_input, "Calibrate", {"Mode": 9}).startswith("Mode:")
    assert refused(MODEL.check_input, "Reboot", {}).startswith("Reboot: no such service")
    assert MODEL.check_output("Query", {"Count": 3}) == {"Count": 3}
    assert refused(MODEL.check_output, "Query", {"Count": 300}).startswith("Count:")
    assert MODEL.check_event("Overheat", {"Temp": 90.0, "Level": 2})
    assert refused(MODEL.check_event, "Overheat", {"Temp": 900.0}).startswith("Temp:")
    assert refused(MODEL.check_event, "Flood", {}).startswith("Flood: no such event")
