"""Downlink dispatch (lib/aliyun/thing.py): replies, property set, services, subscriptions."""

import json

from aliyun.alink import AlinkError, Topics
from aliyun.thing import Thing, topic_matches

PK, DN = "a1B2c3D4e5F", "dev-1"
SET = "/sys/%s/%s/thing/service/property/set" % (PK, DN)
POST_REPLY = "/sys/%s/%s/thing/event/property/post_reply" % (PK, DN)
SCHEMA = {"ReportInterval": (int, 5, 3600), "LEDSwitch": (int, 0, 1)}


def make():
    logs = []
    thing = Thing(Topics(PK, DN), lambda level, msg: logs.append((level, msg)), lambda: 1000)
    return thing, logs


def request(msg_id, params, method="thing.service.property.set"):
    return json.dumps({"id": msg_id, "version": "1.0", "params": params, "method": method})


def matches(topic_filter, topic):
    return topic_matches(topic_filter.split("/"), topic)  # the filter split once, as kept


def test_topic_filter_matching():
    assert matches("/a/b/c", "/a/b/c")
    assert matches("/a/+/c", "/a/b/c")
    assert matches("/a/#", "/a/b/c")
    assert matches("/a/#", "/a")  # '#' also matches the parent level (MQTT 3.1.1 4.7.1.2)
    assert matches("#", "/a/b") and matches("+/+", "/a") and matches("a/+", "a/")
    assert not matches("/a/+", "/a/b/c")
    assert not matches("/a/b/c/d", "/a/b/c")
    assert not matches("/a/x/c", "/a/b/c")
    assert not matches("/a/bb/c", "/a/b/c") and not matches("/a/b/c", "/a/bb/c")
    assert not matches("/a/+/+", "/a/b") and not matches("+", "/a")
    assert topic_matches("/a/+/c", "/a/b/c") and not topic_matches("/a/+", "/a/b/c")  # unsplit


def test_exact_and_wildcard_subscriptions_each_get_a_message_once():
    thing, logs = make()
    got = []
    user = "/%s/%s/user/" % (PK, DN)
    for name in ("exact", "plus", "hash", "other"):
        topic_filter = {"exact": user + "get", "plus": user + "+", "hash": user + "#"}.get(
            name, user + "get/+"
        )
        thing.subscribe(topic_filter, lambda t, p, name=name: got.append((name, t, p)))
    thing.dispatch(user + "get", b"1")
    assert sorted(got) == [("exact", user + "get", b"1"), ("hash", user + "get", b"1"),
                           ("plus", user + "get", b"1")]
    got.clear()
    thing.dispatch(user + "get/x", b"2")  # '+' is one level: only '#' and get/+ match
    assert sorted(got) == [("hash", user + "get/x", b"2"), ("other", user + "get/x", b"2")]
    got.clear()
    thing.dispatch(user + "ge", b"3")
    assert sorted(got) == [("hash", user + "ge", b"3"), ("plus", user + "ge", b"3")]
    assert not any("unexpected" in msg for _, msg in logs)
    got.clear()
    thing.dispatch("/%s/%s/other/get" % (PK, DN), b"4")
    assert got == [] and any("unexpected topic" in msg for _, msg in logs)


def test_a_subscription_that_does_not_match_costs_no_allocation():
    # On the VM: a downlink routed past 40 wildcard filters that do not match allocates what
    # it allocates past none (CPython has no heap counter: the routing alone is checked).
    import gc

    measure = getattr(gc, "mem_alloc", None)
    user = "/%s/%s/user/" % (PK, DN)
    costs = []
    for others in (0, 40):
        thing, _ = make()
        hits = [0]

        def hit(t, p, hits=hits):
            hits[0] += 1

        for i in range(others):
            thing.subscribe(user + "other%d/+" % i, hit)
        thing.subscribe(user + "get", hit)
        thing.dispatch(user + "get", b"x")  # warm up
        topic = user + "get"
        gc.collect()
        gc.disable()  # no collection inside the measurement
        before = measure() if measure else 0
        for _ in range(10):
            thing.dispatch(topic, b"x")
        costs.append(measure() - before if measure else 0)
        gc.enable()
        assert hits[0] == 11
    assert costs[1] == costs[0], costs


def test_property_set_applies_and_replies_200():
    thing, _ = make()
    applied = []
    thing.on_property_set(SCHEMA, applied.append)
    topic, payload = thing.dispatch(SET, request("77", {"ReportInterval": 30}))
    assert topic == SET + "_reply"
    assert json.loads(payload) == {"id": "77", "code": 200, "data": {}}
    assert applied == [{"ReportInterval": 30}]


def test_property_set_with_wrong_type_is_460_and_applies_nothing():
    thing, _ = make()
    applied = []
    thing.on_property_set(SCHEMA, applied.append)
    bad = request("78", {"ReportInterval": 30, "LEDSwitch": "on"})
    _, payload = thing.dispatch(SET, bad)
    reply = json.loads(payload)
    assert reply["id"] == "78" and reply["code"] == 460
    assert "LEDSwitch" in reply["message"]
    assert applied == []


def test_invalid_json_downlink_gets_460_not_silence():
    thing, _ = make()
    thing.on_property_set(SCHEMA, lambda accepted: None)
    topic, payload = thing.dispatch(SET, b"{not json")
    assert topic == SET + "_reply"
    assert json.loads(payload)["code"] == 460


def test_callback_error_code_is_used():
    thing, _ = make()

    def refuse(accepted):
        raise AlinkError(100001, "busy")

    thing.on_property_set(SCHEMA, refuse)
    _, payload = thing.dispatch(SET, request("9", {"LEDSwitch": 1}))
    assert json.loads(payload)["code"] == 100001


def test_service_call_and_unknown_service():
    thing, _ = make()
    thing.on_service("Reboot", lambda params: {"delay": params["delay"]})
    base = "/sys/%s/%s/thing/service/" % (PK, DN)
    topic, payload = thing.dispatch(
        base + "Reboot", request("5", {"delay": 3}, "thing.service.Reboot")
    )
    assert topic == base + "Reboot_reply"
    assert json.loads(payload) == {"id": "5", "code": 200, "data": {"delay": 3}}
    topic, payload = thing.dispatch(base + "Explode", request("6", {}))
    assert topic == base + "Explode_reply" and json.loads(payload)["code"] == 460
    # Not service requests: a reply, another device's service, no name, a deeper level.
    thing.subscribe("#", lambda t, p: None)
    for other in (base + "Reboot_reply", "/sys/%s/other/thing/service/Reboot" % PK, base):
        assert thing.dispatch(other, request("7", {})) is None
    assert thing.dispatch(base + "a/b", request("8", {})) is None


def test_property_set_without_schema_is_460():
    thing, _ = make()
    _, payload = thing.dispatch(SET, request("3", {"LEDSwitch": 1}))
    assert json.loads(payload)["code"] == 460


def test_ids_are_decimal_strings_that_wrap():
    thing, _ = make()
    assert [thing.ids(), thing.ids()] == ["1", "2"]
    thing._next_id = 4294967294
    assert [thing.ids(), thing.ids(), thing.ids()] == ["4294967294", "4294967295", "1"]


def test_post_reply_wakes_its_waiter_only():
    thing, _ = make()
    first = thing.expect_reply("1")
    second = thing.expect_reply("2")
    reply = b'{"id":"2","code":200,"data":{},"message":"success"}'
    assert thing.dispatch(POST_REPLY, reply) is None
    assert second.event.is_set() and second.code == 200
    assert not first.event.is_set()
    thing.forget("1")
    assert thing.dispatch(POST_REPLY, reply.replace(b'"2"', b'"1"')) is None


def test_user_messages_reach_matching_callbacks_and_survive_a_faulty_one():
    thing, logs = make()
    got = []

    def broken(topic, payload):
        raise RuntimeError("app bug")

    thing.subscribe("/%s/%s/user/#" % (PK, DN), broken)
    assert thing.subscribe("/%s/%s/user/get" % (PK, DN), lambda t, p: got.append((t, p)))
    assert not thing.subscribe("/%s/%s/user/get" % (PK, DN), lambda t, p: None)  # known filter
    thing.dispatch("/%s/%s/user/get" % (PK, DN), b"hello")
    assert got == [("/%s/%s/user/get" % (PK, DN), b"hello")]
    assert any(level == "error" and "app bug" in msg for level, msg in logs)
    thing.dispatch("/elsewhere", b"x")
    assert any("unexpected topic" in msg for _, msg in logs)


def test_filters_cover_thing_model_ntp_and_user_topics_once():
    thing, _ = make()
    thing.subscribe("/%s/%s/user/get" % (PK, DN), lambda t, p: None)
    thing.subscribe("/%s/%s/user/get" % (PK, DN), lambda t, p: None)
    t = thing.topics
    prefix = t.thing_prefix
    assert thing.filters() == [
        prefix + "service/property/set",
        prefix + "service/+",
        prefix + "event/+/post_reply",
        prefix + "event/property/batch/post_reply",
        prefix + "property/desired/get_reply",
        prefix + "property/desired/delete_reply",
        "/sys/%s/%s/rrpc/request/+" % (PK, DN),
        t.ntp_response,
        t.user("get"),
    ]
    assert prefix + "#" not in thing.filters()  # not granted by any documented list


def test_ntp_response_sets_the_clock():
    thing, _ = make()  # local clock reads 1000 ms
    response = b'{"deviceSendTime":"900","serverRecvTime":"5000","serverSendTime":"5000"}'
    thing.dispatch(thing.topics.ntp_response, response)
    assert thing.clock == ((5000 + 5000 + 1000 - 900) // 2, 1000)
    thing.dispatch(thing.topics.ntp_response, b'{"deviceSendTime":"900"}')
    assert thing.clock == (5050, 1000)  # an incomplete response changes nothing


# -- the thing model (tsl_all_types_table) and sync services over RRPC --

RRPC = "/sys/%s/%s/rrpc/request/" % (PK, DN)


def modelled():
    thing, logs = make()
    thing.use_model("tsl_all_types_table")
    return thing, logs


def test_property_set_checked_by_the_model_names_field_and_rule():
    thing, _ = modelled()
    applied = []
    thing.on_property_set(None, applied.append)
    _, payload = thing.dispatch(SET, request("1", {"Temp": 20, "Mode": 1}))
    assert json.loads(payload)["code"] == 200 and applied == [{"Temp": 20.0, "Mode": 1}]
    _, payload = thing.dispatch(SET, request("2", {"Mode": 1, "Levels": [1, 10]}))
    reply = json.loads(payload)
    assert reply["code"] == 460 and reply["message"].startswith("Levels[1]: out of range 0..9")
    _, payload = thing.dispatch(SET, request("3", {"Serial": "x"}))
    assert json.loads(payload)["message"] == "Serial: read-only"
    assert len(applied) == 1


def test_async_service_input_is_checked():
    thing, _ = modelled()
    calls = []
    thing.on_service("Calibrate", lambda params: calls.append(params) or {"Applied": 1})
    base = "/sys/%s/%s/thing/service/" % (PK, DN)
    topic, payload = thing.dispatch(
        base + "Calibrate", request("4", {"Offset": 2.5}, "thing.service.Calibrate")
    )
    assert topic == base + "Calibrate_reply"
    assert json.loads(payload) == {"id": "4", "code": 200, "data": {"Applied": 1}}
    _, payload = thing.dispatch(
        base + "Calibrate", request("5", {"Offset": 500.0}, "thing.service.Calibrate")
    )
    reply = json.loads(payload)
    assert reply["code"] == 460 and reply["message"].startswith("Offset: out of range")
    assert calls == [{"Offset": 2.5}]


def test_sync_service_over_rrpc_answers_on_the_response_topic():
    thing, _ = modelled()
    thing.on_service("Query", lambda params: {"Count": params["Delay"]})
    topic, payload = thing.dispatch(
        RRPC + "1234", request("9", {"Delay": 7}, "thing.service.Query")
    )
    assert topic == "/sys/%s/%s/rrpc/response/1234" % (PK, DN)
    assert json.loads(payload) == {"id": "9", "code": 200, "data": {"Count": 7}}
    topic, payload = thing.dispatch(
        RRPC + "1235", request("10", {"Delay": -1}, "thing.service.Query")
    )
    assert topic.endswith("/response/1235") and json.loads(payload)["code"] == 460
    _, payload = thing.dispatch(RRPC + "1236", request("11", {}, "thing.event.x.post"))
    assert json.loads(payload)["code"] == 460  # not a service call
    _, payload = thing.dispatch(
        RRPC + "1237", request("12", {"Delay": 200}, "thing.service.Query")
    )
    reply = json.loads(payload)  # the reply breaks the output spec (Count 0..100): 500
    assert reply["code"] == 500 and "Count" in reply["message"]


def test_sync_service_callback_failure_is_500():
    thing, logs = modelled()

    def broken(params):
        raise RuntimeError("sensor gone")

    thing.on_service("Query", broken)
    _, payload = thing.dispatch(RRPC + "1", request("1", {"Delay": 0}, "thing.service.Query"))
    assert json.loads(payload)["code"] == 500
    assert any(level == "error" and "sensor gone" in msg for level, msg in logs)


async def test_async_callback_within_the_deadline_and_too_slow():
    import asyncio

    thing, _ = modelled()
    thing.sync_deadline_ms = 200

    async def query(params):
        await asyncio.sleep(params["Delay"] / 1000)
        return {"Count": 1}

    thing.on_service("Query", query)
    topic, call = thing.dispatch(RRPC + "5", request("5", {"Delay": 10}, "thing.service.Query"))
    assert topic.endswith("/response/5")
    assert json.loads(await call) == {"id": "5", "code": 200, "data": {"Count": 1}}
    _, call = thing.dispatch(RRPC + "6", request("6", {"Delay": 2000}, "thing.service.Query"))
    reply = json.loads(await call)
    assert reply["id"] == "6" and reply["code"] == 503 and "200 ms" in reply["message"]


def test_reply_data_reaches_the_waiter():
    thing, _ = make()
    waiter = thing.expect_reply("8")
    get_reply = thing.topics.desired_get + "_reply"
    body = b'{"id":"8","code":200,"data":{"Count":{"value":3,"version":2}}}'
    assert thing.dispatch(get_reply, body) is None
    assert waiter.code == 200 and waiter.data == {"Count": {"value": 3, "version": 2}}
