"""MicroPython: heap and time per downlink and per publish through the library (figure 8).

Runs ``air724.Air724`` (and, for the scaling rows, ``aliyun.thing.Thing``) over the in-memory
UART shim (tests_host/portable/fakes.py), with the collector disabled, over two batch sizes so
that fixed costs cancel: per item = (cost(N2) - cost(N1)) / (N2 - N1).

- ``downlink``: one real ``+MSUB: "<topic>",<n> byte,<payload>`` fed alone, the next only once
  the application callback had the previous one; with the shim giving all bytes at once
  (``chunk`` 0) or one byte per read (``chunk`` 1, the worst case).
- ``scaling``: the same downlink routed by ``Thing.dispatch`` with 1, 10 or 50 subscriptions,
  one of which matches.
- ``publish``: ``MQTTClient.publish`` QoS0, the device end answering ``OK`` (and ``>`` for
  ``AT+MPUBEX``) at once.
- ``harness``: the shim and the event wait alone, per downlink (already in every figure).

The inputs come in a JSON file (a long command-line argument crashes the unix port)::

    MICROPYPATH=.frozen:build/lib:tests_host/portable .venv/bin/micropython -X heapsize=8m \\
        tools/bench/vm_costs.py PLAN.json

prints ``bench costs {…}`` with bytes and µs per item for every case in the plan.
"""

import asyncio
import gc
import json
import sys
import time

from fakes import FakeStream

from air724 import Air724
from aliyun.alink import Topics
from aliyun.thing import Thing

PK, DN = "a1B2c3D4e5F", "bench"
TOPIC = "/%s/%s/user/get" % (PK, DN)


def payload_of(size):
    """A JSON text of ``size`` bytes (what a downlink or a property post carries)."""
    head = b'{"d":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


class Arrived:
    """The application callback: counts and wakes the feeding loop."""

    def __init__(self):
        self.n = 0
        self.ev = asyncio.Event()

    def __call__(self, topic, payload):
        self.n += 1
        self.ev.set()


async def timed(n, stream, line, ev):
    """(bytes allocated, us) for ``n`` rounds of feeding ``line`` and awaiting ``ev``, the
    collector off."""
    gc.collect()
    gc.disable()
    a0, t0 = gc.mem_alloc(), time.ticks_us()
    for _ in range(n):
        ev.clear()
        stream.feed(line)
        await ev.wait()
    a1, t1 = gc.mem_alloc(), time.ticks_us()
    gc.enable()
    return a1 - a0, time.ticks_diff(t1, t0)


async def downlinks(n, size, chunk=0, subscriptions=0):
    """Heap bytes and µs for ``n`` downlinks, each fed alone and waited for."""
    stream = FakeStream(chunk=chunk, record=False)
    modem = Air724(stream, data_max=8192)
    arrived = Arrived()
    if subscriptions:
        thing = Thing(Topics(PK, DN), lambda level, text: None, time.ticks_ms)
        for i in range(subscriptions - 1):
            thing.subscribe("/%s/%s/user/other%d/+" % (PK, DN, i), arrived)
        thing.subscribe(TOPIC, arrived)
        modem.mqtt.on_message(thing.dispatch)
    else:
        modem.mqtt.on_message(arrived)
    modem.start()
    await asyncio.sleep(0)
    line = b'\r\n+MSUB: "%s",%d byte,%s\r\n' % (TOPIC.encode(), size, payload_of(size))
    ev = arrived.ev
    cost = await timed(n, stream, line, ev)
    await modem.close()
    assert arrived.n == n
    return cost


async def harness(n, size, chunk=0):
    """The shim and the event wait alone: a reader task that sets the event per line."""
    stream = FakeStream(chunk=chunk, record=False)
    line = b'\r\n+MSUB: "%s",%d byte,%s\r\n' % (TOPIC.encode(), size, payload_of(size))
    ev = asyncio.Event()
    buf = memoryview(bytearray(1024))

    async def reader():
        got = 0
        while True:
            k = await stream.readinto(buf)
            if not k:
                return
            got += k
            if got >= len(line):
                got -= len(line)
                ev.set()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    cost = await timed(n, stream, line, ev)
    stream.eof()
    await task
    return cost


class Answering(FakeStream):
    """The device end of publishes: ``OK`` after each command (``>`` first for MPUBEX, then
    ``OK`` once its payload arrived)."""

    def __init__(self):
        super().__init__(record=False)
        self.expect = 0  # MPUBEX payload bytes still to come
        self.mpubex = 0  # the length of the MPUBEX command just written
        self.on_write = self.answer

    def answer(self, data):
        if self.expect:
            self.expect -= len(data)
            if self.expect <= 0:
                self.expect = 0
                self.feed(b"\r\nOK\r\n")
        elif data == b"\r":
            if self.mpubex:
                self.expect = self.mpubex
                self.feed(b"\r\n>")
            else:
                self.feed(b"\r\nOK\r\n")
        elif data.startswith(b"AT+MPUBEX="):
            self.mpubex = int(bytes(data).rsplit(b",", 1)[1])
        else:
            self.mpubex = 0


async def publishes(n, size):
    stream = Answering()
    modem = Air724(stream, data_max=8192)
    modem.start()
    client = modem.mqtt
    data = payload_of(size)
    topic = "/sys/%s/%s/thing/event/property/post" % (PK, DN)
    await client.publish(topic, data, 0)  # warm up: the command set's first use
    gc.collect()
    gc.disable()
    a0, t0 = gc.mem_alloc(), time.ticks_us()
    for _ in range(n):
        await client.publish(topic, data, 0)
    a1, t1 = gc.mem_alloc(), time.ticks_us()
    gc.enable()
    await modem.close()
    return a1 - a0, time.ticks_diff(t1, t0)


async def per_item(counts, run, *args):
    n1, n2 = counts
    b1, u1 = await run(n1, *args)
    b2, u2 = await run(n2, *args)
    return {"bytes": (b2 - b1) / (n2 - n1), "us": u2 / n2}


async def main(path):
    with open(path) as f:
        plan = json.load(f)
    out = {}
    counts, few = plan["counts"], plan["bytewise_counts"]
    for size in plan["sizes"]:
        out["downlink %d" % size] = await per_item(counts, downlinks, size, 0)
        out["publish %d" % size] = await per_item(counts, publishes, size)
        out["harness %d" % size] = await per_item(counts, harness, size, 0)
    for size in plan["bytewise_sizes"]:  # every read allocates: heap for n2 of them
        out["downlink %d bytewise" % size] = await per_item(few, downlinks, size, 1)
        out["harness %d bytewise" % size] = await per_item(few, harness, size, 1)
    for count in plan["subscriptions"]:
        size = plan["scaling_size"]
        out["subscriptions %d" % count] = await per_item(counts, downlinks, size, 0, count)
    print("bench costs " + json.dumps(out))


asyncio.run(main(sys.argv[1]))
