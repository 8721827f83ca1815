"""SIM, registration, attach and the default PDP context (reference §3, §4, §5.3).

After `RDY` the SIM becomes ready, then the module registers and attaches; the default bearer
comes up with the attach ("模块开机注册后缺省就有一个激活的PDP承载", §5). Faults take the SIM or
the network away and deactivate the PDP context; the registration URCs follow AT+CREG/CGREG/CEREG.
"""

import asyncio
import random
import time

_PDP_URCS = {
    "space": "+PDP DEACT",
    "colon-space": "+PDP: DEACT",
    "colon": "+PDP:DEACT",
    "cgev": "+CGEV: NW PDN DEACT 1",
}
_NO_SIM_URC = {
    "not-inserted": "NOT INSERTED",
    "sim-removed": "SIM REMOVED",
    "cme10": "NOT INSERTED",
}
_LAC, _CI = "1863", "0183db22"  # tracking area / cell id shown with AT+CREG=2 (ref §4 example)


class Radio:
    """The cellular side of the module."""

    def __init__(self, modem):
        self.m = modem
        self.sim_present = modem.identity.sim
        self.network_up = True
        self.rssi = modem.identity.rssi
        self.reset()

    def reset(self):
        self.sim_ready = False
        self.cfun = 1
        self.reg = 0  # 0 not registered, 1 home, 2 searching (AT+CREG stat)
        self.attached = False
        self.pdp_active = False
        self.ip = None
        self.clock_set = False
        self.iccid_asked = False
        self.urc_mode = {"+CREG": 0, "+CGREG": 0, "+CEREG": 0}
        self._attach_task = None

    # -- timeline -----------------------------------------------------------------------------

    async def boot_sequence(self):
        """After `RDY`: SIM, then registration and attach (timings §10)."""
        dialect, profile = self.m.dialect, self.m.profile
        start = time.monotonic()
        await asyncio.sleep(profile.sim)
        if not self.sim_present:
            if dialect.boot_urcs != "rdy":
                self.m.urc(f"+CPIN: {_NO_SIM_URC[dialect.no_sim]}")
            return
        self.sim_ready = True
        if dialect.boot_urcs != "rdy":
            self.m.urc("+CPIN: READY")
            if dialect.cpin_twice:
                self.m.urc("+CPIN: READY")  # V301831 "连续上报2次CPIN READY" (§1.3)
        self._set_reg(2)
        await asyncio.sleep(max(0.0, profile.attach - (time.monotonic() - start)))
        self._attach()

    def schedule_attach(self, delay):
        """Register and attach after ``delay`` s if SIM, radio and network allow it."""
        if self._attach_task:
            self._attach_task.cancel()

        async def attach_later():
            await asyncio.sleep(delay)
            self._attach()

        self._attach_task = self.m.spawn(attach_later())

    def _attach(self):
        if not (self.sim_ready and self.cfun == 1):
            return
        if not self.network_up:
            self._set_reg(2)
            return
        self._set_reg(1)
        self.attached = True
        self.clock_set = True
        self.activate_pdp()
        if self.m.dialect.boot_urcs == "780x":
            # Air780 boot URCs after registration (§3.2 boot log; not confirmed for Air724)
            self.m.urc("^MODE: 17,17")
            self.m.urc("+E_UTRAN Service")
            self.m.urc("+CGEV: ME PDN ACT 1")
            self.m.urc(f"+NITZ: {time.strftime('%y/%m/%d,%H:%M:%S', time.gmtime())}+32,")

    def activate_pdp(self):
        if self.attached and not self.pdp_active:
            self.pdp_active = True
            octets = (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
            self.ip = "10.{}.{}.{}".format(*octets)

    # -- events -------------------------------------------------------------------------------

    def deactivate_pdp(self, urc=True):
        """The network drops the default bearer: PDP URC (§5.3), bearers and links go down."""
        was_active = self.pdp_active
        self.pdp_active = False
        if urc and was_active:
            self.m.urc(_PDP_URCS[self.m.dialect.pdp_deact])
        self.m.bearer.pdp_lost(urc=urc)
        self.m.mqtt.link_lost()
        self.m.http.link_lost()

    def detach(self, reg, urc=True):
        self.deactivate_pdp(urc=urc)
        self.attached = False
        self._set_reg(reg)
        if self._attach_task:
            self._attach_task.cancel()

    def lose_network(self):
        self.network_up = False
        self.detach(2)

    def restore_network(self):
        self.network_up = True
        if self.sim_ready and self.cfun == 1 and not self.attached:
            self.schedule_attach(self.m.profile.attach)

    def remove_sim(self):
        self.sim_present = False
        was_ready = self.sim_ready
        self.sim_ready = False
        if was_ready:
            self.m.urc(f"+CPIN: {_NO_SIM_URC[self.m.dialect.no_sim]}")
        self.detach(0)

    def insert_sim(self):
        self.sim_present = True
        if self.sim_ready or not self.m.ready:
            return
        self.sim_ready = True
        self.m.urc("+CPIN: READY")
        if self.cfun == 1:
            self._set_reg(2)
            self.schedule_attach(self.m.profile.attach)

    def set_cfun(self, fun):
        """AT+CFUN=0/4 switch the radio off (no PDP URC: the host asked); =1 back on."""
        self.cfun = fun
        if fun in (0, 4):
            self.detach(0, urc=False)
        elif fun == 1 and self.sim_ready and not self.attached:
            self._set_reg(2)
            self.schedule_attach(self.m.profile.cfun)

    # -- registration reports -----------------------------------------------------------------

    def _set_reg(self, stat):
        if stat == self.reg:
            return
        self.reg = stat
        for name, mode in self.urc_mode.items():
            if mode:
                self.m.urc(self.reg_text(name, urc=True))

    def reg_text(self, name, urc=False):
        """``+CREG: <n>,<stat>`` (read) or ``+CREG: <stat>`` (URC); location with n=2 (§4)."""
        mode = self.urc_mode[name]
        fields = [str(self.reg)] if urc else [str(mode), str(self.reg)]
        if mode == 2 and self.reg in (1, 5):
            fields += [f'"{_LAC}"', f'"{_CI}"', "7"]
        return f"{name}: {','.join(fields)}"

    def csq(self):
        """(rssi, ber); 99,99 without network or radio (§4)."""
        return (self.rssi, 99) if self.network_up and self.cfun == 1 else (99, 99)

    def cgatt(self):
        if self.m.dialect.cgatt_follows_pdp:
            return int(self.attached and self.pdp_active)  # V1066 (§1.3)
        return int(self.attached)

    def state(self):
        return {
            "sim": "ready" if self.sim_ready else ("absent" if not self.sim_present else "init"),
            "cfun": self.cfun,
            "reg": self.reg,
            "attached": self.attached,
            "pdp": self.pdp_active,
            "network": self.network_up,
        }
