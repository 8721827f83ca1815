"""The seed's hand procedure as such scripts are usually written: send, sleep a fixed time, read.

The baseline of figure 6 (boot to online). It follows the how-to step by step on the module's
UART (here the emulator's TCP port): ``AT`` until ``OK`` (1 s apart), ``AT+CGMR``,
``AT+CGATT?`` until attached (2 s apart), the SAPBR bearer, HTTPS device auth (``AT+HTTP*``,
the seed's form: hmacmd5, no timestamp), then ``AT+MCONFIG`` with iotId/iotToken,
``AT+SSLMIPSTART``, ``AT+MCONNECT``, ``AT+MSUB``. After each command it sleeps the fixed time
in ``STEPS`` (1 s for a local answer, 2-3 s where the network is involved), then reads what
arrived. A step whose answer is not there yet gets the same sleep again (at most 5 times), as
a person re-reads the terminal; nothing else is waited for.

    .venv/bin/python -m tools.bench.seed_baseline --uart 127.0.0.1:PORT \\
        --product-key PK --device-name DN --device-secret -     # secret on stdin

prints the seconds from its start to ``SUBACK`` and each step's time.
"""

import argparse
import json
import socket
import sys
import time

import tools  # noqa: F401 - the micropython.const stand-in, for lib/aliyun
from aliyun.auth import auth_form, auth_host
from aliyun.sign import mqtt_host

REGION = "cn-shanghai"
FORM = "Content-Type: application/x-www-form-urlencoded"
RETRIES = 5


def steps(product_key, device_name, body):
    """``(command or raw body, sleep s, token expected in the answer)`` in the seed's order."""
    url = "https://%s/auth/devicename" % auth_host(REGION)
    return [
        ("AT+CGMR", 1.0, "OK"),
        ('AT+SAPBR=3,1,"CONTYPE","GPRS"', 1.0, "OK"),
        ('AT+SAPBR=3,1,"APN",""', 1.0, "OK"),
        ("AT+SAPBR=1,1", 3.0, "OK"),
        ("AT+SAPBR=2,1", 1.0, "+SAPBR: 1,1"),
        ("AT+HTTPINIT", 1.0, "OK"),
        ('AT+HTTPPARA="CID",1', 1.0, "OK"),
        ('AT+HTTPPARA="URL","%s"' % url, 1.0, "OK"),
        ('AT+HTTPPARA="USER_DEFINED","%s"' % FORM, 1.0, "OK"),
        ("AT+HTTPSSL=1", 1.0, "OK"),
        ("AT+HTTPDATA=%d,20000" % len(body), 1.0, "DOWNLOAD"),
        (body.encode(), 1.0, "OK"),
        ("AT+HTTPACTION=1", 3.0, "+HTTPACTION: 1,200"),
        ("AT+HTTPREAD", 1.0, "OK"),
        ("AT+HTTPTERM", 1.0, "OK"),
    ]


def mqtt_steps(product_key, device_name, iot_id, iot_token):
    host = mqtt_host(product_key, REGION)
    topic = "/%s/%s/user/get" % (product_key, device_name)
    return [
        ('AT+MCONFIG="%s","%s","%s"' % (device_name, iot_id, iot_token), 1.0, "OK"),
        ('AT+SSLMIPSTART="%s",1883' % host, 3.0, "CONNECT OK"),
        ("AT+MCONNECT=1,300", 2.0, "CONNACK OK"),
        ('AT+MSUB="%s",0' % topic, 1.0, "SUBACK"),
    ]


class Terminal:
    """The UART as a person at a terminal uses it: write a line, look at what came back."""

    def __init__(self, address, sleep=time.sleep):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setblocking(False)
        self.sleep = sleep
        self.seen = ""

    def send(self, data):
        self.sock.setblocking(True)
        self.sock.sendall(data if isinstance(data, bytes) else data.encode() + b"\r")
        self.sock.setblocking(False)

    def read(self):
        chunks = []
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                raise ConnectionError("the module's port closed")
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
        self.seen += text
        return text

    def close(self):
        self.sock.close()


def step(term, command, pause, expect, resend=False, retries=RETRIES):
    """Send, sleep, read; again (re-send too with ``resend``) until ``expect`` shows up."""
    got = ""
    for attempt in range(retries):
        if resend or attempt == 0:
            term.send(command)
        term.sleep(pause)
        got += term.read()
        if expect in got:
            return got
    shown = command if isinstance(command, str) else "<%d bytes>" % len(command)
    raise RuntimeError("%s: no %r after %d tries: %r" % (shown, expect, retries, got[-200:]))


def run(
    uart,
    product_key,
    device_name,
    device_secret,
    clock=time.monotonic,
    sleep=time.sleep,
    start=None,
):
    """The whole procedure; ``{"online_s": …, "steps": [(command, s since start)], …}``
    (times from ``start``, a ``clock()`` value: the module's power-on; default now)."""
    start = clock() if start is None else start
    marks = []
    term = Terminal(uart, sleep)
    try:
        # Power-on: AT until OK (autobaud trains on it; the module says nothing before).
        step(term, "AT", 1.0, "OK", resend=True, retries=120)
        marks.append(("AT", clock() - start))
        step(term, "AT+CGATT?", 2.0, "+CGATT: 1", resend=True, retries=60)
        marks.append(("AT+CGATT?", clock() - start))
        body = auth_form(
            product_key,
            device_name,
            device_secret,
            signmethod="hmacmd5",
            resources=None,
            send_signmethod=False,
        )
        reply = ""
        for command, pause, expect in steps(product_key, device_name, body):
            got = step(term, command, pause, expect)
            if command == "AT+HTTPREAD":
                reply = got
            marks.append((command if isinstance(command, str) else "<body>", clock() - start))
        data = json.loads(reply[reply.index("{") : reply.rindex("}") + 1])["data"]
        for command, pause, expect in mqtt_steps(
            product_key, device_name, data["iotId"], data["iotToken"]
        ):
            step(term, command, pause, expect)
            marks.append((command.split("=")[0], clock() - start))
    finally:
        term.close()
    return {"online_s": marks[-1][1], "attached_s": marks[1][1], "steps": marks}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.seed_baseline", description=__doc__)
    p.add_argument("--uart", required=True, help="HOST:PORT of air724-sim --listen")
    p.add_argument("--product-key", required=True)
    p.add_argument("--device-name", required=True)
    p.add_argument("--device-secret", required=True, help="'-' reads it from stdin")
    args = p.parse_args(argv)
    secret = sys.stdin.readline().strip() if args.device_secret == "-" else args.device_secret
    result = run(args.uart, args.product_key, args.device_name, secret)
    for command, seconds in result["steps"]:
        print("%8.2f s  %s" % (seconds, command))
    print("online (SUBACK) after %.2f s" % result["online_s"])


if __name__ == "__main__":
    main()
