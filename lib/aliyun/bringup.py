"""The bring-up half of the session supervisor: from a cold or failed module to MQTT connected.

``await bring_up(modem, board, config, kept, remedy, set_state, log)`` runs the recovery remedy
chosen after the last failure (``aliyun.recovery.LADDER``), then walks the states sync
(autobaud, echo off) -> sim -> network -> [bearer] -> auth -> connect, each with its own
timeout, and raises on the first step that fails; the session subscribes next. ``kept``
(``aliyun.Kept``) carries what one bring-up leaves to the next.

RAM: this module, the driver's module-check code and everything needed to log in (signing,
HTTPS auth, registration, the HTTP client) are loaded only while bringing the link up, and in
stages: the module checks are dropped before the login, the login code before the MQTT connect.
The MQTT client is closed first and created again at the connect step; its code is unloaded only
for a login that makes an HTTPS request (the first HTTPS auth or registration, an expired
token), which needs that RAM. Unloading and re-importing it at every bring-up was measured to
leave old copies of it referenced now and then (10-20 KB, for several reconnects). The session
unloads what remains (``LOADED_FOR_BRING_UP``) before it goes online.
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun import AUTH, BEARER, CONNECT, NETWORK, SIM, PermanentError, unload
from aliyun.recovery import LADDER, STEPS
from atmodem.errors import ATTimeoutError

_SYNC_MS = const(10000)
_SIM_MS = const(30000)
_REGISTER_MS = const(120000)  # "normally < 2 min" (air724-at.md §10)
_ATTACH_MS = const(20000)  # registered but no PDP context for this long: recover (§5.3)
_BEARER_MS = const(60000)
_CONNECT_MS = const(40000)
_POLL_MS = const(1000)  # state polls during bring-up only; online the session waits on events
_REFUSALS_PERMANENT = const(3)  # CONNACK refusals in a row that mean "wrong credentials"

_CHECKS = ("air724.module",)
_LOGIN = (
    "aliyun.login",
    "aliyun.dynreg",
    "aliyun.auth",
    "aliyun.sign",
    "aliyun.digest",
    "aliyun.md5",
    "air724.http",
    "air724.bearer",
)
LOADED_FOR_BRING_UP = ("aliyun.bringup",) + _CHECKS + _LOGIN


async def bring_up(modem, board, config: dict, kept, remedy, set_state, log) -> None:
    """Bring ``modem`` (an ``air724.Air724``) from its current state to MQTT connected.

    ``config``: the validated config.json; ``kept``: an ``aliyun.Kept``, read and
    updated; ``remedy``: a ``LADDER`` name or None; ``set_state(state)`` at each step;
    ``log(level, message)``. ``board`` is fed while polling and power-cycles the module.
    """
    await modem.close_mqtt()  # every bring-up starts from a closed MQTT link
    if remedy is not None:
        log("info", "remedy: " + remedy)
        row = LADDER[STEPS.index(remedy)]
        if row[2]:
            kept.pdp_lost = False  # this step brings the default PDP context back (§5.3)
        await row[3](modem, board)
    await _identify(modem.module, kept, log)
    set_state(SIM)
    await _network(modem.module, board, kept, set_state, log)
    modem.release()
    unload(_CHECKS)
    try:
        creds = await _log_in(modem, config, kept, set_state, log)
    finally:
        modem.release()
        unload(_LOGIN)
    set_state(CONNECT)
    await _connect(modem.mqtt, kept, creds)


async def _identify(module, kept, log) -> None:
    """Autobaud, echo off (on again after every (re)boot, §3.2), firmware once, IMEI if needed."""
    await module.sync(_SYNC_MS)
    await module.echo_off()
    if kept.firmware is None:
        version = await module.version()
        kept.firmware = version.raw
        log("info", "module firmware " + version.raw)
        if version.old:
            log("warning", "old module firmware: MPUBEX and CLOSED may be missing")
    if not kept.device_name:
        kept.device_name = await module.imei()


async def _network(module, board, kept, set_state, log) -> None:
    """SIM ready, then registered and attached; the signal figure when the module gives it."""

    async def sim_ready():
        state = await module.sim_state()
        if state != "READY":
            log("debug", "SIM: " + state)
        return state == "READY"

    async def registered():
        return await module.registration() in (1, 5)  # home or roaming

    await _until(board, sim_ready, _SIM_MS, "SIM not ready")
    set_state(NETWORK)
    await _until(board, registered, _REGISTER_MS, "not registered")
    await _until(board, module.attached, _ATTACH_MS, "not attached")
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


async def _log_in(modem, cfg, kept, set_state, log) -> tuple:
    """Open the bearer if the login needs HTTPS, then return the MQTT credentials as
    ``(client_id, username, password, host, port, tls, keepalive)``."""
    from aliyun.login import Login, needs_http

    try:
        request = needs_http(cfg, kept.store_path, kept.token, ticks_ms())
        if request:
            unload(("air724.mqtt",))  # RAM for the request; imported again at the connect step
            set_state(BEARER)
            await modem.bearer.ensure(cfg["apn"], _BEARER_MS)
            modem.release()  # the bearer stays open; its code leaves RAM before the request
            unload(("air724.bearer",))
        set_state(AUTH)
        login = Login(cfg, kept.device_name, kept.store_path, ticks_ms, log, kept.token)
        creds = await login.credentials(modem.http if request else None)
        kept.token = login.token
        return tuple(creds)  # a plain tuple: keeps nothing of aliyun.sign alive
    except Exception as exc:
        # aliyun.auth.AuthError (codes 401/460/5001/6200) and aliyun.sign.SignError say when
        # the same credentials can never work (without importing auth for direct logins).
        if getattr(exc, "permanent", False):
            raise PermanentError("login refused: %s" % exc) from None
        raise


async def _connect(mqtt, kept, creds) -> None:
    from air724.mqtt import MQTTRefusedError

    client_id, username, password, host, port, tls, keepalive = creds
    await mqtt.configure(client_id, username, password)
    try:
        await mqtt.connect(host, port, tls, True, keepalive, _CONNECT_MS)
    except MQTTRefusedError:
        # The TCP/TLS link came up but CONNECT was refused: the credentials (§1.6).
        kept.refusals += 1
        kept.token = None  # an expired or revoked iotToken: ask for a new one
        if kept.refusals >= _REFUSALS_PERMANENT:
            raise PermanentError("MQTT CONNECT refused %d times" % kept.refusals) from None
        raise
    kept.refusals = 0
