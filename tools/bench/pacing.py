"""Measure how ``air724-sim --baud N`` paces the UART: bytes/s in each direction vs line rate.

8N1 framing puts 10 bits on the wire per byte, so the bound is N/10 bytes/s. Module→host is
measured with a burst of ``garbage`` bytes (ctl), host→module with an ``AT+HTTPDATA`` upload.
An unpaced run (no ``--baud``) shows the emulator's own ceiling.

    python -m tools.bench.pacing --baud 115200 --bytes 50000 [--json]
"""

import argparse
import json
import socket
import subprocess
import sys
import time

from tools.emulator import control
from tools.sim.proc import ROOT


class Emulator:
    def __init__(self, baud):
        cmd = [sys.executable, "-m", "tools.emulator.cli", "--listen", "tcp://127.0.0.1:0"]
        cmd += ["--transcript", "none"] + (["--baud", str(baud)] if baud else [])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.ready = json.loads(self.proc.stdout.readline())
        host, port = self.ready["tcp"].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=120)
        self.buffer = b""

    def until(self, token):
        while token not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("emulator closed the connection")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(token)
        return head

    def command(self, line):
        self.sock.sendall(line.encode() + b"\r")
        self.until(b"\r\nOK\r\n")

    def close(self):
        self.sock.close()
        self.proc.terminate()
        self.proc.wait(10)


def measure(baud, size):
    emu = Emulator(baud)
    try:
        for _ in range(100):  # autobaud: `AT` until `OK`
            emu.sock.sendall(b"AT\r")
            emu.sock.settimeout(0.2)
            try:
                emu.until(b"\r\nOK\r\n")
                break
            except TimeoutError:
                continue
        emu.sock.settimeout(120)
        emu.until(b"+CPIN: READY\r\n")
        emu.command("ATE0")
        start = time.perf_counter()
        control.request(emu.ready["ctl"], "garbage", {"count": size})
        received = 0
        while received < size:
            received += len(emu.sock.recv(65536))
        down = time.perf_counter() - start
        emu.command("AT+HTTPINIT")
        emu.sock.sendall(f"AT+HTTPDATA={size},120000\r".encode())
        emu.until(b"DOWNLOAD\r\n")
        start = time.perf_counter()
        emu.sock.sendall(bytes(i % 251 for i in range(size)))
        emu.until(b"\r\nOK\r\n")
        up = time.perf_counter() - start
    finally:
        emu.close()
    return {"module_to_host": size / down, "host_to_module": size / up, "seconds": [down, up]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--bytes", type=int, default=50000, help="bytes per direction")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    bound = args.baud / 10
    paced = measure(args.baud, args.bytes)
    unpaced = measure(None, args.bytes)
    result = {
        "baud": args.baud,
        "bytes": args.bytes,
        "line_rate": bound,
        "paced": paced,
        "unpaced": unpaced,
        "ratio": {k: paced[k] / bound for k in ("module_to_host", "host_to_module")},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"line rate at {args.baud} baud, 8N1: {bound:.0f} bytes/s")
    for key, label in (("module_to_host", "module -> host"), ("host_to_module", "host -> module")):
        rate = paced[key]
        print(
            f"  {label}: {rate:9.0f} bytes/s = {rate / bound:6.1%} of line rate "
            f"({args.bytes} bytes; unpaced {unpaced[key]:.0f} bytes/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
