"""Alink topics and JSON (lib/aliyun/alink.py) on both runtimes."""

import json

from ptest import raises

from aliyun import alink
from aliyun.alink import AlinkError, Topics

T = Topics("a1B2c3", "dev-1")


def test_topics_of_the_device():
    assert T.user("get") == "/a1B2c3/dev-1/user/get"
    assert T.property_post == "/sys/a1B2c3/dev-1/thing/event/property/post"
    assert T.event_post("Alarm") == "/sys/a1B2c3/dev-1/thing/event/Alarm/post"
    assert T.ntp_request == "/ext/ntp/a1B2c3/dev-1/request"
    assert T.ntp_response == "/ext/ntp/a1B2c3/dev-1/response"
    assert T.thing_prefix == "/sys/a1B2c3/dev-1/thing/"


def test_request_envelope():
    body = json.loads(alink.encode_request("7", "thing.event.property.post", {"T": 21.5}))
    assert body == {
        "id": "7",
        "version": "1.0",
        "sys": {"ack": 1},
        "params": {"T": 21.5},
        "method": "thing.event.property.post",
    }
    assert json.loads(alink.encode_request("8", "m", {}, ack=False))["sys"] == {"ack": 0}


def test_reply_envelope_with_and_without_error():
    assert json.loads(alink.encode_reply("9")) == {"id": "9", "code": 200, "data": {}}
    err = json.loads(alink.encode_reply("9", 460, message="LEDSwitch: int expected"))
    assert err["code"] == 460 and err["message"] == "LEDSwitch: int expected"


def test_decode_request_accepts_numeric_id():
    msg_id, method, params = alink.decode_request(
        b'{"id":123,"version":"1.0","params":{"LEDSwitch":1},"method":"thing.service.property.set"}'
    )
    assert (msg_id, method, params) == ("123", "thing.service.property.set", {"LEDSwitch": 1})


def test_decode_request_rejects_malformed_with_460():
    for bad in (b"{not json", b"[1,2]", b'{"params":{}}', b'{"id":"1","params":[1]}', b"\xff\xfe"):
        with raises(AlinkError) as caught:
            alink.decode_request(bad)
        assert caught.value.code == 460, bad


def test_request_id_survives_bad_params():
    assert alink.request_id(b'{"id":"42","params":[]}') == "42"
    assert alink.request_id(b"garbage") == ""


def test_decode_reply():
    reply = (
        b'{"id":"5","code":200,"data":{},"message":"success","method":"thing.event.property.post"}'
    )
    assert alink.decode_reply(reply) == ("5", 200, {}, "success")
    with raises(AlinkError):
        alink.decode_reply(b'{"id":"5"}')


SCHEMA = {
    "ReportInterval": (int, 5, 3600),
    "LEDSwitch": (int, 0, 1),
    "Label": (str, 1, 8),
    "Gain": (float, 0.0, 2.0),
}


def test_check_properties_accepts_valid_values():
    got = alink.check_properties({"ReportInterval": 60, "Gain": 1}, SCHEMA)
    assert got == {"ReportInterval": 60, "Gain": 1.0}
    assert isinstance(got["Gain"], float)


def test_check_properties_names_the_faulty_key():
    cases = (
        ({"ReportInterval": "60"}, "ReportInterval: int expected"),
        ({"LEDSwitch": True}, "LEDSwitch: int expected"),
        ({"LEDSwitch": 2}, "LEDSwitch: out of range"),
        ({"Label": "much too long"}, "Label: out of range"),
        ({"Colour": 1}, "unknown property Colour"),
    )
    for params, message in cases:
        with raises(AlinkError, match=message) as caught:
            alink.check_properties(params, SCHEMA)
        assert caught.value.code == 460


def test_ntp_formula_from_reference_example():
    # reference §4.5: device 100, server 1000, latency 10, processing 5 -> 1025
    response = b'{"deviceSendTime":"100","serverRecvTime":"1010","serverSendTime":"1015"}'
    assert alink.ntp_time_ms(response, 125) == 1025
    with raises(AlinkError):
        alink.ntp_time_ms(b'{"deviceSendTime":"100"}', 125)
    assert json.loads(alink.ntp_request(1571724098000)) == {"deviceSendTime": "1571724098000"}
