"""The virtual board behaves like a MicroPython board to mpremote and to a terminal."""

import ast
import hashlib
import os
import select
import signal
import subprocess
import tty

from .conftest import BIN, write_files

BOOT = 'print("BOOT ran")\n'
MAIN_FOREVER = """import time
print("MAIN started")
n = 0
while True:
    n += 1
    time.sleep_ms(20)
"""


def test_exec_runs_code_with_a_boards_path(vboard):
    out = vboard.exec("import sys, asyncio; print(sys.path, 6 * 7, sys.platform)")
    path, answer, platform = out.rsplit(" ", 2)
    assert ast.literal_eval(path) == ["", ".frozen", "/lib"]
    assert (int(answer), platform.strip()) == (42, "linux")
    err = vboard.mpremote("exec", "1/0", check=False)
    assert err.returncode == 1 and "ZeroDivisionError" in err.stdout + err.stderr


def test_files_go_to_and_come_back_from_the_board_folder(vboard, tmp_path):
    data = os.urandom(3000) + b"\n\r\x00\x04\x03 end"
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    vboard.mpremote("fs", "mkdir", ":data", "+", "fs", "cp", str(local), ":data/blob.bin")
    assert (vboard.folder / "data" / "blob.bin").read_bytes() == data  # / is the board folder

    listing = vboard.mpremote("fs", "ls", ":data").stdout
    assert f"{len(data)} blob.bin" in " ".join(listing.split())
    digest = vboard.mpremote("fs", "sha256sum", ":data/blob.bin").stdout
    assert hashlib.sha256(data).hexdigest() in digest

    back = tmp_path / "back.bin"
    vboard.mpremote("fs", "cp", ":data/blob.bin", str(back))
    assert back.read_bytes() == data
    vboard.mpremote("fs", "rm", ":data/blob.bin", "+", "fs", "rmdir", ":data")
    assert not (vboard.folder / "data").exists()


def test_lib_folder_is_importable(vboard):
    write_files(vboard.folder, {"lib/vbpkg/__init__.py": "VALUE = 'from /lib'\n"})
    out = vboard.exec("import vbpkg; print(vbpkg.VALUE, vbpkg.__file__)")
    assert out.split() == ["from", "/lib", "/lib/vbpkg/__init__.py"]


def test_soft_reset_runs_boot_then_main_with_fresh_state(vboard):
    write_files(
        vboard.folder, {"boot.py": BOOT, "main.py": 'print("MAIN ran", "x" in globals())\n'}
    )
    with vboard.console() as con:
        con.friendly()
        con.send(b"x = 5\r")
        con.expect(b">>> ")
        con.send(b"\x04")  # Ctrl-D at an empty prompt: soft reset
        out = con.expect(b">>> ")
    text = out.decode()
    assert text.index("MPY: soft reboot") < text.index("BOOT ran") < text.index("MAIN ran False")
    assert 'Type "help()" for more information.' in text


def test_ctrl_c_interrupts_main_and_mpremote_takes_over(vboard):
    write_files(vboard.folder, {"boot.py": BOOT, "main.py": MAIN_FOREVER})
    with vboard.console() as con:
        con.friendly()
        con.send(b"\x04")
        con.expect(b"MAIN started\r\n")
        con.send(b"\x03")
        out = con.expect(b">>> ").decode()
        assert 'File "main.py", line' in out and "KeyboardInterrupt" in out
        con.send(b"n > 0\r")  # main.py's globals stay for the REPL, as on a board
        assert b"True" in con.expect(b">>> ")
        con.send(b"\x04")
        con.expect(b"MAIN started\r\n")  # running again
    # mpremote interrupts the running main.py itself (Ctrl-C) and gets a raw REPL.
    assert vboard.exec("print('over to mpremote')").strip() == "over to mpremote"


def test_hard_reset_restarts_the_vm(vboard):
    write_files(vboard.folder, {"boot.py": BOOT, "main.py": 'print("MAIN ran")\n'})
    vboard.exec("marker = 1", resume=True)
    assert vboard.exec("print('marker' in globals())", resume=True).strip() == "True"
    start = len(vboard.log_text())
    vboard.mpremote("resume", "reset")  # resume: no soft reset first
    after_boot = vboard.wait_log("BOOT ran", start)
    vboard.wait_log("MAIN ran", after_boot)
    assert "soft reboot" not in vboard.log_text()[start:]
    assert vboard.exec("print('marker' in globals())", resume=True).strip() == "False"
    with vboard.console() as con:
        con.friendly()
        con.send(b"import machine; machine.reset()\r")
        con.expect(b"BOOT ran\r\n")
        con.expect(b">>> ")


def test_sys_exit_soft_resets_and_raw_repl_survives(vboard):
    write_files(vboard.folder, {"boot.py": BOOT})
    with vboard.console() as con:
        con.send(b"\r\x03\x01")  # raw REPL, as mpremote enters it
        con.expect(b"raw REPL; CTRL-B to exit\r\n>")
        con.send(b"print('hi')\x04")
        assert con.expect(b">") == b"OKhi\r\n\x04\x04>"
        con.send(b"import sys\nsys.exit()\x04")
        out = con.expect(b"raw REPL; CTRL-B to exit\r\n>")
        assert b"MPY: soft reboot\r\nBOOT ran" in out  # raw mode: main.py is not run
        con.send(b"\x02")
        con.expect(b">>> ")


def test_friendly_repl_edits_continues_and_pastes(vboard):
    with vboard.console() as con:
        con.friendly()
        con.send(b"1 +\x7f* 7\r")  # backspace
        assert con.expect(b">>> ").endswith(b"7\r\n>>> ")
        con.send(b"for i in range(2):\rprint(i * 10)\r\r\r\r")
        out = con.expect(b">>> ")
        assert b"...     print(i * 10)" in out and b"0\r\n10\r\n" in out
        con.send(b"'ab' * 2\r")
        assert con.expect(b">>> ").endswith(b"'abab'\r\n>>> ")
        con.send(b"\x1b[A\r")  # up arrow: the last line again
        assert con.expect(b">>> ").endswith(b"'ab' * 2\r\n'abab'\r\n>>> ")
        con.send(b"\x05")  # paste mode: no auto-indent
        con.expect(b"=== ")
        con.send(b"def f():\r    return 'pasted'\r\x04")
        con.expect(b">>> ")
        con.send(b"f()\r")
        assert b"'pasted'" in con.expect(b">>> ")
        con.send(b"impo\t")
        con.expect(b"import ")
        con.send(b"\x03")
        con.expect(b">>> ")


def test_make_repl_is_mpremote_repl(vboard):
    master, slave = os.openpty()
    tty.setraw(slave)  # a terminal in raw mode from the start, as mpremote sets it
    cmd = [str(BIN / "mpremote"), "connect", vboard.port, "repl"]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        seen = b""

        def expect(text, timeout=10):
            nonlocal seen
            while text not in seen:
                ready, _, _ = select.select([master], [], [], timeout)
                assert ready, f"{text!r} not shown; got {seen!r}"
                seen += os.read(master, 4096)
            seen = seen[seen.index(text) + len(text) :]

        expect(b"Use Ctrl-] or Ctrl-x to exit this shell")
        os.write(master, b"\r")
        expect(b">>> ")
        os.write(master, b"print(6 * 7)\r")
        expect(b"42\r\n>>> ")
        os.write(master, b"\x1d")  # Ctrl-]: leave mpremote
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_heapsize_is_respected(start_vboard):
    total = "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())"
    from tools.sim.board import FIRMWARE_HEAP

    heap = int(FIRMWARE_HEAP.rstrip("k")) * 1024  # the default: the firmware's heap
    default = int(start_vboard(name="default").exec(total))
    assert heap - 8 * 1024 < default <= heap
    small = int(start_vboard("--heapsize", "64k", name="small").exec(total))
    assert 56 * 1024 < small <= 64 * 1024


def test_ready_file_and_a_vm_that_dies(start_vboard, tmp_path):
    ready = tmp_path / "port"
    board = start_vboard("--ready-file", str(ready))
    assert ready.read_text().strip() == board.port  # written before the port is printed
    write_files(board.folder, {"boot.py": BOOT})
    with board.console() as con:
        con.friendly()
        # Ctrl-C disabled: the unix port's SIGINT then ends the VM; the board comes back.
        con.send(b"import micropython; micropython.kbd_intr(-1)\r")
        con.expect(b">>> ")
        con.send(b"while True: pass\r\r")
        con.send(b"\x03")
        con.expect(b"the VM exited")
        con.expect(b"BOOT ran\r\n")
        con.expect(b">>> ")
    board.stop()
    assert not ready.exists()


def test_sigusr1_prints_the_host_stack_and_the_board_keeps_serving(vboard):
    vboard.proc.send_signal(signal.SIGUSR1)
    assert vboard.exec("print(6 * 7)").strip() == "42"
    vboard.stop()
    assert vboard.proc.returncode == 0
    assert "Current thread" in vboard.stderr and "in serve" in vboard.stderr


def test_a_vm_that_cannot_start_is_reported(tmp_path):
    cmd = [str(BIN / "vboard"), "--dir", str(tmp_path), "--heapsize", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "exited (status 1) before it was ready" in proc.stderr


def test_ctrl_c_racing_the_end_of_code_leaves_a_working_board(vboard):
    # mpremote's Ctrl-C often arrives just as short code ends; the board must stay in step.
    with vboard.console() as con:
        con.send(b"\r\x03\x01")
        con.expect(b"raw REPL; CTRL-B to exit\r\n>")
        for i in range(100):
            con.send(b"n = %d\x04\x03" % i)
            con.expect(b"\x04>")
        con.send(b"print('n', n)\x04")
        out = con.expect(b"\x04>")
    assert out.startswith(b"OKn ") and b"Traceback" not in out
    assert "VM exited" not in vboard.log_text()
