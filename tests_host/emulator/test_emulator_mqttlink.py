"""The emulator's MQTT link in-process: only its loop thread writes the TLS socket (an SSL
connection written and read from two threads at once is undefined in OpenSSL and can abort the
process)."""

import asyncio
import threading

from tools.emulator.mqttlink import MqttLink
from tools.emulator.net import Network, parse_rule

from .support import MQTT_HOST

TOPIC = "/a1mxL3s6Z7m/862991419835241/user/update"


class SendThreads:
    """A Network whose TLS sockets note the name of every thread that writes them."""

    def __init__(self, broker, ca):
        self.network = Network([parse_rule(f"{MQTT_HOST}=127.0.0.1:{broker.tls_port}")], ca=ca)
        self.names = []

    def open(self, host, port, tls, suites="host"):
        sock = self.network.open(host, port, tls, suites)
        real_send = sock.send

        def send(data, *flags):
            self.names.append(threading.current_thread().name)
            return real_send(data, *flags)

        sock.send = send
        return sock


async def _exchange(network):
    events = asyncio.Queue()
    link = MqttLink(network, MQTT_HOST, 1883, True, lambda _link, *event: events.put_nowait(event))

    async def next_event(kind):
        while True:
            event = await asyncio.wait_for(events.get(), 5)
            if event[0] == kind:
                return event

    await link.open()
    link.connect("mqttlink-test", "", "", None, True, 60)
    assert (await next_event("connack"))[1] == 0
    # Host actions from the asyncio thread, as AT+MSUB / AT+MPUB / AT+MDISCONNECT make them.
    sub_mid = link.subscribe(TOPIC, 1)
    pub_mid = link.publish(TOPIC, b"hello", 1, False)
    assert (await next_event("suback"))[1] == sub_mid
    assert (await next_event("puback"))[1] == pub_mid
    assert (await next_event("message"))[1:] == (TOPIC, b"hello", 1)
    link.disconnect()
    assert (await next_event("closed"))[1] is True


def test_only_the_loop_thread_writes_the_socket(broker, certs):
    network = SendThreads(broker, certs["ca"])
    asyncio.run(_exchange(network))
    # CONNECT, SUBSCRIBE, PUBLISH, DISCONNECT at least; all queued for the loop thread.
    assert len(network.names) >= 4
    assert set(network.names) == {"air724-mqtt"}
