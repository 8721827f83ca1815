"""The bring-up half of the session supervisor: from a cold or failed module to MQTT connected.

``await bring_up(modem, board, config, kept, remedy, set_state, log)`` runs the recovery remedy
chosen after the last failure (``aliyun.recovery.LADDER``), then walks the states sync
(autobaud, echo off) -> sim -> network -> [bearer] -> auth -> connect, each with its own
timeout, and raises on the first step that fails; the session subscribes next. ``kept``
(``aliyun.Kept``) carries what one bring-up leaves to the next.

RAM: this module, the module checks (``aliyun.checks`` and the driver's) and everything needed
to log in (signing, HTTPS auth, registration, the HTTP client) are loaded only while bringing the
link up, and in stages: the module checks are dropped before the login, the login code before
the MQTT connect. The MQTT client is closed first and created again at the connect step; its
code is unloaded only for a login that makes an HTTPS request (the first HTTPS auth or
registration, an expired token), which needs that RAM. Unloading and re-importing it at every
bring-up was measured to leave old copies of it referenced now and then (10-20 KB, for several
reconnects). The session unloads what remains (``LOADED_FOR_BRING_UP``) before it goes online.
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun import AUTH, BEARER, CONNECT, SIM, PermanentError, unload
from aliyun.recovery import LADDER, STEPS
from atmodem.errors import CommandError

_BEARER_MS = const(60000)
_CONNECT_MS = const(40000)
_REFUSALS_PERMANENT = const(3)  # CONNACK refusals in a row that mean "wrong credentials"
_REBOOTS = ("reset", "power")  # remedies after which the module boots again
_CONNECTS = const(5)  # CONNECTs per device in any 60 s (Aliyun: the 6th gets CONNACK 3)
_MINUTE_MS = const(61000)  # a minute, and a margin: the clocks of device and cloud differ

_CHECKS = ("aliyun.checks", "air724.module")
_LOGIN = (
    "aliyun.login",
    "aliyun.dynreg",
    "aliyun.secret",
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
    first = kept.firmware is None  # the first bring-up of this boot
    if remedy is not None:
        log("info", "remedy: " + remedy)
        row = LADDER[STEPS.index(remedy)]
        if row[2]:
            kept.pdp_lost = False  # this step brings the default PDP context back (§5.3)
        await row[4](modem, board)
    from aliyun.checks import close_stale, identify, network

    await identify(modem.module, kept, log, first or remedy in _REBOOTS)
    if first:
        await close_stale(modem.channel)
    set_state(SIM)
    await network(modem.module, board, kept, set_state, log)
    modem.release()
    unload(_CHECKS)
    try:
        creds = await _log_in(modem, config, kept, set_state, log)
    finally:
        modem.release()
        unload(_LOGIN)
    set_state(CONNECT)
    await _connect(modem.mqtt, board, kept, creds, log)


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


def connect_wait_ms(times: list, now) -> int:
    """How long the next CONNECT must wait (0: now) so that at most 5 fall in any minute;
    ``times``: when the last ones went out (``Kept.connects``, a sliding window)."""
    if len(times) < _CONNECTS:
        return 0
    left = _MINUTE_MS - ticks_diff(now, times[0])
    # ticks wrap (2**30 ms on a board): a CONNECT 6.2 days old reads as one far ahead.
    return left if 0 < left <= _MINUTE_MS else 0


async def _connect(mqtt, board, kept, creds, log) -> None:
    from air724.mqtt import MQTTRefusedError

    client_id, username, password, host, port, tls, keepalive = creds
    # Push mode before the CONNECT: a module whose boot default is cache mode would otherwise
    # hold the downlinks that arrive before it is set (§7.2).
    try:
        await mqtt.set_push()
    except CommandError:  # refused before a connect: set again after it (the session)
        pass
    await mqtt.configure(client_id, username, password)
    times = kept.connects
    while len(times) > _CONNECTS:  # the window is the last five
        times.pop(0)
    wait = connect_wait_ms(times, ticks_ms())
    if wait:
        log("info", "next CONNECT in %d ms (at most 5 a minute)" % wait)
        while wait > 0:  # fed: the watchdog sees a deliberate wait
            board.feed()
            await asyncio.sleep_ms(min(wait, 20000))
            wait -= 20000
    times.append(ticks_ms())
    try:
        await mqtt.connect(host, port, tls, True, keepalive, _CONNECT_MS)
    except MQTTRefusedError:
        kept.token = None  # an expired or revoked iotToken: ask for a new one
        if kept.passed:  # these credentials worked in this boot: the cloud, not the secret
            raise
        # The TCP/TLS link came up but CONNECT was refused: the credentials (§1.6).
        kept.refusals += 1
        if kept.refusals >= _REFUSALS_PERMANENT:
            raise PermanentError("MQTT CONNECT refused %d times" % kept.refusals) from None
        raise
    except Exception:
        if not mqtt.connect_sent:  # the link never came up (CONNECT FAIL): no CONNECT went out
            times.pop()
        raise
    kept.refusals = 0
    kept.passed = True
