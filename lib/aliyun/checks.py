"""The module checks of a bring-up (``aliyun.bringup``): the module answers and is identified,
a session it kept over an MCU reset is closed, the SIM is ready, the network registered and
attached. Loaded with the driver's module checks and unloaded with them, before the login.
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun import NETWORK
from atmodem.errors import ATTimeoutError, CommandError

SYNC_MS = const(10000)
BOOT_MS = const(30000)  # power-on until AT is answered: "about 20 s" (air724-at.md §10)
SIM_MS = const(30000)
REGISTER_MS = const(120000)  # "normally < 2 min" (air724-at.md §10)
ATTACH_MS = const(20000)  # registered but no PDP context for this long: recover (§5.3)
_LIMITS = (SIM_MS, REGISTER_MS, ATTACH_MS)
_POLL_MS = const(1000)  # state polls during bring-up only; online the session waits on events


async def identify(module, kept, log, booting) -> None:
    """Autobaud (a module that is booting may take its time: a normal state, said once), echo
    and numbered errors (both reset by every (re)boot, §3.2), firmware once, IMEI if needed."""
    try:
        await module.sync(2000)
    except ATTimeoutError:
        log("info", "waiting for the module")
        await module.sync(BOOT_MS if booting else SYNC_MS)
    await module.echo_off()
    await module.numbered_errors()
    if kept.wants_clock and kept.clock is None:  # dates stored readings until NTP answers
        kept.clock = await module.network_clock()
    if kept.firmware is None:
        version = await module.version()
        kept.firmware = version.raw
        # Before V907: no AT+MPUBEX (binary and long payloads) and, before V838, no CLOSED.
        log("info", "module firmware " + version.raw + (" (before V907)" if version.old else ""))
    if not kept.device_name:
        kept.device_name = await module.imei()


async def close_stale(channel) -> None:
    """The MCU (re)started, the module may not have: close the MQTT session it may still
    hold (AT+MDISCONNECT, AT+MIPCLOSE), so the connect step starts clean. Nothing open is
    fine (767, or a bare ERROR). Plain commands: the MQTT client's code is not loaded yet."""
    for cmd in (b"AT+MDISCONNECT", b"AT+MIPCLOSE"):
        try:
            await channel.command(cmd, 5000)
        except CommandError:
            pass


async def network(module, board, kept, set_state, log, limits=_LIMITS) -> None:
    """SIM ready, then registered and attached, each within its ``limits`` (ms); the signal
    figure when the module gives it."""

    said = []

    async def sim_ready():
        state = await module.sim_state()
        if state != "READY" and state not in said:  # each state once: BUSY at boot is normal
            said.append(state)
            log("info", "SIM " + state.lower())
        return state == "READY"

    async def registered():
        return await module.registration() in (1, 5)  # home or roaming

    await _until(board, sim_ready, limits[0], "SIM not ready")
    set_state(NETWORK)
    await _until(board, registered, limits[1], "not registered")
    await _until(board, module.attached, limits[2], "not attached")
    try:
        kept.signal_dbm = await module.signal_dbm()
    except Exception:  # a missing signal figure is no reason to fail
        kept.signal_dbm = None


async def _until(board, check, timeout_ms: int, what: str) -> None:
    """Poll ``await check()`` once a second until it is true; ``ATTimeoutError(what)`` after
    ``timeout_ms``."""
    start = ticks_ms()
    while not await check():
        if ticks_diff(ticks_ms(), start) > timeout_ms:
            raise ATTimeoutError(what)
        board.feed()
        await asyncio.sleep_ms(_POLL_MS)
