"""The fault kinds a device must survive without being stranded (counted headers that lie, a
silent half-open link, refused or dropped CONNECTs, an MCU reset under a live session, cache
mode, AT+CMEE=0, garbage with counted headers), each through ``ctl``, a scenario and, where the
behaviour is a property of the module, a dialect option. test_emulator_faults.py runs every
check below both ways (``CHECKS``/``FIRES``)."""

from .support import RECORDER


def _mqtt(at, client="linky"):
    at.ok(f'AT+MCONFIG="{client}","u","p"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"\r\nCONNACK OK\r\n")


def _get(at, path):
    at.ok('AT+SAPBR=3,1,"CONTYPE","GPRS"')
    at.ok("AT+SAPBR=1,1")
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","plain.example.com{path}"')
    at.ok("AT+HTTPACTION=0")
    at.expect(rb"\r\n\+HTTPACTION: 0,200,\d+\r\n", timeout=10)


def check_counted_long(sim, at, fire):
    fire()
    at.expect(rb'^\r\n\+MSUB: "/x/y",603 byte,abc\r\n')  # 600 bytes claimed that never come
    fire()
    _get(at, "/bytes/5")
    at.send("AT+HTTPREAD")
    at.expect(rb"^\r\n\+HTTPREAD: 105\r\n")
    assert at.read_exact(5) == bytes((i * 7 + 13) % 256 for i in range(5))
    at.expect(rb"^\r\nOK\r\n")
    at.send("AT+HTTPREAD")  # armed once: the next header is right again
    at.expect(rb"^\r\n\+HTTPREAD: 5\r\n")


def check_counted_short(sim, at, fire):
    fire()
    at.expect(rb'^\r\n\+MSUB: "/x/y",5 byte,0123456789\r\n')
    fire()
    _get(at, "/bytes/12")
    at.send("AT+HTTPREAD")
    at.expect(rb"^\r\n\+HTTPREAD: 7\r\n")
    assert len(at.read_exact(12)) == 12
    at.expect(rb"^\r\nOK\r\n")


def check_half_open(sim, at, fire):
    _mqtt(at, "halfopen")
    at.ok('AT+MSUB="t/half",1')
    at.expect(rb"\r\nSUBACK\r\n")
    fire()
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :1\r\n"
    at.ok('AT+MPUB="t/half",1,0,"lost"')
    sim.ctl("downlink", topic="t/half", payload="never")
    assert at.quiet(0.5) == b""  # no PUBACK, no CLOSED, no +MSUB
    assert not [m for m in RECORDER.messages if m[0] == "halfopen" and m[2] == b"lost"]
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :1\r\n"
    at.send('AT+MIPSTART="mqtt-tcp.example.com",1883')  # the module still believes in it
    at.expect(rb"^\r\nOK\r\n\r\nALREADY CONNECT\r\n")
    at.ok("AT+MIPCLOSE")  # the way out: close and connect again
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    _mqtt(at, "halfopen")
    at.ok('AT+MPUB="t/half",1,0,"found"')
    at.expect(rb"\r\nPUBACK\r\n")


def check_connect_refused(sim, at, fire):
    at.ok('AT+MCONFIG="refused","u","p"')
    for final in (rb"\r\nERROR\r\n\r\nCLOSED\r\n", rb"\r\nCLOSED\r\n"):
        fire()
        at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
        at.expect(rb"^\r\nCONNECT OK\r\n")
        at.ok("AT+MCONNECT=1,60")
        at.expect(b"^" + final)
        assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    _mqtt(at, "refused")  # armed per count: the next CONNECT goes through


def check_mconnect_closed(sim, at, fire):
    at.ok('AT+MCONFIG="dropped","u","p"')
    fire()
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"^\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"^\r\nCLOSED\r\n")
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    assert at.command("AT+MCONNECT=1,60")[1] == "+CME ERROR: 767"
    _mqtt(at, "dropped")


def check_mcu_reset(sim, at, fire):
    _mqtt(at, "mcu")
    fire()
    at.close()  # the MCU resets; the module keeps its session
    again = sim.port()
    again.expect(rb'^\r\n\+MSUB: "/pk/dn/user/get",7 byte,early-0\r\n')
    again.expect(rb'^\r\n\+MSUB: "/pk/dn/user/get",7 byte,early-1\r\n')
    assert again.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :1\r\n"  # echo still off: no reboot
    again.send('AT+SSLMIPSTART="mqtt-tcp.example.com",1883')
    again.expect(rb"^\r\nOK\r\n\r\nALREADY CONNECT\r\n")
    assert again.command("AT+MCONNECT=1,60")[1] == "ERROR"
    again.ok('AT+MPUB="t/mcu",1,0,"still"')
    again.expect(rb"\r\nPUBACK\r\n")


def check_cache_mode(sim, at, fire):
    _mqtt(at, "cache")
    fire()
    for slot in (0, 1, 2, 3, 0):  # the fifth overwrites the oldest (§7.4)
        at.expect(rb"^\r\n\+MSUB: %d\r\n" % slot)
    assert at.ok("AT+MQTTMSGSET?") == "\r\n+MQTTMSGSET:1\r\n"
    assert at.ok("AT+MQTTMSGGET?").count(",VALID") == 4
    text = at.ok("AT+MQTTMSGGET")
    assert text == "".join(f'\r\n+MSUB: "c/t",2 byte,m{i}\r\n' for i in (1, 2, 3, 4)), text
    assert at.ok("AT+MQTTMSGGET?").count(",INVALID") == 4


def check_cmee(sim, at, fire):
    fire()
    assert at.command("AT+MIPCLOSE")[1] == "ERROR"  # +CME ERROR: 767 under CMEE=1
    fire()
    assert at.command("AT+MIPCLOSE")[1] == "+CME ERROR: Operation failed"
    assert at.ok("AT+CMEE?") == "\r\n+CMEE: 2\r\n"


def check_garbage_burst(sim, at, fire):
    fire()
    headers = at.expect(rb"^(?:.|\n)*?\r\n\+(?:MSUB: [^\r\n]*?,(\d+) byte,|HTTPREAD: ?(\d+)\r\n)")
    assert int(headers.group(1) or headers.group(2)) >= 1
    at.expect(rb"\r\n\+(?:MSUB: [^\r\n]*?,\d+ byte,|HTTPREAD: ?\d+\r\n)")
    at.ok("AT")  # the module itself is unaffected


CHECKS = {name[6:]: check for name, check in dict(globals()).items() if name.startswith("check_")}
FIRES = {
    "counted_long": [
        dict(target="msub", topic="/x/y", payload="abc"),
        dict(target="httpread", extra=100),
    ],
    "counted_short": [
        dict(target="msub", topic="/x/y", payload="0123456789"),
        dict(target="httpread"),
    ],
    "half_open": [dict()],
    "connect_refused": [dict(), dict(style="closed")],
    "mconnect_closed": [dict()],
    "mcu_reset": [dict(topic="/pk/dn/user/get")],
    "cache_mode": [dict(count=5, topic="c/t", payload="m")],
    "cmee": [dict(), dict(value=2)],
    "garbage_burst": [dict(count=48, headers=2, seed=5)],
}


# -- the same behaviour as a dialect option (a module that always does it); run by
# test_emulator_dialect.py for every value in DIALECT_VALUES --


def _ready(sim):
    at = sim.port()
    at.train()
    at.ok("ATE0")
    return at


def dialect_mqttmsgset_boot(sim, value):
    at = _ready(sim)
    mode = 1 if value == "cache" else 0
    assert at.ok("AT+MQTTMSGSET?") == f"\r\n+MQTTMSGSET:{mode}\r\n"
    _mqtt(at, "bootcache")
    sim.ctl("downlink", topic="c/t", payload="early")  # between CONNACK and MQTTMSGSET=0
    if value == "push":
        at.expect(rb'^\r\n\+MSUB: "c/t",5 byte,early\r\n')
        return
    at.expect(rb"^\r\n\+MSUB: 0\r\n")
    at.ok("AT+MQTTMSGSET=0")
    sim.ctl("downlink", topic="c/t", payload="pushed")
    at.expect(rb'^\r\n\+MSUB: "c/t",6 byte,pushed\r\n')
    assert at.ok("AT+MQTTMSGGET") == '\r\n+MSUB: "c/t",5 byte,early\r\n'
    sim.ctl("reboot")
    at.expect(rb"\r\nRDY\r\n")
    at.ok("ATE0")
    assert at.ok("AT+MQTTMSGSET?") == "\r\n+MQTTMSGSET:1\r\n"  # at every boot


def dialect_cmee_boot(sim, value):
    at = _ready(sim)
    assert at.ok("AT+CMEE?") == f"\r\n+CMEE: {value}\r\n"
    expected = {"0": "ERROR", "1": "+CME ERROR: 767", "2": "+CME ERROR: Operation failed"}
    assert at.command("AT+MDISCONNECT")[1] == expected[value]


def dialect_msub_count(sim, value):
    at = _ready(sim)
    _mqtt(at, "count")
    sim.ctl("downlink", topic="c/t", payload="abcdefgh")
    count = {"exact": 8, "long": 608, "short": 3}[value]
    at.expect(rb'^\r\n\+MSUB: "c/t",%d byte,abcdefgh\r\n' % count)


def dialect_httpread_count(sim, value):
    at = _ready(sim)
    _get(at, "/bytes/9")
    at.send("AT+HTTPREAD")
    at.expect(rb"^\r\n\+HTTPREAD: %d\r\n" % {"exact": 9, "long": 609, "short": 4}[value])
    assert len(at.read_exact(9)) == 9
    at.expect(rb"^\r\nOK\r\n")


def dialect_half_open(sim, value):
    at = _ready(sim)
    _mqtt(at, "silent")
    at.ok('AT+MPUB="t/silent",1,0,"x"')
    if value:
        assert at.quiet(0.5) == b""
    else:
        at.expect(rb"^\r\nPUBACK\r\n")
    assert sim.ctl("status")["state"]["half_open"] is value
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :1\r\n"


def dialect_mconnect_closed(sim, value):
    at = _ready(sim)
    at.ok('AT+MCONFIG="c","u","p"')
    for _ in range(2 if value else 1):
        at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
        at.expect(rb"^\r\nCONNECT OK\r\n")
        at.ok("AT+MCONNECT=1,60")
        at.expect(rb"^\r\nCLOSED\r\n" if value else rb"^\r\nCONNACK OK\r\n")


DIALECT_VALUES = {
    "mqttmsgset_boot": ["push", "cache"],
    "cmee_boot": ["0", "1", "2"],
    "msub_count": ["exact", "long", "short"],
    "httpread_count": ["exact", "long", "short"],
    "half_open": ["no", "yes"],
    "mconnect_closed": ["no", "yes"],
}
DIALECT_CHECKS = {name: globals()["dialect_" + name] for name in DIALECT_VALUES}
