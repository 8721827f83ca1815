"""The built-in MQTT client against a real local broker (the seed's MQTT flow and the rest)."""

import threading
import time

import paho.mqtt.client as paho
import serial

from .support import BAD_PASSWORD, MQTT_HOST, AtPort

CLIENT_ID = "862991419835241"
USER, TOKEN = "jlvFGfQ11FIGOEJ4RoZU001013ba00", "613d9cb0946741df98db1c50255a9dd0"
TOPIC_GET = "/a1mxL3s6Z7m/862991419835241/user/get"
TOPIC_UPDATE = "/a1mxL3s6Z7m/862991419835241/user/update"


def outside_publish(broker, topic, payload, qos=1):
    """Another client publishes through the broker (like the Aliyun console)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="outside")
    client.connect("127.0.0.1", broker.tcp_port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


class Subscriber:
    """A paho client that collects what arrives on a topic filter."""

    def __init__(self, broker, topic):
        self.messages, self.event = [], threading.Event()
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sub-{id(self)}")
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.tcp_port)
        self.client.loop_start()
        self.client.subscribe(topic, 1)
        assert subscribed.wait(5)

    def _message(self, _client, _userdata, msg):
        self.messages.append((msg.topic, msg.payload))
        self.event.set()

    def wait(self, timeout=5):
        assert self.event.wait(timeout), "no message"
        return self.messages[-1]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def connect(at, client_id=CLIENT_ID, user=USER, password=TOKEN, host=MQTT_HOST, tls=True):
    at.ok(f'AT+MCONFIG="{client_id}","{user}","{password}"')
    at.ok(f'AT+{"SSL" if tls else ""}MIPSTART="{host}",1883')
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MCONNECT=1,300")
    at.expect(rb"\r\nCONNACK OK\r\n")


def subscribe(at, topic=TOPIC_GET, qos=0):
    at.ok(f'AT+MSUB="{topic}",{qos}')
    at.expect(rb"\r\nSUBACK\r\n")


def test_seed_mqtt_flow_over_tls_on_the_pty(start_sim, resolve_args, broker, recorder):
    """Seed §四/§五: MCONFIG, SSLMIPSTART, MCONNECT, MSUB, MPUB QoS0/1, a downlink as +MSUB."""
    sim = start_sim(*resolve_args, listen=False)
    with serial.Serial(sim.ready["pty"], 115200, timeout=0) as ser:
        at = AtPort(ser)
        at.train()
        at.expect(rb"\+CPIN: READY\r\n")
        at.ok("ATE0")
        at.ok(
            'AT+MCONFIG="862991419835241","jlvFGfQ11FIGOEJ4RoZU001013ba00",'
            '"613d9cb0946741df98db1c50255a9dd0"'
        )
        at.ok('AT+SSLMIPSTART="b0FMK1Ga5cp.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883')
        at.expect(rb"^\r\nCONNECT OK\r\n")
        assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :2\r\n"
        at.ok("AT+MCONNECT=1,300")
        at.expect(rb"^\r\nCONNACK OK\r\n")
        assert (CLIENT_ID, USER, TOKEN) in recorder.connects
        assert at.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :1\r\n"
        at.ok('AT+MSUB="/b0FMK1Ga5cp/862991419835241/user/get", 0')
        at.expect(rb"^\r\nSUBACK\r\n")
        at.ok("AT+MQTTMSGSET=0")
        at.ok('AT+MPUB="/b0FMK1Ga5cp/862991419835241/user/update",0,0,"HelloWorld"')
        recorder.wait_for("messages", lambda m: m[1].endswith("update") and m[2] == b"HelloWorld")
        at.ok(
            'AT+MPUB="/b0FMK1Ga5cp/862991419835241/user/update",1,0,'
            '"{\\22id\\22:\\221\\22}\\0D\\0A\\5Cend"'
        )
        at.expect(rb"^\r\nPUBACK\r\n")
        received = recorder.wait_for("messages", lambda m: m[2].startswith(b'{"id"'))
        assert received == (
            CLIENT_ID,
            "/b0FMK1Ga5cp/862991419835241/user/update",
            b'{"id":"1"}\r\n\\end',
            1,
        )
        outside_publish(broker, "/b0FMK1Ga5cp/862991419835241/user/get", b"Hello World")
        at.expect(
            rb'^\r\n\+MSUB: "/b0FMK1Ga5cp/862991419835241/user/get",11 byte,Hello World'
            rb"\r\n"
        )
        tricky = b'a,"b"\r\nOK\r\n+MSUB: 0\r\n\xe4\xbd\xa0'
        outside_publish(broker, "/b0FMK1Ga5cp/862991419835241/user/get", tricky)
        at.expect(rb'\+MSUB: "/b0FMK1Ga5cp/862991419835241/user/get",%d byte,' % len(tricky))
        assert at.read_exact(len(tricky)) == tricky  # counted, raw bytes (§7.3)
        at.expect(rb"^\r\n")


def test_plain_tcp_status_and_disconnect(port, recorder):
    port.ok('AT+MCONFIG=tcp-client,"",""')  # quotes optional, empty credentials
    port.ok('AT+MIPSTART="mqtt-tcp.example.com","1883"')
    port.expect(rb"\r\nCONNECT OK\r\n")
    port.send('AT+MIPSTART="mqtt-tcp.example.com",1883')
    port.expect(rb"^\r\nOK\r\n\r\nALREADY CONNECT\r\n")
    assert port.command('AT+MSUB="a",0')[1] == "ERROR"  # MCONNECT first
    port.ok("AT+MCONNECT=0,60")
    port.expect(rb"\r\nCONNACK OK\r\n")
    assert ("tcp-client", None, None) in recorder.connects
    assert port.command("AT+MCONNECT=0,60")[1] == "ERROR"  # already connected
    port.ok("AT+MDISCONNECT")
    assert port.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    assert port.command("AT+MDISCONNECT")[1] == "+CME ERROR: 767"
    assert port.command("AT+MIPCLOSE")[1] == "+CME ERROR: 767"
    assert port.command("AT+MCONNECT=1,60")[1] == "+CME ERROR: 767"
    assert port.quiet(0.2) == b""  # a clean disconnect prints no CLOSED


def test_connect_failures(port):
    port.ok('AT+MCONFIG="c1","u","p"')
    port.ok('AT+MIPSTART="nowhere.example.com",1883')
    port.expect(rb"^\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n")
    port.ok('AT+SSLMIPSTART="plain.example.com",1883')  # TLS to a server that is not TLS
    port.expect(rb"^\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n")
    assert port.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    assert port.command('AT+MIPSTART="x",70000')[1] == "ERROR"


def test_connack_refused_gives_closed(port, recorder):
    connect_args = dict(client_id="refused", password=BAD_PASSWORD)
    port.ok(f'AT+MCONFIG="{connect_args["client_id"]}","{USER}","{BAD_PASSWORD}"')
    port.ok(f'AT+SSLMIPSTART="{MQTT_HOST}",1883')
    port.expect(rb"\r\nCONNECT OK\r\n")
    port.ok("AT+MCONNECT=1,60")
    port.expect(rb"^\r\nCLOSED\r\n")
    assert ("refused", USER, BAD_PASSWORD) in recorder.connects
    assert port.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"


def test_server_closing_the_link_gives_closed(port, closer):
    port.ok('AT+MCONFIG="closing","u","p"')
    port.ok('AT+MIPSTART="closer.example.com",1883')
    port.expect(rb"^\r\nCONNECT OK\r\n")
    assert closer.accepted.acquire(timeout=5)
    closer.close_all()  # the server drops the TCP before MCONNECT (§7.1 "会被踢掉")
    port.expect(rb"^\r\nCLOSED\r\n")
    assert port.command("AT+MCONNECT=1,60")[1] == "+CME ERROR: 767"
    port.ok('AT+MIPSTART="closer.example.com",1883')
    port.expect(rb"^\r\nCONNECT OK\r\n")
    port.ok("AT+MCONNECT=1,60")
    port.expect(rb"^\r\nCONNACK OK\r\n")
    assert closer.accepted.acquire(timeout=5) and closer.connects.acquire(timeout=5)
    closer.close_all()  # and now during the MQTT session
    port.expect(rb"^\r\nCLOSED\r\n")
    assert port.ok("AT+MQTTSTATU") == "\r\n+MQTTSTATU :0\r\n"
    assert port.command('AT+MPUB="t",0,0,"x"')[1] == "ERROR"
    assert port.command("AT+MIPCLOSE")[1] == "+CME ERROR: 767"  # harmless after CLOSED


def test_mpubex_fixed_terminated_and_idle(port, recorder):
    assert port.command('AT+MPUBEX="t/x",0,0,3')[1] == "+CME ERROR: 767"  # not connected
    connect(port, client_id="mpubex")
    data = bytes(range(256)) + b'\x1a"\r\nOK'
    port.send(f'AT+MPUBEX="t/fixed",1,0,{len(data)}')
    port.expect(rb"^\r\n>")
    port.write(data)
    port.expect(rb"^\r\nOK\r\n\r\nPUBACK\r\n")
    assert recorder.wait_for("messages", lambda m: m[1] == "t/fixed")[2] == data
    port.send('AT+MPUBEX="t/ctrlz",0,0')
    port.expect(rb"^\r\n>")
    port.write(b"until ctrl-z\x1a")
    port.expect(rb"^\r\nOK\r\n")
    assert recorder.wait_for("messages", lambda m: m[1] == "t/ctrlz")[2] == b"until ctrl-z"
    port.send('AT+MPUBEX="t/idle",0,0')
    port.expect(rb"^\r\n>")
    port.write(b"ends when idle")  # the fast profile's idle end is 0.3 s (5 s on the module)
    port.expect(rb"^\r\nOK\r\n")
    assert recorder.wait_for("messages", lambda m: m[1] == "t/idle")[2] == b"ends when idle"
    assert port.command('AT+MPUBEX="t/x",0,0,4101')[1] == "ERROR"


def test_cache_mode_four_slots(port, broker):
    connect(port, client_id="cache")
    subscribe(port, "cache/#")
    port.ok("AT+MQTTMSGSET=1")
    assert port.ok("AT+MQTTMSGSET?") == "\r\n+MQTTMSGSET:1\r\n"
    for index in range(5):
        outside_publish(broker, f"cache/{index}", f"m{index}".encode())
        port.expect(rb"\r\n\+MSUB: %d\r\n" % (index % 4))  # the 5th overwrites the oldest
    assert port.ok("AT+MQTTMSGGET?").count("VALID") == 4
    text = port.ok("AT+MQTTMSGGET")
    assert text == "".join(
        f'\r\n+MSUB: "cache/{i}",2 byte,m{i}\r\n' for i in (1, 2, 3, 4)
    )  # arrival order
    assert port.ok("AT+MQTTMSGGET?").count("INVALID") == 4
    assert port.ok("AT+MQTTMSGGET") == ""


def test_limits(port, broker, recorder):
    assert port.command('AT+MCONFIG="' + "c" * 257 + '","u","p"')[1] == "ERROR"
    connect(port, client_id="limits")
    assert port.command('AT+MSUB="' + "t" * 257 + '",0')[1] == "ERROR"
    port.ok('AT+MPUB="big",0,0,"' + "x" * 2384 + '"')  # MPUB limit 2384 (§7.4)
    assert port.command('AT+MPUB="big",0,0,"' + "x" * 2385 + '"')[1] == "ERROR"
    assert port.command('AT+MPUB="big",0,0,unquoted')[1] == "ERROR"
    assert port.command('AT+MPUB="big",0,0,"a"b"')[1] == "ERROR"  # a raw quote: no injection
    assert port.command('AT+MPUB="wild/#",0,0,"x"')[1] == "ERROR"
    recorder.wait_for("messages", lambda m: m[1] == "big" and len(m[2]) == 2384)
    subscribe(port, "down")
    outside_publish(broker, "down", b"y" * 1500)
    match = port.expect(rb'\r\n\+MSUB: "down",(\d+) byte,')
    assert int(match.group(1)) == 1360  # direct-mode limit on Air724 (§7.4)
    assert port.read_exact(1360) == b"y" * 1360


def test_unsubscribe_qos2_mode_and_will(port, broker, recorder):
    watcher = Subscriber(broker, "will/#")
    try:
        port.ok('AT+MCONFIG="willer","u","p",1,0,"will/topic","gone"')
        port.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
        port.expect(rb"\r\nCONNECT OK\r\n")
        port.ok("AT+MCONNECT=1,60")
        port.expect(rb"\r\nCONNACK OK\r\n")
        subscribe(port, "u/a")
        subscribe(port, "u/b")
        port.ok('AT+MUNSUB="u/a"')
        port.expect(rb"^\r\nUNSUBACK\r\n")
        outside_publish(broker, "u/a", b"not for me")
        outside_publish(broker, "u/b", b"for me")
        port.expect(rb'^\r\n\+MSUB: "u/b",6 byte,for me\r\n')  # nothing from u/a before it
        port.ok('AT+MPUB="q2",2,0,"two"')
        port.expect(rb"^\r\nPUBREC\r\n\r\nPUBCOMP\r\n")
        port.ok("AT+MQTTMODE=1")
        assert port.ok("AT+MQTTMODE?") == "\r\n+MQTTMODE: 1\r\n"
        port.ok('AT+MPUB="hex",0,0,"313233"')
        assert port.command('AT+MPUB="hex",0,0,"31G"')[1] == "ERROR"
        assert recorder.wait_for("messages", lambda m: m[1] == "hex")[2] == b"123"
        port.ok("AT+MIPCLOSE")  # TCP closed without DISCONNECT: the broker sends the will
        assert watcher.wait() == ("will/topic", b"gone")
        assert port.quiet(0.2) == b""  # the host closed it: no CLOSED
    finally:
        watcher.close()


def test_tls_verification_with_ca(start_sim, resolve_args, broker, certs):
    rule = f"wrongname.example.com=127.0.0.1:{broker.tls_port}"
    sim = start_sim(*resolve_args, "--ca", certs["ca"], "--resolve", rule)
    at = sim.port()
    at.train()
    at.ok("ATE0")
    at.ok('AT+MCONFIG="verified","u","p"')
    at.ok(f'AT+SSLMIPSTART="{MQTT_HOST}",1883')  # certificate for *.iot-as-mqtt…: verified
    at.expect(rb"\r\nCONNECT OK\r\n")
    at.ok("AT+MIPCLOSE")
    at.ok('AT+SSLMIPSTART="wrongname.example.com",1883')  # same broker, name not in its cert
    at.expect(rb"\r\nCONNECT FAIL\r\n")


def test_realistic_network_latencies_are_lower_bounds(start_sim, resolve_args):
    steps = {"connect": 0.3, "connack": 0.2, "suback": 0.2, "puback": 0.2, "http": 0.3}
    latency = [f"--latency={k}={v}" for k, v in steps.items()]
    latency += ["--latency=power_on=0", "--latency=sim=0", "--latency=attach=0"]
    sim = start_sim(*resolve_args, "--profile", "realistic", "--latency=bearer=0", *latency)
    at = sim.port()
    at.train()
    at.ok("ATE0")

    def timed(command, urc):
        start = time.monotonic()
        at.ok(command)
        at.expect(urc)
        return time.monotonic() - start

    at.ok('AT+MCONFIG="slow","u","p"')
    assert timed('AT+MIPSTART="mqtt-tcp.example.com",1883', rb"CONNECT OK\r\n") >= 0.3
    assert timed("AT+MCONNECT=1,60", rb"CONNACK OK\r\n") >= 0.2
    assert timed('AT+MSUB="s",1', rb"SUBACK\r\n") >= 0.2
    assert timed('AT+MPUB="s",1,0,"x"', rb"PUBACK\r\n") >= 0.2
    at.ok("AT+SAPBR=1,1")
    at.ok("AT+HTTPINIT")
    at.ok('AT+HTTPPARA="URL","http://plain.example.com/bytes/1"')
    assert timed("AT+HTTPACTION=0", rb"\+HTTPACTION: 0,200,1\r\n") >= 0.3


def test_refused_subscribe_prints_error_after_ok(port, broker):
    """A SUBACK failure (0x80) ends AT+MSUB with ERROR after its OK (§7.2, §11); the link stays
    up and the next MSUB succeeds."""
    connect(port)
    port.ok('AT+MSUB="refused/topic",1')  # the test broker answers SUBACK 0x80
    port.expect(rb"\r\nERROR\r\n")
    subscribe(port, "good/topic", 1)
    assert "+MQTTSTATU :1" in port.command("AT+MQTTSTATU")[0]


def _connect_plain(port):
    port.ok('AT+MIPSTART="mqtt-tcp.example.com",1883')
    port.expect(rb"\r\nCONNECT OK\r\n")
    port.ok("AT+MCONNECT=1,60")
    port.expect(rb"\r\nCONNACK OK\r\n")


def test_no_stale_puback_after_a_silent_link_is_disconnected(sim, recorder):
    """The acks a half-open link still owed belong to that link: after AT+MDISCONNECT and a new
    connection, whose message ids start again at 1, a QoS0 publish with the same id as one of
    them must not print a PUBACK (the device would take it for its QoS1 message's ack)."""
    port = sim.port()
    port.train()
    port.ok("ATE0")
    port.ok('AT+MCONFIG=stale,"",""')
    _connect_plain(port)
    sim.ctl("half_open")
    for n in range(3):
        port.ok(f'AT+MPUB="t/stale",1,0,"owed{n}"')  # ids 1..3: no PUBACK will come
    port.ok("AT+MDISCONNECT")
    _connect_plain(port)
    for n in range(3):
        port.ok(f'AT+MPUB="t/stale",0,0,"fresh{n}"')  # ids 1..3 again, QoS0: no ack at all
    assert port.quiet(0.5) == b""
    port.ok('AT+MPUB="t/stale",1,0,"acked"')
    port.expect(rb"^\r\nPUBACK\r\n")
    assert port.quiet(0.3) == b""
    assert [m[2] for m in recorder.messages if m[0] == "stale"] == [
        b"fresh0",
        b"fresh1",
        b"fresh2",
        b"acked",
    ]
