"""Every dialect option (the points where the sources disagree, reference §12)."""

import json
import re

import pytest

from tools.emulator.dialect import OPTIONS

from . import test_emulator_faults_link as link_faults


def _port(sim, train=True):
    at = sim.port()
    if train:
        at.train()
        at.ok("ATE0")
    return at


def _mqtt(at, client_id="dialect"):
    at.ok(f'AT+MCONFIG="{client_id}","u","p"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"\r\nCONNACK OK\r\n")


def _http_get(at, path="/bytes/5"):
    at.ok("AT+SAPBR=1,1")
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","http://plain.example.com{path}"')
    at.ok("AT+HTTPACTION=0")


def check_cgmr(sim, value):
    expected = {
        "quoted": '+CGMR: "AirM2M_Air724UG_V409_LTE_AT"',
        "revision": "Revision: AirM2M_Air724UG_V409_LTE_AT",
        "bare": "AirM2M_Air724UG_V409_LTE_AT",
    }[value]
    assert _port(sim).ok("AT+CGMR") == f"\r\n{expected}\r\n"


def check_httpread_space(sim, value):
    at = _port(sim)
    _http_get(at)
    at.expect(rb"\r\n\+HTTPACTION: 0,200,5\r\n")
    sep = b": " if value else b":"
    at.send("AT+HTTPREAD")
    at.expect(rb"^\r\n\+HTTPREAD" + sep + rb"5\r\n")
    at.read_exact(5)
    at.expect(rb"^\r\nOK\r\n")
    at.send("AT+HTTPHEAD")
    at.expect(rb"^\r\n\+HTTPHEAD" + sep + rb"\d+\r\nHTTP/1")


def check_sapbr_ip(sim, value):
    at = _port(sim)
    at.ok("AT+SAPBR=1,1")
    pattern = r'"10\.\d+\.\d+\.\d+"' if value == "quoted" else r"010\.\d{3}\.\d{3}\.\d{3}"
    text = at.ok("AT+SAPBR=2,1")
    assert re.fullmatch(r"\r\n\+SAPBR: 1,1," + pattern + r"\r\n", text), text


def check_pdp_deact(sim, value):
    at = _port(sim)
    sim.ctl("pdp_deact")
    text = {
        "space": "+PDP DEACT",
        "colon-space": "+PDP: DEACT",
        "colon": "+PDP:DEACT",
        "cgev": "+CGEV: NW PDN DEACT 1",
    }[value]
    at.expect("^\r\n" + text.replace("+", r"\+") + "\r\n")


def check_msub_byte(sim, value):
    at = _port(sim)
    _mqtt(at)
    sim.ctl("downlink", topic="t", payload="hi")
    at.expect(rb'^\r\n\+MSUB: "t",2 byte,hi\r\n' if value else rb'^\r\n\+MSUB: "t",2,hi\r\n')


def check_msgget_topic(sim, value):
    at = _port(sim)
    _mqtt(at)
    at.ok("AT+MQTTMSGSET=1")
    sim.ctl("downlink", topic="t/x", payload="hi")
    at.expect(rb"^\r\n\+MSUB: 0\r\n")
    topic = '"t/x"' if value == "quoted" else "t/x"
    assert at.ok("AT+MQTTMSGGET") == f"\r\n+MSUB: {topic},2 byte,hi\r\n"


def check_no_sim(sim, value):
    at = sim.port()
    at.train()
    urc = {"not-inserted": b"NOT INSERTED", "sim-removed": b"SIM REMOVED", "cme10": None}[value]
    at.ok("ATE0")
    if urc:
        assert at.ok("AT+CPIN?") == f"\r\n+CPIN: {urc.decode()}\r\n"
    else:
        assert at.command("AT+CPIN?")[1] == "+CME ERROR: 10"
    assert b"+CPIN: NOT INSERTED" in at.seen or value == "sim-removed"
    assert at.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"


def check_mpub_max(sim, value):
    at = _port(sim)
    _mqtt(at)
    at.ok('AT+MPUB="t",0,0,"' + "x" * value + '"')
    assert at.command('AT+MPUB="t",0,0,"' + "x" * (value + 1) + '"')[1] == "ERROR"


def check_mpub_count(sim, value):
    at = _port(sim)
    _mqtt(at)
    command = 'AT+MPUB="t",0,0,"' + "\\22" * 800 + '"'  # 2400 escaped, 800 decoded
    assert at.command(command)[1] == ("OK" if value == "decoded" else "ERROR")


def check_rx_max(sim, value):
    at = _port(sim)
    _mqtt(at)
    sim.ctl("downlink", topic="t", size=4000)
    match = at.expect(rb'\+MSUB: "t",(\d+) byte,')
    assert int(match.group(1)) == min(value, 4000)


def check_rx_overflow(sim, value):
    at = _port(sim)
    _mqtt(at)
    sim.ctl("downlink", topic="big", size=2000)
    sim.ctl("downlink", topic="small", payload="s")
    if value == "drop":
        at.expect(rb'^\r\n\+MSUB: "small",1 byte,s\r\n')
    else:
        at.expect(rb'^\r\n\+MSUB: "big",1360 byte,')


def check_boot_urcs(sim, value):
    at = _port(sim, train=False)
    at.train()
    if value == "rdy":
        at.expect(rb"^\r\nRDY\r\n")
        at.ok("ATE0")
        assert b"CPIN" not in at.seen
    elif value == "cpin":
        at.expect(rb"^\r\nRDY\r\n\r\n\+CPIN: READY\r\n")
    else:
        at.expect(
            rb"^\r\nRDY\r\n\r\n\+CPIN: READY\r\n\r\n\^MODE: 17,17\r\n\r\n\+E_UTRAN Service\r\n"
            rb"\r\n\+CGEV: ME PDN ACT 1\r\n\r\n\+NITZ: \d\d/\d\d/\d\d,\d\d:\d\d:\d\d\+32,\r\n"
        )


def check_cpin_twice(sim, value):
    at = _port(sim, train=False)
    at.train()
    twice = rb"\r\n\+CPIN: READY\r\n" * (2 if value else 1)
    at.expect(rb"^\r\nRDY\r\n" + twice)
    at.ok("ATE0")
    assert at.seen.count(b"+CPIN: READY") == (2 if value else 1)


def check_autobaud(sim, value):
    at = _port(sim, train=False)
    if value:
        assert at.quiet(0.2) == b""
        at.train()
    else:
        at.ok("ATE0")  # answered without training: the rate is fixed (§2)
        sim.ctl("reboot")
        at.expect(rb"^\r\nRDY\r\n\r\n\+CPIN: READY\r\n")  # unprompted
        at.ok("ATE0")
        assert at.ok("AT+IPR?") == "\r\n+IPR: 115200\r\n"


def check_autobaud_reset(sim, value):
    at = _port(sim)
    at.ok("AT+RESET")
    if value:
        assert at.quiet(0.2) == b""
        at.train()
    at.expect(rb"\r\nRDY\r\n")


def check_iccid_first_error(sim, value):
    at = _port(sim)
    assert at.command("AT+ICCID")[1] == ("ERROR" if value else "OK")
    assert at.command("AT+ICCID")[1] == "OK"


def check_mpubex_prompt(sim, value):
    at = _port(sim)
    _mqtt(at)
    at.send('AT+MPUBEX="t",0,0,2')
    at.expect({"gt": rb"^\r\n>$", "gt-space": rb"^\r\n> $", "gt-line": rb"^\r\n>\r\n$"}[value])
    at.write(b"hi")
    at.expect(rb"^\r\nOK\r\n")


def check_mpubex_echo_bug(sim, value):
    at = _port(sim)  # ATE0
    _mqtt(at)
    at.send('AT+MPUBEX="t",0,0,5')
    at.expect(rb"^\r\n>")
    at.write(b"hello")
    at.expect(rb"^hello\r\nOK\r\n" if value else rb"^\r\nOK\r\n")


def check_explicit_pdp(sim, value):
    at = _port(sim)
    at.ok('AT+MCONFIG="c","u","p"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    if value:
        at.expect(rb"\r\nCONNECT FAIL\r\n")
        at.ok("AT+CSTT")
        at.ok("AT+CIICR")
        at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")


def check_mconfig_empty(sim, value):
    at = _port(sim)
    expected = "OK" if value == "ok" else "+CME ERROR: 765"
    assert at.command('AT+MCONFIG="c","",""')[1] == expected
    at.ok('AT+MCONFIG="c","u","p"')


def check_already_connect(sim, value):
    at = _port(sim)
    _mqtt(at)
    at.send('AT+MIPSTART="mqtt-tcp.example.com",1883')
    final = b"OK" if value == "ok" else b"ERROR"
    at.expect(rb"^\r\n" + final + rb"\r\n\r\nALREADY CONNECT\r\n")


def check_connect_fail_state(sim, value):
    at = _port(sim)
    at.ok('AT+MIPSTART="unmapped.example.com",1883')
    at.expect(
        rb"^\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n" if value else rb"^\r\nCONNECT FAIL\r\n"
    )


def check_connack_refused(sim, value):
    at = _port(sim)
    at.ok('AT+MCONFIG="refusal","u","wrong-password"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"^\r\nCLOSED\r\n" if value == "closed" else rb"^\r\nERROR\r\n\r\nCLOSED\r\n")


def check_closed_urc(sim, value):
    at = _port(sim)
    _mqtt(at)
    sim.ctl("drop_mqtt")
    if value:
        at.expect(rb"^\r\nCLOSED\r\n")
    else:  # before V838 a server close was not reported: the host must poll
        while at.ok("AT+MQTTSTATU") != "\r\n+MQTTSTATU :0\r\n":
            pass
        assert b"CLOSED" not in at.seen


def check_tls_suites(sim, value):
    """The emulator tests' broker has an ECDSA certificate: no RSA key exchange, so the
    module's suites cannot reach it (test_emulator_tls_suites has the rest)."""
    at = _port(sim)
    at.ok('AT+MCONFIG="c1","u","p"')
    at.ok('AT+SSLMIPSTART="a1.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n" if value == "host" else rb"\r\nCONNECT FAIL\r\n", timeout=15)


def check_httpaction_repeat(sim, value):
    at = _port(sim)
    _http_get(at)
    at.expect(rb"^(\r\n\+HTTPACTION: 0,200,5\r\n){%d}" % value)


def check_cgatt_follows_pdp(sim, value):
    at = _port(sim)
    sim.ctl("pdp_deact")
    at.expect(rb"^\r\n\+PDP DEACT\r\n")
    assert at.ok("AT+CGATT?") == f"\r\n+CGATT: {0 if value else 1}\r\n"


VALUES = {
    "cgmr": ["quoted", "revision", "bare"],
    "httpread_space": ["yes", "no"],
    "sapbr_ip": ["quoted", "plain"],
    "pdp_deact": ["space", "colon-space", "colon", "cgev"],
    "msub_byte": ["yes", "no"],
    "msgget_topic": ["quoted", "plain"],
    "no_sim": ["not-inserted", "sim-removed", "cme10"],
    "mpub_max": ["2384", "2348", "4100"],
    "mpub_count": ["escaped", "decoded"],
    "rx_max": ["1360", "4100"],
    "rx_overflow": ["truncate", "drop"],
    "boot_urcs": ["rdy", "cpin", "780x"],
    "cpin_twice": ["no", "yes"],
    "autobaud": ["yes", "no"],
    "autobaud_reset": ["no", "yes"],
    "iccid_first_error": ["no", "yes"],
    "mpubex_prompt": ["gt", "gt-space", "gt-line"],
    "mpubex_echo_bug": ["no", "yes"],
    "explicit_pdp": ["no", "yes"],
    "mconfig_empty": ["ok", "cme765"],
    "already_connect": ["ok", "error"],
    "connect_fail_state": ["yes", "no"],
    "connack_refused": ["closed", "error"],
    "closed_urc": ["yes", "no"],
    "httpaction_repeat": ["1", "2"],
    "cgatt_follows_pdp": ["yes", "no"],
    "tls_suites": ["host", "air724"],
}
VALUES.update(link_faults.DIALECT_VALUES)  # the fault-like options, checked there
globals().update({"check_" + k: v for k, v in link_faults.DIALECT_CHECKS.items()})
CASES = [(name, value) for name, values in VALUES.items() for value in values]


def test_every_option_and_choice_is_covered():
    assert set(VALUES) == {o.name for o in OPTIONS}
    for option in OPTIONS:
        if option.choices:
            assert set(VALUES[option.name]) == set(option.choices), option.name


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_dialect_option(name, value, start_sim, resolve_args):
    from tools.emulator.dialect import BY_NAME

    extra = ["--no-sim"] if name == "no_sim" else []
    sim = start_sim(*resolve_args, *extra, "--dialect", f"{name}={value}")
    assert sim.ctl("dialect")["dialect"][name] == BY_NAME[name].parse(value)
    globals()[f"check_{name}"](sim, BY_NAME[name].parse(value))


def test_scenario_dialect_and_command_line_precedence(start_sim, tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"dialect": {"pdp_deact": "cgev", "cgmr": "bare"}}))
    sim = start_sim("--scenario", str(scenario), "--dialect", "cgmr=revision")
    dialect = sim.ctl("dialect")["dialect"]
    assert (dialect["pdp_deact"], dialect["cgmr"]) == ("cgev", "revision")


def test_dialect_switch_at_run_time(start_sim):
    sim = start_sim()
    at = _port(sim)
    sim.ctl("set", pdp_deact="colon", httpaction_repeat="3")
    sim.ctl("pdp_deact")
    at.expect(rb"^\r\n\+PDP:DEACT\r\n")
    reply = sim.ctl_raw("set", httpaction_repeat="zero")
    assert not reply["ok"] and "integer" in reply["error"]
