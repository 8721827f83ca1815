"""Watch the AT transcript of a real module: a pty in front of a serial device.

``python -m tools.vboard.tap /dev/ttyUSB0 [--baud 115200] [--transcript FILE]`` opens the
device (8N1, raw), creates a pty and prints its path as the first stdout line; every byte is
passed through both ways and each line is written, time-stamped, to the transcript (stderr by
default): ``-->`` what the firmware sent, ``<--`` what the module answered, the
``AT+MCONFIG`` password masked (the emulator's transcript format, tools/emulator/transcript.py).
Give the printed pty as the firmware's ``uart.url``. Ctrl-C (SIGINT) or SIGTERM stops it.
"""

import argparse
import os
import select
import selectors
import signal
import sys
import tty

import serial

from tools.emulator.transcript import Transcript


def serve(device, baud: int, out, on_ready=print) -> None:
    """Pass bytes between ``device`` and a new pty until SIGINT/SIGTERM."""
    port = serial.Serial(device, baud, bytesize=8, parity="N", stopbits=1, timeout=0)
    master, slave = os.openpty()
    tty.setraw(slave)  # kept open: the pty stays usable while the firmware reopens it
    os.set_blocking(master, False)
    transcript = Transcript(out)
    stop_r, stop_w = os.pipe()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: os.write(stop_w, b"x"))
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, "host")
    sel.register(port.fileno(), selectors.EVENT_READ, "module")
    sel.register(stop_r, selectors.EVENT_READ, "stop")
    on_ready(os.ttyname(slave))
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "stop":
                    return
                if key.data == "host":
                    try:
                        data = os.read(master, 4096)
                    except (BlockingIOError, OSError):
                        continue
                    port.write(data)
                    transcript.host(data)
                else:
                    data = port.read(4096)
                    if data:
                        _write_all(master, data)
                        transcript.module(data)
    finally:
        transcript.close()
        sel.close()
        port.close()
        for fd in (master, slave, stop_r, stop_w):
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 0.1)  # the pty is full: wait until it takes more
        except OSError:
            return


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vboard.tap", description=__doc__)
    parser.add_argument("device", help="the serial device of the module, e.g. /dev/ttyUSB0")
    parser.add_argument("--baud", type=int, default=115200, help="default 115200 (8N1)")
    parser.add_argument("--transcript", help="write the transcript here (default: stderr)")
    args = parser.parse_args(argv)
    out = open(args.transcript, "a", buffering=1) if args.transcript else sys.stderr
    try:
        serve(args.device, args.baud, out, on_ready=lambda path: print(path, flush=True))
    except serial.SerialException as exc:
        print(f"tap: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stderr:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
