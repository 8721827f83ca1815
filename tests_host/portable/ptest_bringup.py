"""Bring-up (lib/aliyun/bringup.py) on the scripted fake modem: the steps in order, what it
keeps for the next bring-up (aliyun.Kept), the recovery remedies it runs and the CONNACK
refusals that turn into a permanent fault."""

import sys

from fakes import Rig
from fakes_session import FakeBoard
from ptest import raises

import aliyun as state
from air724 import Air724
from aliyun import Kept, PermanentError
from aliyun.bringup import LOADED_FOR_BRING_UP, bring_up

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
FIRMWARE = "AirM2M_724UG_V1234_LTE_AT"
IMEI = "862991419835241"
CONFIG = {
    "auth": "direct",
    "product_key": "a1B2c3D4e5F",
    "device_name": "dev-001",
    "device_secret": "s3cr3t-for-the-test",
    "product_secret": "",
    "signmethod": "hmacsha256",
    "tls": True,
    "endpoint": "mqtt.example",
    "region": "cn-shanghai",
    "port": 8883,
    "keepalive_s": 300,
    "apn": "",
}
START = b'AT+SSLMIPSTART="mqtt.example",8883'
MCONNECT = b"AT+MCONNECT=1,300"


def script_module(m, imei=False):
    """Answers of a healthy module up to the MQTT connect (other commands answer OK)."""
    m.on(b"AT+CGMR", b'\r\n+CGMR: "' + FIRMWARE.encode() + b'"\r\n', OK, repeat=True)
    m.on(b"AT+CPIN?", b"\r\n+CPIN: READY\r\n", OK, repeat=True)
    m.on(b"AT+CEREG?", b"\r\n+CEREG: 0,1\r\n", OK, repeat=True)
    m.on(b"AT+CGATT?", b"\r\n+CGATT: 1\r\n", OK, repeat=True)
    m.on(b"AT+CSQ", b"\r\n+CSQ: 20,0\r\n", OK, repeat=True)
    if imei:
        m.on(b"AT+CGSN", b"\r\n" + IMEI.encode() + b"\r\n", OK)


class Run:
    """One bring-up's arguments, recording the states it announces."""

    def __init__(self, modem, device_name="dev-001"):
        self.modem = modem
        self.board = FakeBoard()
        self.config = dict(CONFIG, device_name=device_name)
        self.kept = Kept(device_name, "no-such-secret.json")
        self.states = []
        self.logs = []

    async def __call__(self, remedy=None):
        # The bring-up unloads its modules; the other tests of this process keep theirs.
        saved = [(name, sys.modules.get(name)) for name in LOADED_FOR_BRING_UP]
        try:
            await bring_up(
                self.modem,
                self.board,
                self.config,
                self.kept,
                remedy,
                self.states.append,
                lambda level, message: self.logs.append((level, message)),
            )
        finally:
            for name, module in saved:
                if module is not None:
                    sys.modules[name] = module
                    package, _, attr = name.rpartition(".")
                    setattr(sys.modules[package], attr, module)


async def test_bring_up_walks_the_steps_and_keeps_what_the_next_one_needs():
    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, b"\r\nCONNACK OK\r\n", repeat=True)
        run = Run(rig.obj)
        await run()
        assert run.states == [state.SIM, state.NETWORK, state.AUTH, state.CONNECT]
        assert run.kept.firmware == FIRMWARE and run.kept.signal_dbm == -73
        assert run.kept.refusals == 0 and rig.obj.mqtt.connected
        sent = m.commands
        assert sent.index(b"ATE0") < sent.index(b"AT+CPIN?") < sent.index(START)
        assert sent.index(START) + 1 == sent.index(MCONNECT)  # nothing in between (§7.1)
        assert any(c.startswith(b'AT+MCONFIG="a1B2c3D4e5F.dev-001') for c in sent)
        assert ("info", "module firmware " + FIRMWARE) in run.logs
        # The next bring-up asks for the firmware no more.
        run.states = []
        await run()
        assert m.count(b"AT+CGMR") == 1 and run.states[-1] == state.CONNECT


async def test_an_unknown_device_name_is_the_imei():
    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m, imei=True)
        m.on(START, b"\r\nCONNECT OK\r\n")
        m.on(MCONNECT, b"\r\nCONNACK OK\r\n")
        run = Run(rig.obj, device_name="")
        await run()
        assert run.kept.device_name == IMEI
        assert any(c.startswith(b'AT+MCONFIG="a1B2c3D4e5F.' + IMEI.encode()) for c in m.commands)


async def test_remedies_run_before_the_sync_and_bring_the_pdp_context_back():
    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, b"\r\nCONNACK OK\r\n", repeat=True)
        run = Run(rig.obj)
        run.kept.pdp_lost = True
        await run("bearer")  # a bearer reset does not restore the PDP context
        assert run.kept.pdp_lost
        assert m.commands.index(b"AT+SAPBR=0,1") < m.commands.index(b"AT")
        await run("cfun")
        assert not run.kept.pdp_lost
        assert m.count(b"AT+CFUN=0") == 1 and m.count(b"AT+CFUN=1") == 1
        await run("power")  # the fake board has no PWRKEY: AT+RESET instead
        assert m.count(b"AT+RESET") == 1
        assert ("info", "remedy: power") in run.logs


async def test_refused_connects_clear_the_token_then_become_permanent():
    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, ERROR, repeat=True)
        run = Run(rig.obj)
        from air724.mqtt import MQTTRefusedError

        for refusals in (1, 2):
            run.kept.token = ("id", "token", "host", 1883, 0)
            with raises(MQTTRefusedError):
                await run()
            assert run.kept.refusals == refusals and run.kept.token is None
        with raises(PermanentError, match="refused 3 times"):
            await run()
