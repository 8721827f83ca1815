"""Heap allocated by the AT engine per URC line and per command round trip (MicroPython).

Runs the engine (lib/atmodem) over the in-memory UART shim (tests_host/portable/fakes.py) and
measures ``gc.mem_alloc()`` with the collector disabled, over two batch sizes so that fixed
costs cancel: bytes per item = (alloc(N2) - alloc(N1)) / (N2 - N1). The shim's own share
(its ``readinto``) is measured alone and reported beside the total.

From the repository root::

    MICROPYPATH=.frozen:lib:tests_host/portable .venv/bin/micropython tools/bench/vm_atmodem.py

(``.frozen`` keeps the VM's frozen asyncio on the path.) It also runs on CPython
(``.venv/bin/python tools/bench/vm_atmodem.py``), which has no ``gc.mem_alloc`` and reports
timings only.
"""

import asyncio
import gc
import sys
import time

if sys.implementation.name != "micropython":  # CPython: lib/, the shim and const()
    import os

    _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path[:0] = [_root, os.path.join(_root, "lib"), os.path.join(_root, "tests_host/portable")]
    import tools  # noqa: F401 - installs the micropython.const stand-in

from fakes import FakeStream  # noqa: E402

from atmodem import ATChannel  # noqa: E402

URC = b"\r\n+CREG: 1,5\r\n"
REPLY = b"\r\nOK\r\n"
N1, N2 = 50, 250


def mem_alloc():
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0


def ticks_us():
    return time.ticks_us() if hasattr(time, "ticks_us") else int(time.monotonic() * 1e6)


class Counter:
    def __init__(self):
        self.n = 0
        self.target = 0
        self.ev = asyncio.Event()

    def __call__(self, line):
        self.n += 1
        if self.n == self.target:
            self.ev.set()


async def urc_batch(n):
    """Alloc and time for the engine to read and dispatch n URC lines fed at once."""
    stream = FakeStream()
    ch = ATChannel(stream)
    count = Counter()
    ch.add_urc(b"+CREG:", count)
    ch.start()
    await asyncio.sleep(0)  # the reader is waiting for data
    data = URC * n
    stream.feed(data)
    count.target = n
    gc.collect()
    gc.disable()
    a0, t0 = mem_alloc(), ticks_us()
    await count.ev.wait()
    a1, t1 = mem_alloc(), ticks_us()
    gc.enable()
    await ch.close()
    assert count.n == n
    return a1 - a0, t1 - t0


async def shim_batch(n):
    """Alloc of the shim alone delivering the same bytes into a buffer (readinto)."""
    stream = FakeStream()
    buf = bytearray(1024)
    mv = memoryview(buf)
    data = URC * n
    stream.feed(data)
    stream.eof()
    gc.collect()
    gc.disable()
    a0 = mem_alloc()
    got = 0
    while True:
        k = await stream.readinto(mv[0:])
        if not k:
            break
        got += k
    a1 = mem_alloc()
    gc.enable()
    assert got == len(data)
    return a1 - a0


def answering_stream():
    stream = FakeStream(record=False)

    def answer(data):
        if data == b"\r":  # the engine writes the command, then its CR
            stream.feed(REPLY)

    stream.on_write = answer
    return stream


async def shim_command_batch(n):
    """Alloc of the shim alone for n command writes and reply reads (no engine, no waits)."""
    stream = answering_stream()
    mv = memoryview(bytearray(1024))
    gc.collect()
    gc.disable()
    a0 = mem_alloc()
    for _ in range(n):
        stream.write(b"AT")
        stream.write(b"\r")
        await stream.readinto(mv[0:])
    a1 = mem_alloc()
    gc.enable()
    return a1 - a0


async def command_batch(n):
    """Alloc and time of n ``AT`` -> ``OK`` round trips (the device end answers at once)."""
    stream = answering_stream()
    ch = ATChannel(stream)
    ch.start()
    assert await ch.command(b"AT", 1000) == [b"OK"]  # warm up
    gc.collect()
    gc.disable()
    a0, t0 = mem_alloc(), ticks_us()
    for _ in range(n):
        await ch.command(b"AT", 1000)
    a1, t1 = mem_alloc(), ticks_us()
    gc.enable()
    await ch.close()
    return a1 - a0, t1 - t0


def per_item(f1, f2):
    return (f2 - f1) / (N2 - N1)


async def main():
    u1, _ = await urc_batch(N1)
    u2, ut = await urc_batch(N2)
    s1 = await shim_batch(N1)
    s2 = await shim_batch(N2)
    c1, _ = await command_batch(N1)
    c2, ct = await command_batch(N2)
    k1 = await shim_command_batch(N1)
    k2 = await shim_command_batch(N2)
    shim = per_item(s1, s2)
    print("runtime:", sys.implementation.name)
    if hasattr(gc, "mem_alloc"):
        print("bytes allocated per URC line dispatched: %.1f" % per_item(u1, u2))
        print("  of which the shim's readinto: %.1f" % shim)
        print("bytes allocated per AT->OK round trip:   %.1f" % per_item(c1, c2))
        print("  of which the shim's write/readinto: %.1f" % per_item(k1, k2))
    print("time per URC line: %d us" % (ut // N2))
    print("time per round trip: %d us" % (ct // N2))
    if hasattr(sys.implementation, "_mpy"):
        import micropython

        micropython.mem_info()


asyncio.run(main())
