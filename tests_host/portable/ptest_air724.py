"""Air724 driver (lib/air724) against the scripted fake modem, on CPython and MicroPython.

The seed how-to's own transcript (HTTPS device auth, then MQTT) is replayed byte for byte:
its 112-byte auth body, its 128-byte +HTTPREAD reply, its MCONFIG/SSLMIPSTART/MCONNECT/MSUB/
MPUB lines and the console's "Hello World" downlink.
"""

import asyncio
import gc

from fakes import Delay, FakeStream, Read, Rig, Wait, wait_ms
from ptest import raises

from air724 import Air724, check_publish
from air724 import events as ev
from air724.http import HTTPError
from air724.module import FirmwareVersion, parse_cclk
from air724.mqtt import LinkClosedError, MQTTError, MQTTRefusedError
from air724.text import escape, topic_arg
from atmodem import ArgumentError, ATTimeoutError, CMEError

CHUNKS = (0, 1, (1, 9))
OK = b"\r\nOK\r\n"

# The seed's example device (BRIEF §6: DeviceSecret with I/l as corrected).
PK, DN = b"b0FMK1Ga5cp", b"862991419835241"
AUTH_URL = "https://iot-auth.cn-shanghai.aliyuncs.com/auth/devicename"
AUTH_BODY = (
    b"productKey=b0FMK1Ga5cp&sign=1eb96463ad2345b6c261e2f7cc78a7a0"
    b"&clientId=862991419835241&deviceName=862991419835241"
)
AUTH_REPLY = (
    b'{"code":200,"data":{"iotId":"jlvFGfQ11FIGOEJ4RoZU001013ba00",'
    b'"iotToken":"613d9cb0946741df98db1c50255a9dd0"},"message":"success"}'
)
IOT_ID = b"jlvFGfQ11FIGOEJ4RoZU001013ba00"
IOT_TOKEN = b"613d9cb0946741df98db1c50255a9dd0"
FORM = "Content-Type: application/x-www-form-urlencoded"
UPDATE = "/b0FMK1Ga5cp/862991419835241/user/update"
GET_TOPIC = "/b0FMK1Ga5cp/862991419835241/user/get"
MQTT_HOST = "b0FMK1Ga5cp.iot-as-mqtt.cn-shanghai.aliyuncs.com"
NASTY = b'\r\nOK\r\n"a","b",\x00\x01\xfe\xff+MSUB: "x",1 byte,y\r\nCLOSED\r\n' + bytes(range(256))


async def repeat(call, n):
    """``[await call() for _ in range(n)]`` (MicroPython has no await in comprehensions)."""
    out = []
    for _ in range(n):
        out.append(await call())
    return out


def air(**kw):
    def make(stream):
        return Air724(stream, **kw)

    return make


def script_http_auth(m):
    m.on(b"AT+HTTPINIT", OK)
    m.on(b'AT+HTTPPARA="CID",1', OK)
    m.on(b'AT+HTTPPARA="URL","' + AUTH_URL.encode() + b'"', OK)
    m.on(b'AT+HTTPPARA="USER_DEFINED","' + FORM.encode() + b'"', OK)
    m.on(b"AT+HTTPSSL=1", OK)
    m.on(b"AT+HTTPDATA=112,20000", b"\r\nDOWNLOAD\r\n", Read(112), OK)
    m.on(b"AT+HTTPACTION=1", OK, Delay(2), b"\r\n+HTTPACTION: 1,200,128\r\n")
    m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD: 128\r\n", AUTH_REPLY, OK)
    m.on(b"AT+HTTPTERM", OK)


async def test_seed_transcript_http_auth_then_mqtt():
    for chunk, echo in ((0, False), (1, True), ((1, 9), False), ((1, 9), True)):
        async with Rig(air(), chunk=chunk, echo=echo) as rig:
            m, modem = rig.modem, rig.obj
            script_http_auth(m)
            status, body = await modem.http.post(AUTH_URL, AUTH_BODY, (FORM,), 5000)
            assert (status, body) == (200, AUTH_REPLY)
            assert b'"iotId":"' + IOT_ID + b'"' in body
            assert b'"iotToken":"' + IOT_TOKEN + b'"' in body
            assert m.payloads == [AUTH_BODY]

            m.on(b'AT+MCONFIG="%s","%s","%s"' % (DN, IOT_ID, IOT_TOKEN), OK)
            cmd = b'AT+SSLMIPSTART="%s",1883' % MQTT_HOST.encode()
            m.on(cmd, OK, Delay(2), b"\r\nCONNECT OK\r\n")
            m.on(b"AT+MCONNECT=1,300", OK, b"\r\nCONNACK OK\r\n")
            m.on(b'AT+MSUB="%s",0' % GET_TOPIC.encode(), OK, b"\r\nSUBACK\r\n")
            m.on(b"AT+MQTTMSGSET=0", OK)
            m.on(b'AT+MPUB="%s",0,0,"HelloWorld"' % UPDATE.encode(), OK)
            m.on(b'AT+MPUB="%s",1,0,"HelloWorld"' % UPDATE.encode(), OK, b"\r\nPUBACK\r\n")
            mq = modem.mqtt
            await mq.configure(DN.decode(), IOT_ID.decode(), IOT_TOKEN.decode())
            assert await mq.connect(MQTT_HOST, 1883, tls=True, clean=True, keepalive_s=300)
            assert mq.connected
            await mq.subscribe(GET_TOPIC, 0)
            await mq.set_push()
            await mq.publish(UPDATE, "HelloWorld", qos=0)
            await mq.publish(UPDATE, b"HelloWorld", qos=1)
            m.inject(b'\r\n+MSUB: "%s",11 byte,Hello World\r\n' % GET_TOPIC.encode())
            assert await mq.message(1000) == (GET_TOPIC, b"Hello World")

            sent = [
                b"AT+HTTPINIT\r",
                b'AT+HTTPPARA="CID",1\r',
                b'AT+HTTPPARA="URL","https://iot-auth.cn-shanghai.aliyuncs.com/auth/devicename"\r',
                b'AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"\r',
                b"AT+HTTPSSL=1\r",
                b"AT+HTTPDATA=112,20000\r",
                AUTH_BODY,
                b"AT+HTTPACTION=1\r",
                b"AT+HTTPREAD\r",
                b"AT+HTTPTERM\r",
                b'AT+MCONFIG="862991419835241","jlvFGfQ11FIGOEJ4RoZU001013ba00",'
                b'"613d9cb0946741df98db1c50255a9dd0"\r',
                b'AT+SSLMIPSTART="b0FMK1Ga5cp.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883\r',
                b"AT+MCONNECT=1,300\r",
                b'AT+MSUB="/b0FMK1Ga5cp/862991419835241/user/get",0\r',
                b"AT+MQTTMSGSET=0\r",
                b'AT+MPUB="/b0FMK1Ga5cp/862991419835241/user/update",0,0,"HelloWorld"\r',
                b'AT+MPUB="/b0FMK1Ga5cp/862991419835241/user/update",1,0,"HelloWorld"\r',
            ]
            assert bytes(rig.stream.written) == b"".join(sent)


async def test_autobaud_sync_then_resync_before_ate0():
    async with Rig(air()) as rig:
        m, modem = rig.modem, rig.obj
        m.inject(b"\x00\xff\xff\x00")  # boot noise
        m.on(b"AT")  # training: no answer twice
        m.on(b"AT")
        m.on(b"AT", b"\r\nOK\r\n\r\nRDY\r\n")
        m.on(b"AT+CSQ", b"\r\n+CSQ: 99,99\r\n", OK)
        m.on(b"ATE0", OK)
        assert await modem.module.sync(2000, try_ms=20) == 3
        await modem.module.echo_off()
        assert m.commands == [b"AT", b"AT", b"AT", b"AT+CSQ", b"ATE0"]
        assert await modem.events.get(500) == (ev.REBOOT, b"RDY")


async def test_sync_gives_up_with_a_timeout():
    async with Rig(air(), default=None) as rig:
        with raises(ATTimeoutError):
            await rig.obj.module.sync(100, try_ms=25)
        assert rig.modem.count(b"AT") == 4


async def test_cgmr_formats_and_version_order():
    async with Rig(air()) as rig:
        m, mod = rig.modem, rig.obj.module
        m.on(b"AT+CGMR", b'\r\n+CGMR: "AirM2M_Air724UG_V409_LTE_AT"\r\n', OK)
        m.on(b"AT+CGMR", b"\r\nAirM2M_Air72xUy_V409_LTE_AT\r\n", OK)  # the seed's bare line
        m.on(b"AT+CGMR", b"\r\nRevision: AirM2M_780EP_V1007_LTE_AT\r\n", OK)
        m.on(b"AT+CGMR", b'\r\n+CGMR: "SomethingElse"\r\n', OK)
        v = await mod.version()
        assert (v.model, v.number, v.raw) == ("Air724UG", 409, "AirM2M_Air724UG_V409_LTE_AT")
        v = await mod.version()
        assert (v.model, v.number) == ("Air72xUy", 409)
        v = await mod.version()
        assert (v.model, v.number) == ("780EP", 1007)
        v = await mod.version()
        assert (v.model, v.number, v.raw, v.old) == ("", -1, "SomethingElse", True)
    # Numbers grow across baselines (V1.2, then V3xxxxx, V4xxxxx): only V1.2 before V907 is old.
    names = ("V409", "V584", "V906", "V907", "V1628", "V301830", "V401851")
    vs = [FirmwareVersion("AirM2M_Air724UG_%s_LTE_AT" % n) for n in names]
    assert [v.number for v in vs] == [409, 584, 906, 907, 1628, 301830, 401851]
    assert [v.old for v in vs] == [True, True, True, False, False, False, False]


async def test_identity_signal_sim_network_clock():
    async with Rig(air(), chunk=(1, 9)) as rig:
        m, mod = rig.modem, rig.obj.module
        m.on(b"AT+CGSN", b"\r\n862991527986589\r\n", OK)
        m.on(b"AT+CGSN", b'\r\n+CGSN: "862991527986589"\r\n', OK)
        m.on(b"AT+ICCID", b"\r\nERROR\r\n")  # first query after boot (before V301833)
        m.on(b"AT+ICCID", b"\r\n+ICCID: 89860117831003134201\r\n", OK)
        for csq in (b"29,99", b"99,99", b"0,99", b"31,0"):
            m.on(b"AT+CSQ", b"\r\n+CSQ: " + csq + b"\r\n", OK)
        assert await mod.imei() == "862991527986589"
        assert await mod.imei() == "862991527986589"
        assert await mod.iccid() == "89860117831003134201"
        assert await repeat(mod.signal_dbm, 4) == [-55, None, -113, -51]

        for answer in (b"+CPIN: READY", b"+CPIN: NOT INSERTED", b"+CPIN: SIM REMOVED"):
            m.on(b"AT+CPIN?", b"\r\n" + answer + b"\r\n", OK)
        m.on(b"AT+CPIN?", b"\r\n+CME ERROR: 10\r\n")
        m.on(b"AT+CPIN?", b"\r\n+CME ERROR: 14\r\n")  # SIM busy: starting, a normal state
        m.on(b"AT+CPIN?", b"\r\n+CME ERROR: 13\r\n")
        states = await repeat(mod.sim_state, 5)
        assert states == ["READY", "NOT INSERTED", "SIM REMOVED", "NOT INSERTED", "BUSY"]
        with raises(CMEError):
            await mod.sim_state()

        m.on(b"AT+CEREG?", b"\r\n+CEREG: 0,1\r\n", OK)
        m.on(b"AT+CEREG?", b"\r\n+CEREG: 0,2\r\n", OK)
        m.on(b"AT+CREG?", b'\r\n+CREG: 2,5,"1863","0183db22",7\r\n', OK)
        m.on(b"AT+CEREG?", b"\r\nERROR\r\n")
        m.on(b"AT+CREG?", b"\r\n+CREG: 0,3\r\n", OK)
        assert await repeat(mod.registration, 3) == [1, 5, 3]

        m.on(b"AT+CGATT?", b"\r\n+CGATT: 1\r\n", OK)
        m.on(b"AT+CGATT?", b"\r\n+CGATT: 0\r\n", OK)
        assert await mod.attached() is True
        assert await mod.attached() is False

        m.on(b"AT+CCLK?", b'\r\n+CCLK: "18/08/01,12:12:58+32"\r\n', OK)
        assert await mod.clock() == 1533096778  # 2018-08-01 04:12:58 UTC
    assert parse_cclk(b'"24/02/29,23:59:59-08"') == 1709258399  # 2024-03-01 01:59:59 UTC
    assert parse_cclk(b'"70/01/01,00:00:00+00"') == 3155760000  # yy is 20yy: 2070


async def test_bearer_open_query_close():
    async with Rig(air()) as rig:
        m, br = rig.modem, rig.obj.bearer
        m.on(b'AT+SAPBR=3,1,"CONTYPE","GPRS"', OK)
        m.on(b'AT+SAPBR=3,1,"APN","CMIOT"', OK)
        m.on(b"AT+SAPBR=1,1", OK)
        m.on(b"AT+SAPBR=1,1", b"\r\n+CME ERROR: 3\r\n")  # already open: fine
        m.on(b"AT+SAPBR=1,1", b"\r\n+CME ERROR: 50\r\n")
        m.on(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,1,"10.159.1.145"\r\n', OK)
        m.on(b"AT+SAPBR=2,1", b"\r\n+SAPBR: 1,1,010.169.179.213\r\n", OK)
        m.on(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,3,"0.0.0.0"\r\n', OK)
        m.on(b"AT+SAPBR=0,1", OK)
        m.on(b"AT+SAPBR=0,1", b"\r\n+CME ERROR: 3\r\n")  # not active: fine
        await br.configure("CMIOT")
        assert await br.open() is True
        assert await br.open() is False
        with raises(CMEError):
            await br.open()
        assert await br.query() == (1, "10.159.1.145")
        assert await br.query() == (1, "10.169.179.213")
        assert await br.query() == (3, "0.0.0.0")
        await br.close()
        await br.close()
        with raises(ArgumentError):
            await br.configure('x","y')
        assert m.commands[-1] == b"AT+SAPBR=0,1"


async def test_bearer_ensure_opens_only_when_needed():
    async with Rig(air()) as rig:
        m, br = rig.modem, rig.obj.bearer
        m.on(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,1,"10.0.0.7"\r\n', OK)
        assert await br.ensure() == "10.0.0.7"
        m.on(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,3,"0.0.0.0"\r\n', OK)
        m.on(b'AT+SAPBR=3,1,"CONTYPE","GPRS"', OK)
        m.on(b'AT+SAPBR=3,1,"APN",""', OK)
        m.on(b"AT+SAPBR=1,1", OK)
        m.on(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,1,"10.0.0.8"\r\n', OK)
        assert await br.ensure() == "10.0.0.8"
        assert m.count(b"AT+SAPBR=1,1") == 1


async def test_http_init_recovery_get_and_chunked_read():
    body = NASTY * 10  # 2.8 KB: read in two chunks
    async with Rig(air(data_max=4096), chunk=(1, 40)) as rig:
        m, http = rig.modem, rig.obj.http
        m.on(b"AT+HTTPINIT", b"\r\n+CME ERROR: 3\r\n")  # a session left open
        m.on(b"AT+HTTPTERM", OK)
        m.on(b"AT+HTTPINIT", OK)
        m.on(b'AT+HTTPPARA="CID",1', OK)
        m.on(b'AT+HTTPPARA="URL","http://example.com/x"', OK)
        m.on(b"AT+HTTPACTION=0", OK, b"\r\n+HTTPACTION: 0,200,%d\r\n" % len(body))
        m.on(b"AT+HTTPREAD=0,2048", b"\r\n+HTTPREAD: 2048\r\n", body[:2048], OK)
        n = len(body) - 2048
        m.on(b"AT+HTTPREAD=2048,%d" % n, b"\r\n+HTTPREAD: %d\r\n" % n, body[2048:], OK)
        m.on(b"AT+HTTPTERM", OK)
        assert await http.get("http://example.com/x") == (200, body)
        assert m.commands == [
            b"AT+HTTPINIT",
            b"AT+HTTPTERM",
            b"AT+HTTPINIT",
            b'AT+HTTPPARA="CID",1',
            b'AT+HTTPPARA="URL","http://example.com/x"',
            b"AT+HTTPACTION=0",
            b"AT+HTTPREAD=0,2048",
            b"AT+HTTPREAD=2048,%d" % n,
            b"AT+HTTPTERM",
        ]


def script_http_until_action(m, action):
    m.on(b"AT+HTTPINIT", OK)
    m.on(b'AT+HTTPPARA="CID",1', OK)
    m.on(b'AT+HTTPPARA="URL","https://h/p"', OK)
    m.on(b"AT+HTTPSSL=1", OK)
    m.on(b"AT+HTTPDATA=3,20000", b"\r\nDOWNLOAD\r\n", Read(3), OK)
    m.on(b"AT+HTTPACTION=1", *action)
    m.on(b"AT+HTTPTERM", OK)


async def test_http_failures_are_typed_and_always_terminate():
    async with Rig(air()) as rig:
        m, http = rig.modem, rig.obj.http
        # Module code 601 (bearer lost, +SAPBR 1: DEACT), printed twice like the manual.
        script_http_until_action(
            m, (OK, b"\r\n+SAPBR 1: DEACT\r\n\r\n+HTTPACTION: 1,601,0\r\n+HTTPACTION: 1,601,0\r\n")
        )
        with raises(HTTPError) as err:
            await http.post("https://h/p", b"a=1")
        assert err.value.status == 601
        assert m.commands[-1] == b"AT+HTTPTERM"
        assert await rig.obj.events.get(500) == (ev.BEARER_DEACT, b"+SAPBR 1: DEACT")
        # +CME ERROR then the URC (§6.1): the error is raised, the late URC ignored.
        script_http_until_action(m, (b"\r\n+CME ERROR: 3\r\n\r\n+HTTPACTION: 1,603,0\r\n",))
        with raises(CMEError):
            await http.post("https://h/p", "a=1")
        assert m.commands[-1] == b"AT+HTTPTERM"
        # No URC at all: a timeout, and still HTTPTERM.
        script_http_until_action(m, (OK,))
        with raises(ATTimeoutError):
            await http.post("https://h/p", b"a=1", timeout_ms=50)
        assert m.commands[-1] == b"AT+HTTPTERM"
        assert m.count(b"AT+HTTPTERM") == 3
        # A header or URL that could end the command line is refused before the wire.
        n = len(rig.stream.written)
        with raises(ArgumentError):
            await http.post("https://h/p", b"x", ('X: a"\r\nAT+RESET\r',))
        with raises(ArgumentError):
            await http.get('https://h/p"\r\nAT+RESET')
        # Issue "never stranded", defect 9: the module decodes \HH in USER_DEFINED headers
        # (\0D\0A: CR LF, a header injected; \22: a quote), so a backslash is refused.
        for header in ("X: a\\0D\\0AHost: evil", "X: \\22", b"X: \\5C"):
            with raises(ArgumentError):
                await http.post("https://h/p", b"x", (header,))
        assert len(rig.stream.written) == n


async def test_mqtt_connect_outcomes():
    for tls in (True, False):
        async with Rig(air()) as rig:
            m, mq = rig.modem, rig.obj.mqtt
            start = b'AT+SSLMIPSTART="h",8883' if tls else b'AT+MIPSTART="h",8883'
            m.on(start, OK, b"\r\nALREADY CONNECT\r\n")
            m.on(b"AT+MCONNECT=0,120", OK, b"\r\nCONNACK OK\r\n")
            assert await mq.connect("h", 8883, tls=tls, clean=False, keepalive_s=120) is False
            m.on(start, OK, b"\r\nSTATE: IP INITIAL\r\n\r\nCONNECT FAIL\r\n")
            with raises(MQTTError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert err.value.line == b"CONNECT FAIL"
            assert not isinstance(err.value, LinkClosedError)
            # The link is up, MCONNECT is refused (bad credentials: the broker closes).
            m.on(start, OK, b"\r\nCONNECT OK\r\n")
            m.on(b"AT+MCONNECT=1,300", b"\r\n+CME ERROR: 767\r\n")
            with raises(MQTTRefusedError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert err.value.code == 767
            m.on(start, OK, b"\r\nCONNECT OK\r\n")
            m.on(b"AT+MCONNECT=1,300", OK, b"\r\nERROR\r\n")  # refused: ERROR after OK (§7.2)
            with raises(MQTTRefusedError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert err.value.code == -1
            m.on(start, OK, b"\r\nCONNECT OK\r\n")
            # CLOSED during MCONNECT: the TCP/TLS link (a flaky cell), not a refusal.
            m.on(b"AT+MCONNECT=1,300", OK, b"\r\nCLOSED\r\n")
            with raises(LinkClosedError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert err.value.line == b"CLOSED" and not isinstance(err.value, MQTTRefusedError)
            assert not mq.connected
            m.on(start, OK, b"\r\nCONNECT OK\r\n")
            m.on(b"AT+MCONNECT=1,300", OK, b"\r\n+PDP: DEACT\r\n")
            with raises(LinkClosedError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert not isinstance(err.value, MQTTRefusedError)
            # CLOSED before the link is up: the link, not a refusal.
            m.on(start, OK, b"\r\nCLOSED\r\n")
            with raises(LinkClosedError) as err:
                await mq.connect("h", 8883, tls=tls)
            assert not isinstance(err.value, MQTTRefusedError)
            assert m.count(b"AT+MCONNECT=1,300") == 4  # none after CONNECT FAIL or CLOSED
            with raises(ArgumentError):
                await mq.connect('h"\r\nAT+RESET', 1883)
            with raises(ArgumentError):
                await mq.connect("h", 1883, keepalive_s=0)


async def test_mconnect_follows_connect_ok_with_nothing_in_between():
    async with Rig(air()) as rig:
        m, modem = rig.modem, rig.obj
        hold = asyncio.Event()
        m.on(b'AT+SSLMIPSTART="h",1883', OK, Wait(hold), b"\r\nCONNECT OK\r\n")
        m.on(b"AT+MCONNECT=1,300", OK, b"\r\nCONNACK OK\r\n")
        m.on(b"AT+CSQ", b"\r\n+CSQ: 20,99\r\n", OK)
        connect = asyncio.create_task(modem.mqtt.connect("h", 1883))
        await m.wait_command(b'AT+SSLMIPSTART="h",1883')
        poll = asyncio.create_task(modem.module.signal_dbm())  # another task wants the channel
        await asyncio.sleep(0)
        hold.set()
        assert await connect is True
        assert await poll == -73  # rssi 20
        assert m.commands == [b'AT+SSLMIPSTART="h",1883', b"AT+MCONNECT=1,300", b"AT+CSQ"]


async def test_closed_while_qos1_waits_for_puback_fails_at_once():
    for chunk in CHUNKS:
        async with Rig(air(), chunk=chunk) as rig:
            m, modem = rig.modem, rig.obj
            hold = asyncio.Event()
            cmd = b'AT+MPUB="t",1,0,"x"'
            m.on(cmd, OK, Wait(hold))
            modem.mqtt.connected = True
            task = asyncio.create_task(modem.mqtt.publish("t", "x", qos=1, timeout_ms=60000))
            await m.wait_command(cmd)
            m.inject(b"\r\nCLOSED\r\n")
            with raises(LinkClosedError) as err:
                await wait_ms(task, 1000)  # long before the publish's own 60 s
            assert err.value.line == b"CLOSED"
            assert not modem.mqtt.connected
            assert await modem.events.get(500) == (ev.CLOSED, b"CLOSED")
            hold.set()


async def test_link_events_every_spelling():
    spellings = (
        (b"+PDP DEACT", ev.PDP_DEACT),
        (b"+PDP: DEACT", ev.PDP_DEACT),
        (b"+PDP:DEACT", ev.PDP_DEACT),
        (b"+CGEV: NW PDN DEACT 1", ev.PDP_DEACT),
        (b"+CGEV: ME PDN ACT 1", None),
        (b"PDP DEACT", ev.PDP_DEACT),
        (b"STATE: PDP DEACT", ev.PDP_DEACT),  # an unknown line: the DEACT substring counts
        (b"+SAPBR 1: DEACT", ev.BEARER_DEACT),
        (b"CLOSED", ev.CLOSED),
        (b"RDY", ev.REBOOT),
        (b"+CPIN: NOT INSERTED", ev.SIM_REMOVED),
        (b"+CPIN: SIM REMOVED", ev.SIM_REMOVED),
        (b"+CPIN: READY", ev.SIM_READY),
        (b"^MODE: 17,17", None),
        (b"+NITZ: 24/08/22,07:27:15+32,", None),
    )
    async with Rig(air(), chunk=(1, 9)) as rig:
        events = rig.obj.events
        seen = []
        events.subscribe(lambda name, line: seen.append(name))
        for line, name in spellings:
            rig.modem.inject(b"\r\n" + line + b"\r\n")
            if name is not None:
                assert await events.get(1000) == (name, line)
        assert seen == [name for _, name in spellings if name is not None]
        with raises(ATTimeoutError):
            await events.get(20)
    # A PDP deactivation also ends a pending MQTT command.
    async with Rig(air()) as rig:
        m = rig.modem
        m.on(b'AT+MSUB="t",1', OK, b"\r\n+PDP: DEACT\r\n")
        with raises(LinkClosedError) as err:
            await rig.obj.mqtt.subscribe("t", 1)
        assert err.value.line == b"+PDP: DEACT"


async def test_qos1_publishes_wait_for_the_previous_puback():
    async with Rig(air()) as rig:
        m, mq = rig.modem, rig.obj.mqtt
        hold = asyncio.Event()
        before_ack = []
        m.on(
            b'AT+MPUB="t",1,0,"one"',
            OK,
            Wait(hold),
            lambda m: before_ack.append(bytes(m.stream.written)),
            b"\r\nPUBACK\r\n",
        )
        m.on(b'AT+MPUB="t",1,0,"two"', OK, b"\r\nPUBACK\r\n")
        one = asyncio.create_task(mq.publish("t", "one", qos=1))
        await m.wait_command(b'AT+MPUB="t",1,0,"one"')
        two = asyncio.create_task(mq.publish("t", "two", qos=1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        hold.set()
        await one
        await two
        assert before_ack == [b'AT+MPUB="t",1,0,"one"\r']  # "two" only after the PUBACK
        assert m.commands == [b'AT+MPUB="t",1,0,"one"', b'AT+MPUB="t",1,0,"two"']


async def test_publish_escapes_text_and_never_injects_a_command():
    async with Rig(air(), chunk=1) as rig:
        m, mq = rig.modem, rig.obj.mqtt
        evil = 'x"\r\nAT+RESET\r'
        cmd = b'AT+MPUB="t",0,1,"x\\22\\0D\\0AAT+RESET\\0D"'
        m.on(cmd, OK)
        await mq.publish("t", evil, retain=True)
        m.on(b'AT+MPUB="t",0,0,"C:\\5Cdir \\5C22 {\\22k\\22:\\22\xe4\xb8\xad\\22}"', OK)
        await mq.publish("t", 'C:\\dir \\22 {"k":"\u4e2d"}')
        m.on(b'AT+MPUB="t",0,0,""', OK)
        await mq.publish("t", b"")
        for bad in (evil, 'a"b', "a\rb", "a\nb", "", "t" * 257):
            with raises(ArgumentError):
                await mq.publish(bad, "x")
            with raises(ArgumentError):
                await mq.subscribe(bad)
            with raises(ArgumentError):
                await mq.unsubscribe(bad)
        with raises(ArgumentError):
            await mq.configure("dev", "user", 'pw"\r\nAT+RESET\r')
        with raises(ArgumentError):
            await mq.publish("t", "x", qos=3)
        assert m.commands == [
            cmd,
            b'AT+MPUB="t",0,0,"C:\\5Cdir \\5C22 {\\22k\\22:\\22\xe4\xb8\xad\\22}"',
            b'AT+MPUB="t",0,0,""',
        ]
        assert bytes(rig.stream.written).count(b"\r") == 3  # three command lines, no more
        assert b"AT+RESET" not in b"".join(m.commands[1:])


async def test_binary_and_long_payloads_use_mpubex():
    for chunk in CHUNKS:
        async with Rig(air(), chunk=chunk) as rig:
            m, mq = rig.modem, rig.obj.mqtt
            binary = b'\x00"\r\nAT+RESET\r\n' + bytes(range(256))
            m.on(
                b'AT+MPUBEX="t",1,0,%d' % len(binary),
                b"\r\n>",
                Read(len(binary)),
                OK,
                b"\r\nPUBACK\r\n",
            )
            await mq.publish("t", binary, qos=1)
            long_text = b'"' * 400  # 400 bytes, 1200 once escaped: over mpub_max
            m.on(b'AT+MPUBEX="t",0,0,400', b"\r\n> ", Read(400), OK)
            await mq.publish("t", long_text)
            bad_utf8 = b"\xe4\xb8"
            m.on(b'AT+MPUBEX="t",0,0,2', b"\r\n>", Read(2), OK)
            await mq.publish("t", bad_utf8)
            assert m.payloads == [binary, long_text, bad_utf8]
            assert len(m.commands) == 3
            with raises(ArgumentError):
                await mq.publish("t", b"\x00" * 4101)
            with raises(ArgumentError):
                check_publish("t", b"\x00" * 4101)
            with raises(ArgumentError):
                check_publish('a"b', "x")
            check_publish("t", b"\x00" * 4100)
            check_publish("t", "x")
            check_publish("t", "x" * 4100)  # a str: its UTF-8 bytes count, not its characters
            with raises(ArgumentError):
                check_publish("t", "\u4e2d" * 1367)  # 1367 characters, 4101 bytes
            assert len(m.commands) == 3


def test_a_topic_is_quoted_once_and_a_payload_with_nothing_to_escape_is_not_copied():
    topic = "/sys/a/b/thing/event/property/post"
    first = topic_arg(topic)
    assert first == b'"' + topic.encode() + b'"'
    assert topic_arg("/sys/a/b/thing/event/" + "property/post") is first  # kept, not rebuilt
    with raises(ArgumentError):
        topic_arg('a"b')  # refused every time: a bad topic is never kept
    with raises(ArgumentError):
        topic_arg('a"b')
    for i in range(20):  # the kept topics stay bounded; each is still quoted right
        assert topic_arg("t/%d" % i) == b'"t/%d"' % i
    plain = b"{'a': 1}"
    assert escape(plain) is plain
    assert escape(b'a\\b"c\r\nd') == b"a\\5Cb\\22c\\0D\\0Ad"
    assert escape(bytearray(b'"')) == b"\\22"


async def test_incoming_messages_arrive_intact_to_callback_and_queue():
    for chunk in CHUNKS:
        async with Rig(air(queue_len=2), chunk=chunk) as rig:
            m, mq = rig.modem, rig.obj.mqtt
            head = b'+MSUB: "/a/b",%d byte,' % len(NASTY)
            m.inject(b"\r\n" + head + NASTY + b"\r\n")
            assert await mq.message(1000) == ("/a/b", NASTY)
            got = []
            mq.on_message(lambda topic, payload, got=got: got.append((topic, payload)))
            # Arriving while a QoS1 publish waits for its PUBACK: delivered, publish unharmed.
            m.on(b'AT+MPUB="t",1,0,"p"', OK, b"\r\n" + head, NASTY, b"\r\n\r\nPUBACK\r\n")
            await mq.publish("t", "p", qos=1)
            assert got == [("/a/b", NASTY)]
            mq.on_message(None)
            for i in range(3):  # the queue holds 2: the oldest is dropped
                m.inject(b'\r\n+MSUB: "q",1 byte,%d\r\n' % i)
            m.on(b"AT", OK)
            await rig.obj.channel.command(b"AT", 1000)
            assert mq.dropped == 1
            assert await mq.message(100) == ("q", b"1")
            assert await mq.message(100) == ("q", b"2")
            with raises(ATTimeoutError):
                await mq.message(10)


async def test_a_4k_downlink_is_handed_over_in_its_own_buffer_not_copied():
    # The payload over the line buffer is read into a bytearray of its own and handed over as
    # it is: on the VM the delivery allocates that buffer once (a copy would double it).
    body = bytes(range(256)) * 16
    line = b'\r\n+MSUB: "%s",4096 byte,%s\r\n' % (GET_TOPIC.encode(), body)
    stream = FakeStream()
    stream.feed(b"\r\n")  # the FakeStream's buffer grows once, before the measurement
    stream.feed(line)
    stream._pos = stream._len = 0
    modem = Air724(stream)
    got = []
    modem.mqtt.on_message(lambda topic, payload: got.append((topic, payload)))
    modem.start()
    await asyncio.sleep(0)
    measure = getattr(gc, "mem_alloc", None)  # MicroPython's heap counter
    gc.collect()
    before = measure() if measure else 0
    stream.feed(line)
    for _ in range(100):  # bounded: the reader needs a few turns
        if got:
            break
        await asyncio.sleep(0)
    used = measure() - before if measure else 0
    await modem.close()
    assert got == [(GET_TOPIC, body)] and type(got[0][1]) is bytearray
    if measure:
        assert len(body) <= used < 2 * len(body), used  # one 4 KB buffer, not two


async def test_cache_mode_fetch_and_other_msub_forms():
    async with Rig(air()) as rig:
        m, mq = rig.modem, rig.obj.mqtt
        m.inject(b"\r\n+MSUB: 0\r\n")
        m.on(
            b"AT+MQTTMSGGET",
            b"\r\n+MSUB: mqtt/topic,9 byte,SSSSddddd\r\n",
            b'\r\n+MSUB: "x/y",3,a,b\r\n',
            OK,
        )
        m.on(b"AT", OK)
        await rig.obj.channel.command(b"AT", 1000)
        assert mq.cached == 1
        assert await mq.message(100) == (None, None)  # the notice: the reader should fetch
        await mq.fetch()
        assert mq.cached == 0
        assert await mq.message(100) == ("mqtt/topic", b"SSSSddddd")
        assert await mq.message(100) == ("x/y", b"a,b")


async def test_status_unsubscribe_disconnect_close():
    async with Rig(air()) as rig:
        m, mq = rig.modem, rig.obj.mqtt
        for answer in (b"+MQTTSTATU :1", b"+MQTTSTATU :0", b"+MQTTSTATU: 2"):
            m.on(b"AT+MQTTSTATU", b"\r\n" + answer + b"\r\n", OK)
        assert await repeat(mq.status, 3) == [1, 0, 2]
        m.on(b'AT+MUNSUB="a/b"', OK, b"\r\nUNSUBACK\r\n")
        await mq.unsubscribe("a/b")
        m.on(b"AT+MDISCONNECT", b"\r\n+CME ERROR: 767\r\n")
        m.on(b"AT+MIPCLOSE", b"\r\n+CME ERROR: 767\r\n")
        m.on(b"AT+MDISCONNECT", OK)
        m.on(b"AT+MIPCLOSE", b"\r\n+CME ERROR: 3\r\n")
        await mq.disconnect()
        await mq.close()
        await mq.disconnect()
        with raises(CMEError):
            await mq.close()
        assert not mq.connected


async def test_mconfig_with_will_and_empty_credentials():
    async with Rig(air()) as rig:
        m, mq = rig.modem, rig.obj.mqtt
        m.on(b'AT+MCONFIG="dev|securemode=2,signmethod=hmacsha256|","",""', OK)
        m.on(b'AT+MCONFIG="d","u","p",1,0,"will/t","gone"', OK)
        await mq.configure("dev|securemode=2,signmethod=hmacsha256|")
        await mq.configure("d", "u", "p", will=("will/t", "gone", 1, False))
        with raises(ArgumentError):
            await mq.configure("d", "u", "p", will=("will/t", "a\nb", 1, False))
        assert len(m.commands) == 2


async def test_cfun_cycle_and_reset():
    async with Rig(air()) as rig:
        m, modem = rig.modem, rig.obj
        m.on(b"AT+CFUN=0", OK)
        m.on(b"AT+CFUN=1", OK)
        m.on(b"AT+CFUN?", b"\r\n+CFUN: 1\r\n", OK)
        m.on(b"AT+RESET", OK, Delay(2), b"\r\nRDY\r\n")
        await modem.module.set_functionality(0)
        await modem.module.set_functionality(1)
        assert await modem.module.functionality() == 1
        await modem.module.reset()
        assert await modem.events.get(1000) == (ev.REBOOT, b"RDY")
        assert m.commands == [b"AT+CFUN=0", b"AT+CFUN=1", b"AT+CFUN?", b"AT+RESET"]


def test_number_lists_refuse_answers_without_numbers():
    from air724.text import ints
    from atmodem import ResponseError

    assert ints(b' 0, 5,"1A2B",7') == [0, 5, 7]  # quoted fields (LAC, cell id) are skipped
    for text in (b'"1A2B"', b"0,x", b""):
        with raises(ResponseError):
            ints(text)


async def test_every_link_down_line_of_the_table_ends_an_mqtt_command():
    for line in ev.DOWN_LINES:
        async with Rig(air()) as rig:
            rig.modem.on(b'AT+MSUB="t",1', OK, b"\r\n" + line + b" 1\r\n")
            with raises(LinkClosedError):
                await rig.obj.mqtt.subscribe("t", 1)
            assert not rig.obj.mqtt.connected
    assert b"RDY" in ev.DOWN_LINES and ev.REBOOT in ev.DOWN
    assert ev.SIM_READY not in ev.DOWN and ev.BEARER_DEACT not in ev.DOWN
