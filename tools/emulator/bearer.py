"""Data bearers: AT+SAPBR (HTTP) and the TCPIP context AT+CSTT/CIICR/CIFSR (reference §5)."""

import asyncio

from .atparse import EXEC, READ, SET
from .results import NO_FINAL, AtError, CmeError

_TAGS = ("CONTYPE", "APN", "USER", "PWD", "PHONENUM", "RATE")
_CLOSED = 3  # SAPBR status: 0 connecting, 1 connected, 2 closing, 3 closed (§5.1)


class BearerService:
    def __init__(self, modem):
        self.m = modem
        self.reset()

    def reset(self):
        self.sapbr = {cid: {"status": _CLOSED, "ip": None, "params": {}} for cid in (1, 2, 3)}
        self.tcpip = "IP INITIAL"  # CIPSTATUS state names (§5.2)

    def sapbr_open(self, cid):
        return self.sapbr.get(cid, {}).get("status") == 1

    def mqtt_ready(self):
        """Can the MQTT client open a link? The default PDP must be up; with the 724-era
        ``explicit_pdp`` dialect, AT+CIICR must have run too (§5, §12.9)."""
        if not self.m.radio.pdp_active:
            return False
        if self.m.dialect.explicit_pdp:
            return self.tcpip in ("IP GPRSACT", "IP STATUS")
        return True

    def pdp_lost(self, urc=True):
        for cid, bearer in self.sapbr.items():
            if bearer["status"] == 1:
                bearer.update(status=_CLOSED, ip=None)
                if urc:
                    self.m.urc(f"+SAPBR {cid}: DEACT")  # §5.1 URC
        if self.tcpip in ("IP GPRSACT", "IP STATUS", "IP CONFIG"):
            self.tcpip = "PDP DEACT"

    def state(self):
        return {
            "sapbr": {cid: b["status"] for cid, b in self.sapbr.items()},
            "tcpip": self.tcpip,
        }


def _format_ip(m, ip):
    if m.dialect.sapbr_ip == "quoted":
        return f'"{ip}"'
    return ".".join(f"{int(part):03d}" for part in ip.split("."))  # `010.169.179.213` (§5.1)


async def sapbr(m, c):
    cmd_type = c.int_arg(0, lo=0, hi=4)
    cid = c.int_arg(1, lo=1, hi=3)
    bearer = m.bearer.sapbr[cid]
    if cmd_type == 3:
        tag = (c.arg(2) or "").upper()
        value = c.arg(3, "")
        if tag not in _TAGS or len(value) > 50:  # APN/USER/PWD ≤ 50 chars (§5.1)
            raise AtError
        bearer["params"][tag] = value
    elif cmd_type == 1:
        if bearer["status"] == 1:
            raise CmeError(3)  # already open (§5.1, §9)
        if not m.radio.attached:
            raise AtError  # INFERRED: no bearer without attach
        bearer["status"] = 0
        await asyncio.sleep(m.profile.bearer)
        if not m.radio.attached:
            bearer["status"] = _CLOSED
            raise AtError
        bearer.update(status=1, ip=m.radio.ip or "10.0.0.2")
    elif cmd_type == 2:
        ip = bearer["ip"] if bearer["status"] == 1 else "0.0.0.0"
        m.info(f"+SAPBR: {cid},{bearer['status']},{_format_ip(m, ip)}")
    elif cmd_type == 0:
        if bearer["status"] != 1:
            raise CmeError(3)  # not active (§5.1, 780x log)
        bearer.update(status=_CLOSED, ip=None)
    else:
        for tag in _TAGS[:4]:
            value = bearer["params"].get(tag, "GPRS" if tag == "CONTYPE" else "")
            m.info(f"+SAPBR: {tag},{value}")


def cstt(m, c):
    if m.bearer.tcpip != "IP INITIAL":
        raise CmeError(3)  # only IP INITIAL → IP START (§5.2)
    apn, user, pwd = c.arg(0, ""), c.arg(1, ""), c.arg(2, "")
    if len(apn) > 128 or len(user) > 32 or len(pwd) > 32:
        raise AtError
    m.bearer.tcpip = "IP START"


async def ciicr(m, c):
    if m.bearer.tcpip != "IP START":
        raise CmeError(3)
    if not m.radio.attached:
        raise AtError
    m.bearer.tcpip = "IP CONFIG"
    await asyncio.sleep(m.profile.bearer)
    m.radio.activate_pdp()
    if not m.radio.pdp_active:
        m.bearer.tcpip = "IP START"
        raise AtError
    m.bearer.tcpip = "IP GPRSACT"


def cifsr(m, c):
    state = m.bearer.tcpip
    explicit = m.dialect.explicit_pdp
    if not m.radio.pdp_active or (explicit and state not in ("IP GPRSACT", "IP STATUS")):
        raise AtError
    if state == "IP GPRSACT":
        m.bearer.tcpip = "IP STATUS"
    m.info(m.radio.ip)  # bare IP and no OK (§5.2, Air724 log)
    return NO_FINAL


def cipstatus(m, c):
    m.info("OK")  # `OK` first, then the state line (§5.2)
    m.info(f"STATE: {m.bearer.tcpip}")
    return NO_FINAL


def cipshut(m, c):
    m.mqtt.close_quietly()
    m.bearer.tcpip = "IP INITIAL"
    return "SHUT OK"  # §5.2


def cgact_read(m, c):
    m.info(f"+CGACT: 1,{int(m.radio.pdp_active)}")


def cgact_set(m, c):
    state = c.int_arg(0, lo=0, hi=1)
    if state:
        m.radio.activate_pdp()  # recovery after a PDP deactivation (§5.3)
        if not m.radio.pdp_active:
            raise AtError
    else:
        m.radio.deactivate_pdp(urc=False)


def cgdcont_read(m, c):
    m.info(f'+CGDCONT: 1,"IP","CMNET","{m.radio.ip or "0.0.0.0"}",0,0')


def cgdcont_set(m, c):
    c.int_arg(0, lo=1, hi=15)


COMMANDS = {
    "+SAPBR": {SET: sapbr},
    "+CSTT": {EXEC: cstt, SET: cstt},
    "+CIICR": {EXEC: ciicr},
    "+CIFSR": {EXEC: cifsr},
    "+CIPSTATUS": {EXEC: cipstatus},
    "+CIPSHUT": {EXEC: cipshut},
    "+CGACT": {READ: cgact_read, SET: cgact_set},
    "+CGDCONT": {READ: cgdcont_read, SET: cgdcont_set},
}
