"""Every fault kind, injected at run time (``ctl``) and from a scenario file."""

import json
import os
import subprocess

import pytest

from . import test_emulator_faults_link as link_faults
from .support import SIM

MARKER = "AT&W"  # the scenario fires after this command has been answered


def _mqtt(at):
    at.ok('AT+MCONFIG="faulty","u","p"')
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,60")
    at.expect(rb"\r\nCONNACK OK\r\n")


def check_drop_mqtt(sim, at, fire):
    _mqtt(at)
    fire()
    at.expect(rb"\r\nCLOSED\r\n")
    assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"


def check_pdp_deact(sim, at, fire):
    _mqtt(at)
    at.ok("AT+SAPBR=1,1")
    fire()
    at.expect_all([rb"\r\n\+PDP DEACT\r\n\r\n\+SAPBR 1: DEACT\r\n", rb"\r\nCLOSED\r\n"])
    assert at.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT FAIL\r\n")
    assert at.command("AT+CIPSHUT")[1] == "SHUT OK"  # recovery per the manual (§5.3)
    at.ok("AT+CGACT=1,1")
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")


def check_reboot(sim, at, fire):
    at.ok("AT+SAPBR=1,1")
    fire()
    at.expect(rb"\r\nRDY\r\n")
    at.expect(rb"\r\n\+CPIN: READY\r\n")
    text, final = at.command("AT+SAPBR=0,1")
    assert text.startswith("AT+SAPBR") and final == "+CME ERROR: 3"  # echo on, bearer gone


def check_power_cycle(sim, at, fire):
    fire()
    at.send("AT+CSQ")  # swallowed while booting or used to train the rate again
    at.train()
    at.expect(rb"\r\nRDY\r\n")


def check_stall(sim, at, fire):
    fire()
    at.send("AT+CSQ")
    assert at.quiet(0.3) == b""
    at.expect(rb"\r\n\+CSQ: 24,99\r\n\r\nOK\r\n", timeout=3)


def check_garbage(sim, at, fire):
    fire()
    at.expect(rb"\x00\xffAT\xfe\r\n")
    fire()
    assert len(at.read_exact(64)) == 64
    at.ok("AT")


def check_error(sim, at, fire):
    _mqtt(at)
    fire()
    assert at.command('AT+MPUB="t",0,0,"1"')[1] == "+CME ERROR: 767"
    assert at.command("AT+CSQ")[1] == "OK"  # other commands are untouched
    assert at.command('AT+MPUB="t",0,0,"2"')[1] == "+CME ERROR: 767"
    assert at.command('AT+MPUB="t",0,0,"3"')[1] == "OK"
    fire()
    assert at.command("AT+CSQ")[1] == "ERROR"
    assert at.command("AT+CSQ")[1] == "OK"


def check_connect_fail(sim, at, fire):
    at.ok('AT+MCONFIG="c","u","p"')
    fire()
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"^\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n")
    at.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    at.expect(rb"^\r\nCONNECT OK\r\n")


def check_sim_lost(sim, at, fire):
    at.ok("AT+CEREG=1")
    fire()
    at.expect(rb"\r\n\+CPIN: NOT INSERTED\r\n\r\n\+PDP DEACT\r\n\r\n\+CEREG: 0\r\n")
    assert at.ok("AT+CPIN?") == "\r\n+CPIN: NOT INSERTED\r\n"
    assert at.command("AT+ICCID")[1] == "+CME ERROR: 10"
    assert at.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"
    at.expect(rb"\r\n\+CPIN: READY\r\n")  # back after the duration
    at.expect(rb"\r\n\+CEREG: 2\r\n\r\n\+CEREG: 1\r\n")


def check_sim_insert(sim, at, fire):
    sim.ctl("sim_lost")
    at.expect(rb"\r\n\+CPIN: NOT INSERTED\r\n")
    fire()
    at.expect(rb"\r\n\+CPIN: READY\r\n")
    assert at.ok("AT+ICCID").startswith("\r\n+ICCID:")


def check_network_lost(sim, at, fire):
    _mqtt(at)
    at.ok("AT+CREG=1")
    fire()
    at.expect_all([rb"\r\n\+PDP DEACT\r\n", rb"\r\n\+CREG: 2\r\n", rb"\r\nCLOSED\r\n"])
    assert at.ok("AT+CSQ") == "\r\n+CSQ: 99,99\r\n"
    assert at.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"
    assert at.command("AT+SAPBR=1,1")[1] == "ERROR"


def check_network_restore(sim, at, fire):
    at.ok("AT+CREG=1")
    sim.ctl("network_lost")
    at.expect(rb"\r\n\+CREG: 2\r\n")
    fire()
    at.expect(rb"\r\n\+CREG: 1\r\n")
    assert at.ok("AT+CGATT?") == "\r\n+CGATT: 1\r\n"
    at.ok("AT+SAPBR=1,1")


def check_http_code(sim, at, fire):
    fire()
    at.ok("AT+HTTPINIT")
    at.ok('AT+HTTPPARA="URL","http://plain.example.com/"')
    at.ok("AT+HTTPACTION=0")
    at.expect(rb"\r\n\+HTTPACTION: 0,604,0\r\n")


def check_downlink(sim, at, fire):
    _mqtt(at)
    fire()
    at.expect(rb'\r\n\+MSUB: "/pk/dev/user/get",11 byte,hi, there\r\n\r\n')
    fire()
    match = at.expect(rb'\r\n\+MSUB: "big",(\d+) byte,')
    assert int(match.group(1)) == 1360 and at.read_exact(1360) == b"ab" * 680


def check_urc(sim, at, fire):
    fire()
    at.expect(rb"\r\n\+CUSTOM: 1,2\r\n")


def _http_get(at, path, status, length):
    at.ok("AT+HTTPINIT")
    at.ok(f'AT+HTTPPARA="URL","http://plain.example.com{path}"')
    at.ok("AT+HTTPACTION=0")
    at.expect(rb"\r\n\+HTTPACTION: 0,%d,%d\r\n" % (status, length))


def check_http_cut(sim, at, fire):
    at.ok("AT+SAPBR=1,1")
    fire()
    _http_get(at, "/bytes/1000", 200, 1000)  # 1000 of the 1500 bytes allowed
    at.ok("AT+HTTPTERM")
    _http_get(at, "/bytes/1000", 601, 0)  # the link died half-way through this one
    at.ok("AT+HTTPTERM")
    assert sim.ctl("status")["state"]["http_served"] == 1500
    _http_get(at, "/bytes/1000", 200, 1000)  # once only
    at.ok("AT+HTTPTERM")


def check_http_corrupt(sim, at, fire):
    at.ok("AT+SAPBR=1,1")
    fire()
    _http_get(at, "/bytes/100", 200, 100)
    at.send("AT+HTTPREAD")
    at.expect(rb"\r\n\+HTTPREAD: 100\r\n")
    got = at.read_exact(100)
    good = bytes((i * 7 + 13) % 256 for i in range(100))
    assert [i for i in range(100) if got[i] != good[i]] == [10] and got[10] == good[10] ^ 0xFF


CHECKS = {name[6:]: check for name, check in dict(globals()).items() if name.startswith("check_")}
CHECKS.update(link_faults.CHECKS)
FIRES = {  # the parameters of each fire() call of a check, in order
    **link_faults.FIRES,
    "drop_mqtt": [dict()],
    "pdp_deact": [dict()],
    "reboot": [dict()],
    "power_cycle": [dict()],
    "stall": [dict(seconds=0.6)],
    "garbage": [dict(hex="00ff4154fe0d0a"), dict(count=64)],
    "error": [dict(pattern=r"^AT\+MPUB=", count=2, cme=767), dict(pattern="CSQ")],
    "connect_fail": [dict(count=1)],
    "sim_lost": [dict(duration=0.4)],
    "sim_insert": [dict()],
    "network_lost": [dict()],
    "network_restore": [dict()],
    "http_code": [dict(code=604)],
    "http_cut": [dict(bytes=1500)],
    "http_corrupt": [dict(offset=10)],
    "downlink": [
        dict(topic="/pk/dev/user/get", payload="hi, there\r\n"),
        dict(topic="big", size=4000, payload="ab"),
    ],
    "urc": [dict(text="+CUSTOM: 1,2")],
}


def test_every_fault_kind_has_a_check():
    from tools.emulator.faults import FAULTS

    assert set(CHECKS) == set(FAULTS) == set(FIRES)


def _ready_port(sim):
    at = sim.port()
    at.train()
    at.expect(rb"\+CPIN: READY\r\n")
    at.ok("ATE0")
    return at


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_fault_via_ctl(kind, sim):
    at = _ready_port(sim)
    params = iter(FIRES[kind])
    CHECKS[kind](sim, at, lambda: sim.ctl(kind, **next(params)))


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_fault_via_scenario(kind, start_sim, resolve_args, tmp_path):
    """One scenario event per fire() of the check, armed by the n-th marker command."""
    events = [
        {"after": r"^AT&W$", "nth": index + 1, "do": kind, **params}
        for index, params in enumerate(FIRES[kind])
    ]
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"events": events}))
    sim = start_sim(*resolve_args, "--scenario", str(scenario))
    at = _ready_port(sim)
    CHECKS[kind](sim, at, lambda: at.ok(MARKER))


def test_scenario_time_trigger_nth_and_delay(start_sim, tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(
        json.dumps(
            {
                "description": "timed and counted events",
                "events": [
                    {"at": 0.2, "do": "urc", "text": "+TIMED"},
                    {"after": "AT\\+CSQ", "nth": 3, "do": "urc", "text": "+THIRD"},
                    {"after": "AT\\+CGSN", "delay": 0.3, "do": "urc", "text": "+LATER"},
                ],
            }
        )
    )
    sim = start_sim("--scenario", str(scenario))
    at = _ready_port(sim)
    at.expect(rb"\r\n\+TIMED\r\n")
    at.ok("AT+CSQ")
    at.ok("AT+CSQ")
    assert at.quiet(0.1) == b""
    at.ok("AT+CSQ")
    at.expect(rb"^\r\n\+THIRD\r\n")
    at.ok("AT+CGSN")
    assert at.quiet(0.1) == b""
    at.expect(rb"^\r\n\+LATER\r\n")


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"events": [{"do": "nosuch", "at": 1}]}', "unknown fault"),
        ('{"events": [{"do": "urc", "at": 1}]}', "text is required"),
        ('{"events": [{"do": "reboot"}]}', "exactly one"),
        ('{"events": [{"do": "reboot", "at": 1, "bogus": 2}]}', "unknown parameter"),
        ('{"evnts": []}', "unknown scenario key"),
        ('{"dialect": {"cgmr": "nope"}}', "cgmr"),
        ("[1, 2", "Expecting"),
    ],
)
def test_bad_scenarios_are_refused(tmp_path, content, message):
    scenario = tmp_path / "bad.json"
    scenario.write_text(content)
    proc = subprocess.run(
        [str(SIM), "--scenario", str(scenario)], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_ctl_command_line(start_sim, tmp_path):
    ready_file = tmp_path / "ready.json"
    sim = start_sim("--ready-file", str(ready_file))
    at = _ready_port(sim)

    def ctl(*args, env=None):
        proc = subprocess.run(
            [str(SIM), "ctl", *args], capture_output=True, text=True, timeout=10, env=env
        )
        return proc.returncode, json.loads(proc.stdout)

    code, reply = ctl("--ready-file", str(ready_file), "urc", "text=+FROM CLI")
    assert code == 0 and reply == {"ok": True, "done": "urc"}
    at.expect(rb"\r\n\+FROM CLI\r\n")
    code, reply = ctl("--ctl", sim.ready["ctl"], "error", "pattern=CSQ", "count=1", "cme=14")
    assert code == 0
    assert at.command("AT+CSQ")[1] == "+CME ERROR: 14"
    env = dict(os.environ, AIR724_SIM_CTL=sim.ready["ctl"])
    code, reply = ctl("status", env=env)
    assert code == 0 and reply["state"]["sim"] == "ready" and reply["state"]["attached"]
    code, reply = ctl("set", "httpread_space=no", "cgmr=bare", env=env)
    assert code == 0 and reply["dialect"]["cgmr"] == "bare"
    assert at.ok("AT+CGMR") == "\r\nAirM2M_Air724UG_V409_LTE_AT\r\n"
    code, reply = ctl("faults", env=env)
    assert "drop_mqtt" in reply["faults"] and "status" in reply["commands"]
    code, reply = ctl("drop-mqtt", env=env)  # nothing to drop
    assert code == 1 and "no MQTT link" in reply["error"]
    code, reply = ctl("nosuch", env=env)
    assert code == 1 and "unknown fault" in reply["error"]
    code, reply = ctl("stall", env=env)
    assert code == 1 and "seconds" in reply["error"]
    code, reply = ctl("http_code", "code=200", env=env)
    assert code == 1 and "600-606" in reply["error"]
