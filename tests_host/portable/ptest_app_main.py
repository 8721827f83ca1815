"""The firmware's entry point (firmware/main.py) and log helper (firmware/logger.py)."""

import asyncio
import json
import os

import logger
import main
from fakes_session import FakeBoard, LogLines, wait_ms

SECRET = "Zk8sQ2pW9xYt"
TMP = "ptest_app_main_config.json"


class Clock:
    def __init__(self, ms=0):
        self.ms = ms

    def __call__(self):
        return self.ms


def make_logger(level="info"):
    lines = []
    clock = Clock(5000)
    log = logger.Logger(level, lines.append, clock)
    return log, lines, clock


def test_log_lines_are_timestamped_and_levelled():
    log, lines, clock = make_logger()
    clock.ms = 5000 + 12345
    log("info", "online in 3.2 s")
    clock.ms = 5000 + 3723456
    log("warning", "reconnect")
    log("error", "boom")
    assert lines == ["   12.345 I online in 3.2 s", " 3723.456 W reconnect", " 3723.456 E boom"]


def test_log_times_are_summed_line_by_line_for_a_week():
    # On a board ticks span 6.2 days (2**30 ms), so the time since start is summed per line,
    # dropped ones too. (This 64-bit port's ticks do not wrap then: the sum is what is checked.)
    from time import ticks_add

    log, lines, clock = make_logger()
    for _day in range(7):
        clock.ms = ticks_add(clock.ms, 86400000)
        log("debug", "a line below the level")
    clock.ms = ticks_add(clock.ms, 1500)
    log("info", "a week on")
    assert lines == ["604801.500 I a week on"]


def test_levels_below_the_threshold_are_dropped():
    log, lines, _ = make_logger("warning")
    log("debug", "d")
    log("info", "i")
    log("warn", "w")
    log("mystery", "m")  # unknown levels rank as errors: never lost
    assert [line[-3:] for line in lines] == ["W w", "E m"]
    log.set_level("debug")
    log("debug", "now")
    assert lines[-1].endswith("D now")


def test_redacted_secrets_never_reach_the_output():
    log, lines, _ = make_logger()
    log.redact(SECRET)
    log.redact("")  # nothing to hide
    log.redact("ab")  # too short to be a secret: would mask ordinary text
    log("info", 'AT+MCONFIG="dev","dev&pk","%s" ab' % SECRET)
    assert SECRET not in lines[0] and lines[0].endswith('"***" ab')


def write_config(raw):
    with open(TMP, "w") as f:
        f.write(raw if isinstance(raw, str) else json.dumps(raw))


def test_valid_config_sets_the_level_and_hides_the_secrets():
    log, lines, _ = make_logger()
    write_config({"product_key": "a1B2c3D4e5F", "device_secret": SECRET, "log_level": "error"})
    try:
        cfg = main.load_config(TMP, log)
    finally:
        os.remove(TMP)
    assert cfg["device_secret"] == SECRET
    log("info", "hidden by level")
    log("error", "secret " + SECRET)
    assert lines == ["    0.000 E secret ***"]


def test_invalid_config_names_the_field_and_no_secret():
    log, lines, _ = make_logger()
    cases = (
        ({"product_key": "pk1", "device_secret": SECRET, "keepalive_s": 5}, "keepalive_s"),
        ({"device_secret": SECRET}, "product_key"),
        ("{not json", "(file)"),
    )
    for raw, field in cases:
        write_config(raw)
        try:
            assert main.load_config(TMP, log) is None
        finally:
            os.remove(TMP)
        assert ("E config.json: " + field + ": ") in lines[-1], lines[-1]
    assert main.load_config(TMP, log) is None and "cannot read" in lines[-1]
    assert not [line for line in lines if SECRET in line]


def test_safe_board_falls_back_to_defaults_or_none():
    log = LogLines()
    assert isinstance(main.safe_board(FakeBoard, log), FakeBoard)
    import boards.unix

    assert main.safe_board(boards.unix.Board, log) is None  # no UART address to use


async def test_safe_state_shows_the_error_and_idles_without_a_watchdog():
    for board in (FakeBoard(), None):  # None: the unix port without a UART address
        log = LogLines()
        task = asyncio.create_task(main.safe_state(board, log, idle_s=3600))
        try:
            await asyncio.sleep(0)  # one turn: the task reaches its idle wait
            assert log.find("safe state: fix config.json", "error")
            assert not task.done()
            if board is not None:
                assert board.leds == ["error"]
                assert board.watchdogs == [] and board.resets == 0  # no reset loop
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


async def test_crash_logs_shows_the_error_and_resets_after_the_delay():
    board = FakeBoard()
    board.reset_delay_ms = 20
    log, lines, _ = make_logger()
    try:
        raise RuntimeError("stuck")
    except RuntimeError as exc:
        error = exc
    await wait_ms(main.crashed(board, log, error), 2000)
    assert board.leds == ["error"] and board.resets == 1
    assert "E unexpected error: RuntimeError('stuck'" in lines[0]
    assert any("Traceback" in line for line in lines[1:])
    assert all(" E " in line for line in lines)
    assert lines[-1].endswith("E reset in 20 ms")


def test_stopped_logs_the_stats_line_as_json_from_the_running_app():
    class App:
        def summary(self):
            return {"reconnects": 2, "reports": 5}

    log = LogLines()
    main._running.clear()
    main.stopped(log)
    assert log.lines == [("info", "stopped")]
    main._running["app"] = App()
    try:
        main.stopped(log)
    finally:
        main._running.clear()
    level, message = log.lines[-1]
    assert level == "info" and message.startswith("stats ")
    assert json.loads(message[6:]) == {"reconnects": 2, "reports": 5}


async def test_stoppable_runs_until_the_boards_stop_watch_cancels_it():
    ran = []

    class Board:
        @staticmethod
        async def watch_stop(task):
            while not ran:
                await asyncio.sleep(0)
            task.cancel()  # what the unix board does on a Ctrl-C byte

    async def forever():
        ran.append(1)
        while True:
            await asyncio.sleep(1)

    task = asyncio.create_task(main.stoppable(Board, forever()))
    try:
        await wait_ms(task, 2000)
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("not cancelled")
    assert ran == [1]


async def test_stoppable_without_a_stop_watch_just_runs():
    class Board:
        pass

    async def answer():
        return 42

    await main.stoppable(Board, answer())  # nothing to watch: the coroutine alone decides


def test_release_forgets_a_module():
    import sys

    sys.modules["ptest_dummy_module"] = object()
    main.release("ptest_dummy_module")
    assert "ptest_dummy_module" not in sys.modules
    main.release("never_imported")  # nothing to do
