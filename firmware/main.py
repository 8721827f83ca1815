"""Entry point, run by MicroPython after boot.py: config, board, session, application.

- config.json invalid or missing: the log names the field, the LED shows "error" and the firmware
  idles in a safe state (no watchdog, no reset, REPL reachable) until config.json is fixed.
- An unexpected exception: logged with its traceback, the LED shows "error", and after the
  board's ``reset_delay_ms`` the board resets (the unix port exits with status 1).
- Ctrl-C (SIGINT on the unix port, or a Ctrl-C byte on stdin there, see boards/unix.py): the
  session's and the application's counters are logged as one ``stats {json}`` line, then main
  returns (to the REPL on a board).
"""

import asyncio
import gc
import json
import sys

_OTA_STATE = None  # after an update (OTA): the active file set goes first on sys.path
try:
    open("ota/state.json").close()
except OSError:
    pass  # the factory set: nothing to import
else:
    _OTA_STATE = __import__("aliyun.otaboot").otaboot.select(True)

import boards  # noqa: E402 - from the set otaboot selected
import config  # noqa: E402
import logger  # noqa: E402

_running = {}  # the application while it runs, for the stats line on Ctrl-C
_why = [""]  # why the firmware waits in its safe state (the config error)


def load_config(path: str, log):
    """The validated configuration, or None after logging the field at fault."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        log("error", str(exc))
        _why[0] = str(exc)
        return None
    log.set_level(cfg["log_level"])
    log.redact(cfg["device_secret"])
    log.redact(cfg["product_secret"])
    return cfg


def safe_board(board_class, log):
    """A board on its defaults, to show the error LED; None where it needs the config (unix)."""
    try:
        return board_class({}, log)
    except config.ConfigError:
        return None


async def safe_state(board, log, idle_s: int = 10) -> None:
    """Show the error and do nothing else, forever: no watchdog is started, so no reset loop.
    The reason is repeated every ``idle_s``: a console opened later soon shows why."""
    if board is not None:
        board.led("error")
    why = " (%s)" % _why[0] if _why[0] else ""
    while True:
        log("error", "safe state: fix config.json, then reset the board" + why)
        await asyncio.sleep(idle_s)


async def run(board, cfg: dict, log) -> None:
    """Bring the device online and run the example application (forever)."""
    import app

    from aliyun.session import Session  # the large part: imported once the config is valid

    session = Session(board, cfg, log=log)
    application = app.App(session, board, cfg, log)
    _running["app"] = application
    application.start()
    if cfg["ota"]:  # updates over the air (the agent is imported when there is work)
        __import__("aliyun.otahook").otahook.install(
            session, board, log, cfg, _OTA_STATE, app.VERSION
        )
    log("info", "application " + app.VERSION)
    task = asyncio.create_task(application.run())
    try:
        await session.run()
    finally:
        task.cancel()


async def stoppable(board_class, coro) -> None:
    """Run ``coro``; on the unix port a Ctrl-C byte on stdin cancels it (boards/unix.py)."""
    watch_stop = getattr(board_class, "watch_stop", None)
    if watch_stop is not None:
        asyncio.create_task(watch_stop(asyncio.current_task()))
    await coro


async def crashed(board, log, exc: BaseException) -> None:
    """Log ``exc`` with its traceback (one log line per line), show the error, wait the
    board's reset delay, then reset the board."""
    import io

    log("error", "unexpected error: " + repr(exc))
    buf = io.StringIO()
    if hasattr(sys, "print_exception"):
        # The stubs' StringIO lacks its stream base class and getvalue() (MicroPython has both).
        sys.print_exception(exc, buf)  # pyright: ignore[reportArgumentType]
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
    text = buf.getvalue()  # pyright: ignore[reportAttributeAccessIssue] - missing from the stubs
    for line in text.split("\n"):
        if line:
            log("error", "  " + line)
    delay_ms = getattr(board, "reset_delay_ms", 0)  # 0 without a board
    if board is not None:
        board.led("error")
    log("error", "reset in %d ms" % delay_ms)
    await asyncio.sleep(delay_ms / 1000)
    if board is not None:
        board.reset()  # returns only on the unix port


def release(name: str) -> None:
    """Drop a module no longer needed so the garbage collector can free its RAM."""
    sys.modules.pop(name, None)
    globals().pop(name, None)
    gc.collect()


def stopped(log, board=None) -> None:
    """Ctrl-C: log that, and the counters of the application if it ran; a started watchdog
    is fed from a timer from now on (boards/mcu.py), so the REPL stays usable."""
    # A SIGINT on the unix port that lands inside a garbage collection leaves the heap locked;
    # a full collection unlocks it (see boards/unix.py for the safe way to stop). On a board,
    # where Ctrl-C is only noted, it costs one collection.
    gc.collect()
    park = getattr(board, "stopped", None)  # None without a board
    if park is not None:
        park()
    log("info", "stopped")
    application = _running.get("app")
    if application is not None:
        log("info", "stats " + json.dumps(application.summary()))


def main(path: str = "config.json") -> None:
    log = logger.Logger()
    board_class = boards.load()
    log("info", "firmware start (%s)" % board_class.name)
    cfg = load_config(path, log)
    board = None
    try:
        if cfg is not None:
            try:
                board = board_class(cfg, log)
            except config.ConfigError as exc:  # a board-specific field (e.g. uart.url)
                log("error", str(exc))
                _why[0] = str(exc)
        if cfg is None or board is None:
            asyncio.run(stoppable(board_class, safe_state(safe_board(board_class, log), log)))
            return
        board.led("boot")
        release("config")  # its tables (about 8 KB) are done with: the RAM goes to the session
        asyncio.run(stoppable(board_class, run(board, cfg, log)))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or stoppable() on unix
        stopped(log, board)
    except Exception as exc:
        if sys.implementation.name == "micropython":
            asyncio.new_event_loop()  # drop the crashed loop's tasks before running again
        asyncio.run(crashed(board, log, exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
