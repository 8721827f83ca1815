"""MicroPython: publish rate through lib/air724 alone (no session), for ``tools.bench``.

Connects to ``air724-sim --listen tcp://…`` (optionally paced with ``--baud``), brings up the
module's MQTT link with the credentials given, then publishes COUNT messages back to back
(each waits for its ``OK``, and for QoS1 its ``PUBACK``) and prints one line::

    bench throughput {"qos": 0, "count": 300, "us": 2600000, "first_us": …}

Run from the repository root with the cross-compiled library (``make mpy``)::

    MICROPYPATH=.frozen:build/lib .venv/bin/micropython tools/bench/vm_throughput.py \\
        127.0.0.1:PORT CLIENT_ID USERNAME PASSWORD HOST PORT TLS TOPIC QOS COUNT PAYLOAD

``tools.bench throughput`` starts the emulator and the cloud and runs it.
"""

import asyncio
import sys
import time

from air724 import Air724


async def bring_up(modem, creds):
    client_id, username, password, host, port, tls = creds
    module = modem.module
    await module.sync(30000)
    await module.echo_off()
    for _ in range(100):
        if await module.attached():
            break
        await asyncio.sleep_ms(100)
    mqtt = modem.mqtt
    await mqtt.configure(client_id, username, password)
    await mqtt.connect(host, port, tls, True, 300, 30000)


async def main(argv):
    uart, client_id, username, password, host, port, tls, topic, qos, count, payload = argv[:11]
    nodelay = argv[11:] == ["nodelay"]
    uart_host, _, uart_port = uart.rpartition(":")
    qos, count = int(qos), int(count)
    reader, writer = await asyncio.open_connection(uart_host, int(uart_port))
    if nodelay:
        writer.s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
    modem = Air724(reader, writer)
    modem.start()
    creds = (client_id, username, password, host, int(port), tls == "1")
    await bring_up(modem, creds)
    publish = modem.mqtt.publish
    data = payload.encode()
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


asyncio.run(main(sys.argv[1:]))
