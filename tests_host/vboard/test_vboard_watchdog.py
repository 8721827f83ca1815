"""The RP2040's watchdog on the virtual board: a stand-in that bites like it, and a firmware
that keeps the board usable once the user stops it (Ctrl-C), also through ``make flash``.

The stand-in (tools/vboard/vm_machine.py) allows at most 8388 ms, cannot be stopped, survives a
soft reset and bites with a hard reset. The firmware on the vboard runs the RP2040's watchdog
code (boards/unix.py uses boards/mcu.py when ``machine.WDT`` exists)."""

import json

from tools import deploy

from .conftest import ROOT
from .test_vboard_deploy import CONFIG

BITE = b"vboard: watchdog reset (not fed for "


def test_the_stand_in_bites_like_the_rp2040s(vboard):
    with vboard.console() as con:
        con.friendly()
        con.send(b"import machine\r")
        con.expect(b">>> ")
        con.send(b"machine.WDT(timeout=9000)\r")
        assert b"ValueError: timeout exceeds 8388" in con.expect(b">>> ")
        con.send(b"wdt = machine.WDT(timeout=1500)\r")
        con.expect(b">>> ")
        con.send(b"\x04")  # a soft reset does not stop it
        con.expect(b"MPY: soft reboot\r\n")
        out = con.expect(BITE + b"1500 ms)\r\n", timeout=10)
        assert b"Traceback" not in out
        con.expect(b"MicroPython")  # a hard reset: a fresh board, the watchdog off
        con.friendly()
        con.send(b"import machine; wdt = machine.WDT(timeout=1000)\r")
        assert b"Error" not in con.expect(b">>> ")
        # A timer that feeds it keeps it quiet (what the firmware does once stopped) ...
        con.send(b"t = machine.Timer(-1, mode=machine.Timer.PERIODIC, period=200, ")
        con.send(b"callback=lambda t: wdt.feed())\r")
        assert b"Error" not in con.expect(b">>> ")
        con.send(b"import time; time.sleep(3); print('still' + 'here')\r")
        con.expect(b"stillhere\r\n>>> ", timeout=10)
        # ... and once it stops, the watchdog bites.
        con.send(b"t.deinit()\r")
        con.expect(BITE + b"1000 ms)\r\n", timeout=10)
    assert vboard.log_text().count(BITE.decode()) == 2


def _running_firmware(board, tmp_path, listener):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**CONFIG, "uart": {"url": listener}}))
    start = len(board.log_text())
    deploy.flash(board.port, config, root=ROOT, reset="soft", log=lambda s: None)
    board.wait_log("I firmware start (unix)", start, timeout=30)
    return config


def test_ctrl_c_leaves_a_usable_repl_although_the_watchdog_runs(vboard, tmp_path, listener):
    _running_firmware(vboard, tmp_path, listener)
    with vboard.console() as con:
        con.send(b"\x03")  # the user's stop
        con.expect(b" I stopped\r\n", timeout=10)
        con.expect(b">>> ")
        # REPL experiments longer than the 8.4 s hardware limit: no reset in the middle.
        con.send(b"import time; x = 42; time.sleep(11); print('x', x)\r")
        out = con.expect(b"x 42\r\n>>> ", timeout=30)
    assert BITE not in out
    assert BITE.decode() not in vboard.log_text()


def test_flash_onto_a_running_board_stops_the_firmware_and_is_not_reset(
    vboard, tmp_path, listener
):
    config = _running_firmware(vboard, tmp_path, listener)
    start = len(vboard.log_text())
    counts = deploy.flash(vboard.port, config, root=ROOT, reset="none", log=lambda s: None)
    assert counts["copied"] == 0  # nothing changed: the same files
    vboard.wait_log(" I stopped", start)  # the firmware was stopped, not soft-reset
    assert "soft reboot" not in vboard.log_text()[start:]
    # Well past the hardware limit after the flash: still the same board, nobody reset it.
    out = vboard.exec("import time; time.sleep(11); print('alive')", resume=True)
    assert out.strip() == "alive"
    assert BITE.decode() not in vboard.log_text()
