"""Module check, identity, SIM, network and power commands (reference §3.3, §4)."""

import asyncio
import time
from dataclasses import dataclass

from .atparse import EXEC, READ, SET
from .results import NO_FINAL, AtError, CmeError


@dataclass
class Identity:
    """What the module reports about itself (defaults from the reference's examples)."""

    firmware: str = "AirM2M_Air724UG_V409_LTE_AT"  # +CGMR in the Air724 log (§1.1, S2)
    imei: str = "862991419835241"  # the seed's DeviceName is the IMEI
    iccid: str = "89860117831003134201"  # §4 AT+ICCID example
    imsi: str = "460011234567890"
    rssi: int = 24
    sim: bool = True  # a SIM card is inserted at power-on


def _need_sim(m):
    """SIM checks: absent → CME 10 (§9), still initialising → CME 14 (SIM busy)."""
    if not m.radio.sim_present:
        raise CmeError(10)
    if not m.radio.sim_ready:
        raise CmeError(14)


def at(m, c):
    return None


def echo(m, c):
    if c.raw not in ("", "0", "1"):
        raise AtError
    m.echo = c.raw == "1"


def ati(m, c):
    m.info(m.identity.firmware)  # bare version line (§4 ATI / AT+VER)


def ok(m, c):
    return None


def cgmr(m, c):
    style = m.dialect.cgmr  # §4: `+CGMR: "…"` (Air724 log) vs `Revision: …` (manual) vs bare
    fw = m.identity.firmware
    m.info({"quoted": f'+CGMR: "{fw}"', "revision": f"Revision: {fw}", "bare": fw}[style])


def cgsn(m, c):
    m.info(m.identity.imei)  # bare 15-digit IMEI, no prefix (§4)


def iccid(m, c):
    _need_sim(m)
    radio = m.radio
    if m.dialect.iccid_first_error and not radio.iccid_asked:
        radio.iccid_asked = True  # before V301833 the first query after boot failed (§1.3)
        raise AtError
    m.info(f"+ICCID: {m.identity.iccid}")


def ccid(m, c):
    _need_sim(m)
    m.info(m.identity.iccid)


def cimi(m, c):
    _need_sim(m)
    m.info(m.identity.imsi)


def csq(m, c):
    rssi, ber = m.radio.csq()
    m.info(f"+CSQ: {rssi},{ber}")


def cpin_read(m, c):
    radio = m.radio
    if not radio.sim_present:
        no_sim = m.dialect.no_sim  # §4, §12.7
        if no_sim == "cme10":
            raise CmeError(10)
        m.info("+CPIN: NOT INSERTED" if no_sim == "not-inserted" else "+CPIN: SIM REMOVED")
        return None
    if not radio.sim_ready:
        raise CmeError(14)
    m.info("+CPIN: READY")
    return None


def _reg_read(name):
    def handler(m, c):
        m.info(m.radio.reg_text(name))

    return handler


def _reg_set(name):
    def handler(m, c):
        m.radio.urc_mode[name] = c.int_arg(0, lo=0, hi=2)

    return handler


def cgatt_read(m, c):
    m.info(f"+CGATT: {m.radio.cgatt()}")


def cgatt_set(m, c):
    radio = m.radio
    if c.int_arg(0, lo=0, hi=1):
        if not radio.attached:
            radio.schedule_attach(m.profile.attach)
    else:
        radio.detach(0, urc=False)


def cclk_read(m, c):
    # "yy/MM/dd,hh:mm:ss±zz", zz in quarter hours (+32 = UTC+8); unset before NITZ (§4)
    if m.radio.clock_set:
        stamp = time.strftime("%y/%m/%d,%H:%M:%S", time.gmtime(time.time() + 8 * 3600)) + "+32"
    else:
        stamp = "70/01/01,00:00:00+00"
    m.info(f'+CCLK: "{stamp}"')


def cfun_read(m, c):
    m.info(f"+CFUN: {m.radio.cfun}")


def cfun_set(m, c):
    fun = c.int_arg(0)
    if fun not in (0, 1, 4):
        raise CmeError(50)
    if c.int_arg(1, default=0, lo=0, hi=1):
        _reboot_after_ok(m)  # AT+CFUN=1,1 reboots (§3.3)
        return
    m.radio.set_cfun(fun)


def reset(m, c):
    _reboot_after_ok(m)  # `OK`, then reboot → `RDY` (§3.3)


def _reboot_after_ok(m):
    asyncio.get_running_loop().call_soon(m.power_on, False)


def cmee_read(m, c):
    m.info(f"+CMEE: {m.cmee}")


def cmee_set(m, c):
    m.cmee = c.int_arg(0, lo=0, hi=2)


def ipr_read(m, c):
    m.info(f"+IPR: {0 if m.dialect.autobaud else 115200}")


def ipr_set(m, c):
    rate = c.int_arg(0, lo=0)
    m.dialect.autobaud = rate == 0  # AT+IPR=0 is autobaud (§2)


def cpowd(m, c):
    m.info("NORMAL POWER DOWN")  # INFERRED text; the module then ignores the UART
    asyncio.get_running_loop().call_soon(m.power_off)
    return NO_FINAL


COMMANDS = {
    "": {EXEC: at},
    "E": {SET: echo},
    "I": {SET: ati},
    "&W": {SET: ok},
    "&F": {SET: ok},
    "+CGMR": {EXEC: cgmr},
    "+VER": {EXEC: ati},
    "+CGSN": {EXEC: cgsn},
    "+ICCID": {EXEC: iccid},
    "+CCID": {EXEC: ccid},
    "+CIMI": {EXEC: cimi},
    "+CSQ": {EXEC: csq},
    "+CPIN": {READ: cpin_read},
    "+CREG": {READ: _reg_read("+CREG"), SET: _reg_set("+CREG")},
    "+CGREG": {READ: _reg_read("+CGREG"), SET: _reg_set("+CGREG")},
    "+CEREG": {READ: _reg_read("+CEREG"), SET: _reg_set("+CEREG")},
    "+CGATT": {READ: cgatt_read, SET: cgatt_set},
    "+CCLK": {READ: cclk_read, SET: ok},
    "+CFUN": {READ: cfun_read, SET: cfun_set},
    "+RESET": {EXEC: reset},
    "+CMEE": {READ: cmee_read, SET: cmee_set},
    "+IPR": {READ: ipr_read, SET: ipr_set},
    "+CPOWD": {SET: cpowd},
}
