"""MicroPython: publish rate through lib/air724 alone (no session), for ``tools.bench``.

Connects to ``air724-sim --listen tcp://…`` (optionally paced with ``--baud``), brings up the
module's MQTT link with the credentials given, then publishes COUNT messages back to back
(each waits for its ``OK``, and for QoS1 its ``PUBACK``) and prints one line::

    bench throughput {"qos": 0, "count": 300, "us": 2600000, "first_us": …}

Its inputs come in a JSON file (a command-line argument of 256 characters or more crashes the
unix port: ``FATAL: uncaught NLR``), with the keys ``uart`` (``127.0.0.1:PORT``),
``client_id``, ``username``, ``password``, ``host``, ``port``, ``tls``, ``topic``, ``qos``,
``count``, ``payload`` and ``nodelay``. Run from the repository root with the cross-compiled
library (``make mpy``)::

    MICROPYPATH=.frozen:build/lib .venv/bin/micropython tools/bench/vm_throughput.py PLAN.json

``tools.bench throughput`` starts the emulator and the cloud and runs it.
"""

import asyncio
import json
import sys
import time

from air724 import Air724


async def bring_up(modem, plan):
    module = modem.module
    await module.sync(30000)
    await module.echo_off()
    for _ in range(100):
        if await module.attached():
            break
        await asyncio.sleep_ms(100)
    mqtt = modem.mqtt
    await mqtt.configure(plan["client_id"], plan["username"], plan["password"])
    await mqtt.connect(plan["host"], plan["port"], plan["tls"], True, 300, 30000)


async def main(path):
    with open(path) as f:
        plan = json.load(f)
    topic, qos, count = plan["topic"], plan["qos"], plan["count"]
    uart_host, _, uart_port = plan["uart"].rpartition(":")
    reader, writer = await asyncio.open_connection(uart_host, int(uart_port))
    if plan["nodelay"]:
        writer.s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
    modem = Air724(reader, writer)
    modem.start()
    await bring_up(modem, plan)
    publish = modem.mqtt.publish
    data = plan["payload"].encode()
    t0 = time.ticks_us()
    await publish(topic, data, qos)
    t1 = time.ticks_us()
    for _ in range(count - 1):
        await publish(topic, data, qos)
    t2 = time.ticks_us()
    total = time.ticks_diff(t2, t0)
    first = time.ticks_diff(t1, t0)
    fields = (qos, count, total, first)
    print('bench throughput {"qos": %d, "count": %d, "us": %d, "first_us": %d}' % fields)
    await modem.close()


asyncio.run(main(sys.argv[1]))
