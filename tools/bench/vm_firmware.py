"""MicroPython: the firmware (firmware/main.py, unchanged) plus a small benchmark driver.

``tools.bench`` cross-compiles this file into the board folder as ``bench_fw.mpy`` and runs
``micropython -X heapsize=H -m bench_fw MODE [ARGS]`` there, instead of ``main.py``. The
driver hooks into ``app.App`` only (``start`` and ``summary``), then calls ``main.main()``:

- ``scenario N SAMPLE_MS COLLECT``: once online, publish N/2 QoS1 messages ``{"b":i}`` on
  ``user/update`` through the session (one every ``_PACE_MS``, at most 4 waiting in the
  outbox), log ``bench phase 1 acked`` when the outbox is empty, wait for the link to drop and
  come back, publish the other half, log ``bench phase 2 acked``. With SAMPLE_MS > 0 a task
  samples ``gc.mem_alloc()`` every SAMPLE_MS (after a ``gc.collect()`` when COLLECT is 1); the
  peaks go into the ``stats`` line printed on Ctrl-C (``bench_peak``, ``bench_live_peak``,
  ``bench_samples``).
- ``latency``: every ``user/get`` callback prints ``bench rx <epoch µs> <payload>`` first.
"""

import asyncio
import gc
import sys
import time

import app
import main

# The cloud takes at most 10 QoS1 messages a second from a device (Aliyun's limit, enforced by
# the local cloud, tools/cloud/limits.py) and drops the rest: the burst leaves room for the echoes.
_PACE_MS = 250
_MODE = sys.argv[1] if len(sys.argv) > 1 else ""
_args = [int(a) for a in sys.argv[2:]]
_peak = [0, 0, 0]  # raw mem_alloc peak, peak after a collection, samples
_start = app.App.start
_summary = app.App.summary
_on_user_get = app.App._on_user_get


async def _sample(every_ms, collect):
    while True:
        used = gc.mem_alloc()
        if used > _peak[0]:
            _peak[0] = used
        if collect:
            gc.collect()
            used = gc.mem_alloc()
            if used > _peak[1]:
                _peak[1] = used
        _peak[2] += 1
        await asyncio.sleep_ms(every_ms)


async def _online(session, state):
    while session.online != state:
        await asyncio.sleep_ms(10)


async def _burst(application, first, end):
    session = application.session
    topic = session.topics.user("update")
    for i in range(first, end):
        while len(session.outbox) >= 4:
            await asyncio.sleep_ms(5)
        await session.publish(topic, '{"b":%d}' % i, 1)
        await asyncio.sleep_ms(_PACE_MS)
    while len(session.outbox):
        await asyncio.sleep_ms(5)


async def _scenario(application, count):
    session = application.session
    await _online(session, True)
    await _burst(application, 0, count // 2)
    application.log("info", "bench phase 1 acked")
    await _online(session, False)
    await _online(session, True)
    await _burst(application, count // 2, count)
    application.log("info", "bench phase 2 acked")


def start(self):
    _start(self)
    if _MODE == "scenario":
        count, every_ms, collect = _args
        asyncio.create_task(_scenario(self, count))
        if every_ms > 0:
            asyncio.create_task(_sample(every_ms, collect))


def summary(self):
    stats = _summary(self)
    if _peak[2]:
        stats["bench_peak"] = _peak[0]
        stats["bench_live_peak"] = _peak[1]
        stats["bench_samples"] = _peak[2]
    return stats


def on_user_get(self, topic, payload):
    now = time.time_ns() // 1000
    print("bench rx %d %s" % (now, bytes(payload).decode()))
    _on_user_get(self, topic, payload)


app.App.start = start
app.App.summary = summary
if _MODE == "latency":
    app.App._on_user_get = on_user_get
main.main()
