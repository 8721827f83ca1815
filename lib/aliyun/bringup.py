"""The bring-up half of the session supervisor: from a cold or failed module to MQTT online.

``await bring_up(session, remedy)`` applies the recovery remedy chosen after the last failure,
then walks the states sync (autobaud, echo off) -> sim -> network -> [bearer] -> auth ->
connect -> subscribe, each with its own timeout, and raises on the first step that fails.

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

from micropython import const

from aliyun.session import PermanentError, ticks_diff, ticks_ms, unload

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


async def bring_up(s, remedy) -> None:
    """Bring session ``s`` from its current module state to subscribed (see module doc)."""
    modem = s.modem
    await modem.close_mqtt()  # every bring-up starts from a closed MQTT link
    if remedy is not None and remedy != "wait":
        await _apply(s, modem, remedy)
    module = modem.module
    await module.sync(10000)
    await module.echo_off()  # after every (re)boot: echo is on again (§3.2)
    await s.module_clock(module)  # dates stored readings until NTP answers
    if s.firmware is None:
        version = await module.version()
        s.firmware = version.raw
        s.log("info", "module firmware " + version.raw)
        if version.old:
            s.log("warning", "old module firmware: MPUBEX and CLOSED may be missing")
    if not s.device_name:
        s.name_known(await module.imei())
    s.set_state("sim")
    await _until(s, _sim_ready, _SIM_MS, "SIM not ready")
    s.set_state("network")
    await _until(s, _registered, _REGISTER_MS, "not registered")
    await _until(s, _attached, _ATTACH_MS, "not attached")
    try:
        s.signal_dbm = await module.signal_dbm()
    except Exception:  # a missing signal figure is no reason to fail
        s.signal_dbm = None
    module = None
    modem.release()
    unload(_CHECKS)
    try:
        creds = await _log_in(s, modem)
    finally:
        modem.release()
        unload(_LOGIN)
    s.set_state("connect")
    await _connect(s, modem.mqtt, creds)
    s.set_state("subscribe")
    await modem.mqtt.set_push()  # +MSUB pushed as it arrives (§7.2); lost on a reboot
    for topic_filter in s.thing.filters():
        await modem.mqtt.subscribe(topic_filter, 1)


async def _apply(s, modem, remedy) -> None:
    """Run the recovery remedy chosen after the last failure."""
    s.log("info", "remedy: " + remedy)
    if remedy in ("cfun", "reset", "power"):
        s.pdp_lost = False  # each of these brings the default PDP context back (§5.3)
    if remedy == "bearer":
        await _quietly(modem.bearer.close())
    elif remedy == "cfun":
        await _quietly(modem.module.set_functionality(0))
        await _quietly(modem.module.set_functionality(1))
    elif remedy == "reset" or (remedy == "power" and not await s.board.power_cycle()):
        await _quietly(modem.module.reset())


async def _until(s, check, timeout_ms: int, what: str) -> None:
    """Poll ``check(s)`` once a second until it is true or ``timeout_ms`` passes."""
    start = ticks_ms()
    while not await check(s):
        if ticks_diff(ticks_ms(), start) > timeout_ms:
            raise TimeoutError(what)
        s.board.feed()
        await asyncio.sleep(_POLL_MS / 1000)


async def _sim_ready(s) -> bool:
    state = await s.modem.module.sim_state()
    if state != "READY":
        s.log("debug", "SIM: " + state)
    return state == "READY"


async def _registered(s) -> bool:
    return await s.modem.module.registration() in (1, 5)  # home or roaming


async def _attached(s) -> bool:
    return await s.modem.module.attached()


async def _log_in(s, modem) -> tuple:
    """Open the bearer if the login needs HTTPS, then return the MQTT credentials as
    ``(client_id, username, password, host, port, tls, keepalive)``."""
    from aliyun.login import Login, needs_http

    cfg = s.config
    try:
        request = needs_http(cfg, s.store_path, s.token, ticks_ms())
        if request:
            unload(("air724.mqtt",))  # RAM for the request; imported again at the connect step
            s.set_state("bearer")
            await modem.bearer.ensure(cfg["apn"], _BEARER_MS)
            modem.release()  # the bearer stays open; its code leaves RAM before the request
            unload(("air724.bearer",))
        s.set_state("auth")
        login = Login(cfg, s.device_name, s.store_path, ticks_ms, s.log, s.token)
        creds = await login.credentials(modem.http if request else None)
        s.token = login.token
        return tuple(creds)  # a plain tuple: keeps nothing of aliyun.sign alive
    except Exception as exc:
        # aliyun.auth.AuthError (codes 401/460/5001/6200) and aliyun.sign.SignError say when
        # the same credentials can never work (without importing auth for direct logins).
        if getattr(exc, "permanent", False):
            raise PermanentError("login refused: %s" % exc) from None
        raise


async def _connect(s, mqtt, creds) -> None:
    from air724.mqtt import MQTTRefusedError

    client_id, username, password, host, port, tls, keepalive = creds
    await mqtt.configure(client_id, username, password)
    try:
        await mqtt.connect(host, port, tls, True, keepalive, _CONNECT_MS)
    except MQTTRefusedError:
        # The TCP/TLS link came up but CONNECT was refused: the credentials (§1.6).
        s.refusals += 1
        s.token = None  # an expired or revoked iotToken: ask for a new one
        if s.refusals >= _REFUSALS_PERMANENT:
            raise PermanentError("MQTT CONNECT refused %d times" % s.refusals) from None
        raise
    s.refusals = 0


async def _quietly(aw) -> None:
    """Await a cleanup step whose failure changes nothing (the module may be half gone)."""
    try:
        await aw
    except Exception:
        pass
