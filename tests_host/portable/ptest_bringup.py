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


async def test_sim_network_and_attach_waits_end_in_the_typed_timeout():
    # Issue "never stranded", defect 4: TimeoutError does not exist on MicroPython (a
    # NameError there); each of the three waits ends in ATTimeoutError naming what it waited for.
    from aliyun.checks import network as _network
    from atmodem.errors import ATTimeoutError

    for what, answers in (
        ("SIM not ready", {b"AT+CPIN?": b"\r\n+CME ERROR: 14\r\n"}),  # busy all along
        (
            "not registered",
            {b"AT+CEREG?": b"\r\n+CEREG: 0,2\r\n" + OK, b"AT+CREG?": b"\r\n+CREG: 0,2\r\n" + OK},
        ),
        ("not attached", {b"AT+CGATT?": b"\r\n+CGATT: 0\r\n" + OK}),
    ):
        async with Rig(Air724, default=OK) as rig:
            for cmd, answer in answers.items():
                rig.modem.on(cmd, answer, repeat=True)
            script_module(rig.modem)
            run = Run(rig.obj)
            with raises(ATTimeoutError) as err:
                await _network(
                    rig.obj.module,
                    run.board,
                    run.kept,
                    run.states.append,
                    lambda level, message, logs=run.logs: logs.append((level, message)),
                    (30, 30, 30),
                )
            assert what in str(err.value), (what, err.value)
            if what == "SIM not ready":  # SIM busy is a normal state at boot: info, once
                assert run.logs == [("info", "SIM busy")], run.logs


def healthy(m):
    script_module(m)
    m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
    m.on(MCONNECT, b"\r\nCONNACK OK\r\n", repeat=True)


async def test_the_first_bring_up_closes_a_session_the_module_kept_and_sets_push_mode_first():
    # An MCU reset under a live module session; cache mode as the boot default; CMEE=0.
    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        healthy(m)
        m.on(b"AT+MDISCONNECT", ERROR)  # nothing to disconnect, as a bare ERROR (CMEE=0)
        run = Run(rig.obj)
        await run()
        sent = m.commands
        assert sent.index(b"ATE0") < sent.index(b"AT+CMEE=1") < sent.index(b"AT+CPIN?")
        assert sent.index(b"AT+MDISCONNECT") < sent.index(b"AT+MIPCLOSE") < sent.index(START)
        assert sent.index(b"AT+MQTTMSGSET=0") < sent.index(START)
        assert not [entry for entry in run.logs if entry[0] != "info"], run.logs
        await run()  # later bring-ups of this boot: no takeover
        assert m.count(b"AT+MDISCONNECT") == 1


async def test_closed_during_mconnect_is_the_link_not_a_refusal():
    # Defect 5: a flaky cell (CLOSED after MCONNECT's OK) never becomes a permanent fault.
    from air724.mqtt import LinkClosedError

    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, OK + b"\r\nCLOSED\r\n", repeat=True)
        run = Run(rig.obj)
        for _ in range(5):
            run.kept.connects.clear()  # the spacing has its own test
            with raises(LinkClosedError):
                await run()
        assert run.kept.refusals == 0


async def test_refusals_after_an_accepted_connect_are_not_bad_credentials():
    # The strict cloud refuses a 6th CONNECT within a minute (CONNACK 3, seen as ERROR): with
    # credentials accepted earlier in this boot that is the cloud, never a permanent fault.
    from air724.mqtt import MQTTRefusedError

    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, b"\r\nCONNACK OK\r\n")  # once; then every CONNECT is refused
        m.on(MCONNECT, ERROR, repeat=True)
        run = Run(rig.obj)
        await run()
        assert run.kept.passed
        for _ in range(5):
            run.kept.connects.clear()
            with raises(MQTTRefusedError):
                await run()
        assert run.kept.refusals == 0


async def test_a_connect_over_the_minutes_budget_waits_for_its_slot():
    from time import ticks_add, ticks_diff, ticks_ms

    async with Rig(Air724, default=OK) as rig:
        healthy(rig.modem)
        run = Run(rig.obj)
        now = ticks_ms()
        for _ in range(5):  # five CONNECTs just under a minute ago
            run.kept.connects.append(ticks_add(now, -60000 + 200))
        await run()
        waited = [msg for level, msg in run.logs if msg.startswith("next CONNECT in")]
        assert waited, run.logs
        # It went out only once the oldest of the five was a minute (and the margin) old.
        assert ticks_diff(run.kept.connects[-1], now) >= 1000


async def test_a_connect_whose_link_never_came_up_costs_no_slot_of_the_minute():
    # Chaos suite (seed 4242, faults 101-102): three CONNECT FAILs (the TCP/TLS link, no CONNECT
    # packet) counted against the 5 a minute; the module reboot after them waited 28.6 s for a
    # slot the platform had never used, over its recovery bound.
    from air724.mqtt import MQTTError

    async with Rig(Air724, default=OK) as rig:
        m = rig.modem
        script_module(m)
        for _ in range(5):
            m.on(START, OK, b"\r\nSTATE: IP INITIAL\r\n\r\nCONNECT FAIL\r\n")
        m.on(START, b"\r\nCONNECT OK\r\n", repeat=True)
        m.on(MCONNECT, b"\r\nCONNACK OK\r\n", repeat=True)
        run = Run(rig.obj)
        for _ in range(5):
            with raises(MQTTError):
                await run()
        assert run.kept.connects == []  # none reached the server
        await run()  # the sixth attempt: no wait for a slot
        assert not [msg for _, msg in run.logs if msg.startswith("next CONNECT in")], run.logs
        assert len(run.kept.connects) == 1 and m.count(MCONNECT) == 1


def test_connects_are_spaced_at_most_five_in_any_minute():
    from aliyun.bringup import connect_wait_ms

    times = []
    for t in (0, 1000, 2000, 3000, 4000):
        assert connect_wait_ms(times, t) == 0
        times.append(t)
    assert connect_wait_ms(times, 5000) == 56000  # the 6th only 60 s (and a margin) after the 1st
    assert connect_wait_ms(times, 70000) == 0


def test_connects_from_days_ago_never_delay_a_connect():
    # ticks wrap (2**30 ms on a board): five CONNECTs 6.2 days old read as five far ahead. A
    # device online for a week must not then wait days for its next CONNECT.
    from time import ticks_add, ticks_ms

    from aliyun.bringup import connect_wait_ms

    now = ticks_ms()
    times = [ticks_add(now, 2**29 - 1000 + i) for i in range(5)]
    assert connect_wait_ms(times, now) == 0
