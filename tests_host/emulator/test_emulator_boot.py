"""Boot, autobaud, echo, identity, registration and bearer commands over a pty and TCP."""

import json
import os
import re
import subprocess
import time

import serial

from .support import SIM, AtPort


def test_pty_autobaud_echo_and_boot_urcs_with_pyserial(start_sim):
    sim = start_sim(listen=False)
    assert sim.ready["tcp"] is None and sim.ready["pty"].startswith("/dev/")
    with serial.Serial(sim.ready["pty"], 115200, timeout=0) as ser:
        at = AtPort(ser)
        at.send("at")  # lower case does not train the rate (ref §2)
        at.send("At")
        assert at.quiet(0.3) == b""
        at.send("AT")
        at.expect(rb"^AT\r\r\nOK\r\n")  # echo is on by default
        at.expect(rb"^\r\nRDY\r\n\r\n\+CPIN: READY\r\n")  # reported once trained
        text = at.ok("AT+CGMR")
        assert text == 'AT+CGMR\r\r\n+CGMR: "AirM2M_Air724UG_V409_LTE_AT"\r\n'
        at.ok("ATE0")
        assert at.ok("AT+CSQ") == "\r\n+CSQ: 24,99\r\n"


def test_identity_and_network_queries(port):
    assert port.ok("AT+CGSN") == "\r\n862991419835241\r\n"  # bare IMEI (§4)
    assert port.ok("AT+ICCID") == "\r\n+ICCID: 89860117831003134201\r\n"
    assert port.ok("AT+CCID") == "\r\n89860117831003134201\r\n"
    assert port.ok("ATI") == "\r\nAirM2M_Air724UG_V409_LTE_AT\r\n"
    assert port.ok("AT+CPIN?") == "\r\n+CPIN: READY\r\n"
    assert port.ok("AT+CREG?") == "\r\n+CREG: 0,1\r\n"
    assert port.ok("AT+CEREG?") == "\r\n+CEREG: 0,1\r\n"
    assert port.ok("AT+CGATT?") == "\r\n+CGATT: 1\r\n"
    assert port.ok("AT+CFUN?") == "\r\n+CFUN: 1\r\n"
    assert re.fullmatch(
        r'\r\n\+CCLK: "\d\d/\d\d/\d\d,\d\d:\d\d:\d\d\+32"\r\n', port.ok("AT+CCLK?")
    )
    port.ok("AT+CREG=2")
    assert port.ok("AT+CREG?") == '\r\n+CREG: 2,1,"1863","0183db22",7\r\n'
    assert port.command("AT+CSQ=?")[1] == "OK"  # test form of a known command


def test_identity_options(start_sim):
    sim = start_sim(
        "--imei",
        "866714043075174",
        "--firmware",
        "AirM2M_Air724UG_V401881_LTE_AT",
        "--csq",
        "17",
        "--iccid",
        "89860000000000000001",
    )
    at = sim.port()
    at.train()
    at.ok("ATE0")
    assert at.ok("AT+CGSN") == "\r\n866714043075174\r\n"
    assert "V401881" in at.ok("AT+CGMR")
    assert at.ok("AT+CSQ") == "\r\n+CSQ: 17,99\r\n"
    assert at.ok("AT+ICCID") == "\r\n+ICCID: 89860000000000000001\r\n"


def test_unknown_commands_and_cmee(port):
    assert port.command("AT+NOSUCH")[1] == "ERROR"
    assert port.command("AT+CSQ?")[1] == "ERROR"  # no read form
    assert port.command("ATX")[1] == "ERROR"
    assert port.command("AT+SAPBR=0,1")[1] == "+CME ERROR: 3"
    port.ok("AT+CMEE=2")
    assert port.command("AT+SAPBR=0,1")[1] == "+CME ERROR: operation not allowed"
    port.ok("AT+CMEE=0")
    assert port.command("AT+SAPBR=0,1")[1] == "ERROR"
    port.send("hello")  # not a command: ignored
    port.ok("at+cmee=1")  # lower case is fine once trained
    assert port.command("AT+SAPBR=0,1")[1] == "+CME ERROR: 3"


def test_echo_backspace_and_crlf_terminator(sim):
    at = sim.port()
    at.train()
    at.write(b"AT+CSX\x08Q\r\n")
    at.expect(rb"AT\+CSX\x08Q\r\n\r\n\+CSQ: 24,99\r\n\r\nOK\r\n")
    at.write(b"AT;+CSQ\r")  # two commands on one line, one final result
    at.expect(rb"\r\n\+CSQ: 24,99\r\n\r\nOK\r\n")


def test_reset_reboots_and_forgets_settings(port):
    port.ok("AT+CMEE=0")
    port.ok("AT+RESET")
    port.expect(rb"\r\nRDY\r\n")  # the rate stays trained after a soft reboot
    port.expect(rb"\r\n\+CPIN: READY\r\n")
    text, final = port.command("AT+SAPBR=0,1")
    assert text.startswith("AT+SAPBR")  # echo is back on
    assert final == "+CME ERROR: 3"  # CMEE back to numeric


def test_cfun_cycle_and_reboot(port):
    port.ok("AT+CFUN=0")
    assert port.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"
    assert port.ok("AT+CREG?") == "\r\n+CREG: 0,0\r\n"
    assert port.ok("AT+CSQ") == "\r\n+CSQ: 99,99\r\n"
    port.ok("AT+CREG=1")
    assert "\r\n+CREG: 2\r\n" in port.ok("AT+CFUN=1")  # searching: URC before the OK
    port.expect(rb"\r\n\+CREG: 1\r\n")
    assert port.ok("AT+CGATT?") == "\r\n+CGATT: 1\r\n"
    port.ok("AT+CFUN=1,1")
    port.expect(rb"\r\nRDY\r\n")


def test_cpowd_needs_a_power_cycle(sim, port):
    port.send("AT+CPOWD=1")
    port.expect(rb"^\r\nNORMAL POWER DOWN\r\n")
    port.send("AT")
    assert port.quiet(0.3) == b""
    sim.ctl("power_cycle")
    port.train()
    port.expect(rb"\r\nRDY\r\n")


def test_sapbr_bearer(port):
    port.ok('AT+SAPBR=3,1,"CONTYPE","GPRS"')
    port.ok('AT+SAPBR=3,1,"APN","CMIOT"')
    assert port.command('AT+SAPBR=3,1,"APN","' + "x" * 51 + '"')[1] == "ERROR"
    assert port.ok("AT+SAPBR=2,1") == '\r\n+SAPBR: 1,3,"0.0.0.0"\r\n'
    port.ok("AT+SAPBR=1,1")
    assert port.command("AT+SAPBR=1,1")[1] == "+CME ERROR: 3"  # already open (§5.1)
    assert re.fullmatch(r'\r\n\+SAPBR: 1,1,"10\.\d+\.\d+\.\d+"\r\n', port.ok("AT+SAPBR=2,1"))
    assert "+SAPBR: APN,CMIOT" in port.ok("AT+SAPBR=4,1")
    port.ok("AT+SAPBR=0,1")
    assert port.command("AT+SAPBR=0,1")[1] == "+CME ERROR: 3"


def test_tcpip_context_commands(port):
    port.send("AT+CIPSTATUS")
    port.expect(rb"\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n")
    assert port.command("AT+CIICR")[1] == "+CME ERROR: 3"  # needs CSTT first
    port.ok("AT+CSTT")
    assert port.command("AT+CSTT")[1] == "+CME ERROR: 3"
    port.ok("AT+CIICR")
    port.send("AT+CIFSR")  # bare IP, no OK (§5.2)
    match = port.expect(rb"\r\n(10\.\d+\.\d+\.\d+)\r\n")
    assert port.quiet(0.2) == b""
    port.send("AT+CIPSTATUS")
    port.expect(rb"\r\nOK\r\n\r\nSTATE: IP STATUS\r\n")
    assert port.command("AT+CIPSHUT")[1] == "SHUT OK"
    assert port.ok("AT+CGACT?") == "\r\n+CGACT: 1,1\r\n"
    assert match.group(1).decode() in port.ok("AT+CGDCONT?")
    port.ok("AT+CGACT=0,1")
    assert port.ok("AT+CGATT?") == "\r\n+CGATT: 0\r\n"  # V1066: follows the default bearer
    port.ok("AT+CGACT=1,1")
    assert port.ok("AT+CGATT?") == "\r\n+CGATT: 1\r\n"


def test_ready_file_link_and_both_endpoints(start_sim, tmp_path):
    ready_file, link = tmp_path / "ready.json", tmp_path / "ttyAIR724"
    sim = start_sim("--ready-file", str(ready_file), "--link", str(link), pty=True)
    assert json.loads(ready_file.read_text()) == sim.ready
    assert os.path.realpath(link) == os.path.realpath(sim.ready["pty"])
    assert sim.ready["pid"] == sim.proc.pid
    tcp = sim.port()
    with serial.Serial(str(link), 115200, timeout=0) as ser:
        pty = AtPort(ser)
        tcp.train()
        pty.expect(rb"\r\nRDY\r\n")  # both endpoints are the same UART
        pty.send("AT+CGSN")
        tcp.expect(rb"\r\n862991419835241\r\n")
    sim.stop()
    assert not link.exists()


def test_realistic_profile_latencies_are_lower_bounds(start_sim):
    sim = start_sim(
        "--profile",
        "realistic",
        "--latency",
        "power_on=0.3",
        "--latency",
        "sim=0.4",
        "--latency",
        "attach=0.6",
    )
    assert sim.ready["profile"] == "realistic"
    at = sim.port()
    start = time.monotonic()
    at.train()
    at.expect(rb"\r\nRDY\r\n")
    at.expect(rb"\r\n\+CPIN: READY\r\n", timeout=5)
    assert time.monotonic() - start >= 0.3 + 0.4 - 0.05
    at.ok("ATE0")
    while at.ok("AT+CGATT?") != "\r\n+CGATT: 1\r\n":  # the host polls, as on the module
        assert time.monotonic() - start < 5
    assert time.monotonic() - start >= 0.3 + 0.6 - 0.05


def test_bad_arguments_fail_clearly():
    for args in (
        ["--listen", "tcp://10.1.2.3:0"],
        ["--dialect", "nosuch=1"],
        ["--resolve", "bad"],
        ["--latency", "boot=x"],
        ["--profile", "slow"],
    ):
        proc = subprocess.run([str(SIM), *args], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 2, args
        assert "error" in proc.stderr


def test_reboot_during_download_abandons_the_upload(sim, port):
    port.ok("AT+HTTPINIT")
    port.send("AT+HTTPDATA=100,10000")
    port.expect(rb"^\r\nDOWNLOAD\r\n")
    port.write(b"partial body")
    sim.ctl("reboot")
    port.expect(rb"\r\nRDY\r\n\r\n\+CPIN: READY\r\n")
    assert port.ok("AT+CGSN") == "AT+CGSN\r\r\n862991419835241\r\n"  # a command, not body
    assert port.command("AT+HTTPREAD")[1] == "ERROR"  # the HTTP session is gone too
