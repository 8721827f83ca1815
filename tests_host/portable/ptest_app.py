"""The example application (firmware/app.py) against a fake session, on both runtimes."""

import asyncio

import app
import config
from fakes_session import DEVICE_NAME, PRODUCT_KEY, FakeBoard, FakeSession, LogLines, Recorder
from ptest import raises

from aliyun.alink import AlinkError

USER_GET = "/%s/%s/user/get" % (PRODUCT_KEY, DEVICE_NAME)
USER_UPDATE = "/%s/%s/user/update" % (PRODUCT_KEY, DEVICE_NAME)


def make_config(**changes):
    raw = {"product_key": PRODUCT_KEY, "device_secret": "s3cr3t-value"}
    raw.update(changes)
    return config.validate(raw)


class Waits:
    """A stand-in for app.wait_event: records each timeout, then waits for the event only."""

    def __init__(self):
        self.timeouts = Recorder()

    async def __call__(self, event, timeout_ms):
        self.timeouts.append(timeout_ms)
        await event.wait()
        return True


def make_app(session=None, wait=None, **changes):
    session = session or FakeSession()
    board = FakeBoard()
    log = LogLines()
    application = app.App(session, board, make_config(**changes), log, wait or Waits())
    application.start()
    return application, session, board, log


async def stop(task):
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def test_thing_model_accepts_the_documented_ranges_only():
    import tsl_table

    from aliyun.tsl import Model

    model = Model(tsl_table)
    assert model.check_set({"ReportInterval": 1, "LEDSwitch": 0})["LEDSwitch"] == 0
    assert model.check_set({"ReportInterval": 3600, "LEDSwitch": 1}) == {
        "ReportInterval": 3600,
        "LEDSwitch": 1,
    }
    for params, field in (
        ({"ReportInterval": 0}, "ReportInterval: out of range 1..86400"),
        ({"ReportInterval": 86401}, "ReportInterval: out of range"),
        ({"ReportInterval": "60"}, "ReportInterval: int expected"),
        ({"ReportInterval": 1.5}, "ReportInterval: int expected"),
        ({"LEDSwitch": True}, "LEDSwitch: value must be one of 0, 1"),
        ({"LEDSwitch": 2}, "LEDSwitch"),
        ({"Uptime": 1}, "Uptime: read-only"),
        ({"Colour": 1}, "Colour: not in the thing model"),
    ):
        with raises(AlinkError, match=field) as caught:
            model.check_set(params)
        assert caught.value.code == 460


def test_start_subscribes_user_get_when_the_name_is_known():
    _, session, _, _ = make_app()
    assert [f for f, _ in session.subscriptions] == [USER_GET]
    assert len(session.property_handlers) == 1 and session.property_handlers[0][0] is None
    assert session.model is not None and sorted(session.services) == ["Blink", "Status"]


def test_subscription_waits_for_the_device_name():
    session = FakeSession(device_name="")
    _, session, _, log = make_app(session)
    assert session.subscriptions == []
    session.set_state("sim")
    assert session.subscriptions == []
    session.learn_name("862991419835241")
    session.set_state("network")
    session.set_state("bearer")  # subscribed once, not once per state
    assert [f for f, _ in session.subscriptions] == ["/%s/862991419835241/user/get" % PRODUCT_KEY]
    assert log.find("state network", "info")


async def test_user_get_is_logged_and_echoed_to_user_update():
    application, session, _, log = make_app()
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        assert session.deliver(USER_GET, b'{"n":1,"text":"hello\x00"}') == 1
        topic, payload, qos = await session.published.wait(1)
        assert (topic, payload, qos) == (USER_UPDATE, b'{"n":1,"text":"hello\x00"}', 1)
        assert log.find('down user/get 23 B: {"n":1,"text":"hello."}', "info")
        assert log.find("up user/update 23 B (echo)", "info")
        session.deliver(USER_GET, b"second")
        assert (await session.published.wait(2))[1] == b"second"
        assert application.echoed == 2
    finally:
        await stop(task)


def test_echo_off_only_logs():
    application, session, _, log = make_app(echo_user_get=False)
    session.set_state("online")
    session.deliver(USER_GET, b"ping")  # the callback decides at once: nothing is queued
    assert log.find("down user/get 4 B: ping")
    assert application._echo_queue == [] and application.echo_dropped == 0


def test_echo_queue_is_bounded_and_drops_are_counted():
    application, session, _, log = make_app()
    for n in range(9):  # the echo loop is not running: nothing leaves the queue
        session.deliver(USER_GET, b"m%d" % n)
    assert len(application._echo_queue) == 8 and application._echo_queue[0] == b"m0"
    assert application.echo_dropped == 1
    assert log.find("echo queue full", "warning")


async def test_telemetry_posts_when_online_then_waits_the_interval():
    waits = Waits()
    application, session, board, log = make_app(wait=waits, telemetry_interval_s=42)
    board.heap = 61234
    task = asyncio.create_task(application.run())
    try:
        session.set_state("network")
        session.set_state("online")
        params = await session.posts.wait(1)
        assert sorted(params) == ["DemoValue", "FreeHeap", "LEDSwitch", "ReportInterval", "Uptime"]
        assert params["FreeHeap"] == 61234 and params["ReportInterval"] == 42
        assert params["LEDSwitch"] == 1 and 0 <= params["DemoValue"] <= 100
        assert log.find("up properties: 200", "info")
        assert await waits.timeouts.wait(1) == 42000
        assert application.reports == 1 and session.posted_offline == 0
    finally:
        await stop(task)


async def test_rssi_is_reported_when_the_session_knows_it():
    session = FakeSession()
    session.signal_dbm = -71
    application, session, _, _ = make_app(session)
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        assert (await session.posts.wait(1))["RSSI"] == -71
    finally:
        await stop(task)


def test_demo_value_is_a_triangle_wave_and_uptime_grows():
    application, _, _, _ = make_app()
    values = [application.properties()["DemoValue"] for _ in range(21)]
    assert values[:3] == [0, 10, 20] and values[10] == 100 and values[19:] == [10, 0]
    uptimes = [application.properties()["Uptime"] for _ in range(3)]
    assert uptimes == sorted(uptimes) and uptimes[0] >= 0


async def test_property_set_applies_values_and_reports_them_at_once():
    waits = Waits()
    application, session, board, log = make_app(wait=waits, telemetry_interval_s=3600)
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        await session.posts.wait(1)
        assert session.property_set({"ReportInterval": 30, "LEDSwitch": 0}) == (200, "")
        params = await session.posts.wait(2)  # woken by the set, not by the hour
        assert params["ReportInterval"] == 30 and params["LEDSwitch"] == 0
        assert application.interval_s == 30 and board.led_on is False
        await waits.timeouts.wait(2)
        assert waits.timeouts.items == [3600000, 30000]
        assert log.find("property set LEDSwitch=0, ReportInterval=30", "info")
        assert session.property_set({"LEDSwitch": 1}) == (200, "")
        assert board.led_on is True
    finally:
        await stop(task)


def test_invalid_property_set_is_refused_whole():
    application, session, board, _ = make_app(telemetry_interval_s=60)
    code, message = session.property_set({"ReportInterval": 10, "LEDSwitch": 5})
    assert code == 460 and "LEDSwitch" in message
    code, message = session.property_set({"ReportInterval": 0})
    assert code == 460 and "ReportInterval" in message
    assert application.interval_s == 60 and board.led_on is True  # nothing half-applied


async def test_failed_posts_are_logged_and_telemetry_goes_on():
    waits = Waits()
    session = FakeSession()
    session.post_reply = None
    application, session, _, log = make_app(session, wait=waits)
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        await waits.timeouts.wait(1)
        assert log.find("up properties: no reply", "warning") and application.reports == 0
        session.post_reply = OSError("link lost")
        session.property_set({"LEDSwitch": 0})  # wakes the loop for another post
        await waits.timeouts.wait(2)  # the loop survived the exception
        assert len(session.posts) == 2
        assert log.find("property post failed: OSError", "warning")
    finally:
        await stop(task)


async def test_no_telemetry_before_the_first_online():
    waits = Waits()
    application, session, _, _ = make_app(wait=waits, telemetry_interval_s=5)
    task = asyncio.create_task(application.run())
    try:
        session.set_state("network")
        session.property_set({"LEDSwitch": 0})  # wakes nothing: not yet online
        session.set_state("online")
        assert (await session.posts.wait(1))["LEDSwitch"] == 0
        assert session.posted_offline == 0 and len(session.posts) == 1
    finally:
        await stop(task)


async def test_offline_telemetry_is_queued_not_awaited():
    application, session, _, log = make_app(wait=app.wait_event, telemetry_interval_s=5)
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        await session.posts.wait(1)
        session.set_state("backoff")
        session.post_reply = None  # no reply while offline
        session.property_set({"LEDSwitch": 0})  # wakes the loop: it posts into the outbox
        assert (await session.posts.wait(2))["LEDSwitch"] == 0
        assert session.posted_offline == 1 and session.reply_timeouts[-1] == 0
        assert log.find("up properties: queued while offline", "info")
        assert application.reports == 1
    finally:
        await stop(task)


async def test_wait_event_returns_early_when_set_and_false_on_timeout():
    event = asyncio.Event()
    assert await app.wait_event(event, 1) is False
    event.set()
    assert await app.wait_event(event, 60000) is True


def test_summary_merges_session_stats_and_app_counters():
    application, session, _, _ = make_app()
    session.stats["reconnects"] = 3
    summary = application.summary()
    assert summary["reconnects"] == 3 and summary["reports"] == 0
    assert summary["echoed"] == 0 and summary["echo_dropped"] == 0


def test_user_get_log_shows_a_short_printable_preview():
    _, session, _, log = make_app(echo_user_get=False)
    session.deliver(USER_GET, b"a\r\nb")
    assert log.lines[-1] == ("info", "down user/get 4 B: a..b")
    session.deliver(USER_GET, b"x" * 100)
    assert log.lines[-1] == ("info", "down user/get 100 B: " + "x" * 48 + "...")


async def test_a_post_that_breaks_the_thing_model_is_refused_on_the_device():
    waits = Waits()
    application, session, board, log = make_app(wait=waits)
    board.heap = -1  # FreeHeap is 0..2147483647 in the TSL
    task = asyncio.create_task(application.run())
    try:
        session.set_state("online")
        await waits.timeouts.wait(1)
        assert len(session.posts) == 0 and application.reports == 0
        assert log.find("property post refused on the device: FreeHeap: out of range", "error")
    finally:
        await stop(task)


async def test_services_blink_and_status():
    application, session, board, _ = make_app()
    assert await session.call_service("Blink", {"Times": 1}) == {}
    assert board.led_on is True  # back to its state after blinking
    with raises(AlinkError, match="Times: out of range 1..10"):
        await session.call_service("Blink", {"Times": 11})
    application.reports = 3
    status = await session.call_service("Status", {"WaitMs": 1})
    assert status["Reports"] == 3 and status["Uptime"] >= 0
