"""The official Python device SDK (aliyun-iot-linkkit) as an independent client.

linkkit connects to ``${pk}.iot-as-mqtt.${region}.aliyuncs.com`` over TLS with host-name checking;
the test resolves that one name to 127.0.0.1 in this process and points the port and CA at the
local cloud, so the server certificate's Aliyun names are checked too.
"""

import socket
import threading

import paho.mqtt.client as paho
import pytest
from linkkit import linkkit

from .helpers import WAIT

REGION = "cn-shanghai"
# linkkit builds its paho client with the deprecated callback API version 1 (paho's default).
pytestmark = pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")


@pytest.fixture
def sdk(cloud, monkeypatch):
    """Factory of LinkKit clients aimed at the local cloud; destroyed after the test."""
    real_getaddrinfo = socket.getaddrinfo
    hosts = set()

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host in hosts else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    real_loop = paho.Client.loop

    def loop(self, timeout=1.0, *_max_packets):
        # linkkit 1.2.13 passes max_packets, which paho 2 dropped. linkkit also publishes and
        # subscribes from other threads than its loop thread, and paho would then write the TLS
        # socket from two threads at once (undefined in OpenSSL; it can abort the process): a
        # write hook makes paho queue those packets for the loop thread instead.
        if self.on_socket_register_write is None:
            self.on_socket_register_write = lambda *_: None
        return real_loop(self, timeout)

    monkeypatch.setattr(paho.Client, "loop", loop)
    ca = open(cloud.ca).read()
    made = []

    def make(product_key, device_name, device_secret="", **kwargs):
        hosts.add("%s.iot-as-mqtt.%s.aliyuncs.com" % (product_key, REGION))
        kit = linkkit.LinkKit(REGION, product_key, device_name, device_secret, **kwargs)
        kit.config_mqtt(port=cloud.port("mqtts"), cadata=ca)
        made.append(kit)
        return kit

    yield make
    for kit in made:
        kit.destroy()


def test_linkkit_posts_properties_and_gets_post_reply(cloud, sdk):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    kit = sdk(pk, dn, device["deviceSecret"])
    connected, replied, changed = threading.Event(), threading.Event(), threading.Event()
    results = {}

    def on_connect(session_flag, rc, userdata):
        results["connect"] = rc
        connected.set()

    def on_post(request_id, code, data, message, userdata):
        results["post"] = (request_id, code, message)
        replied.set()

    def on_changed(params, userdata):
        results["set"] = params
        changed.set()

    kit.on_connect = on_connect
    kit.on_thing_prop_post = on_post
    kit.on_thing_prop_changed = on_changed
    kit.thing_setup()
    kit.connect_async()
    assert connected.wait(WAIT) and results["connect"] == 0
    rc, request_id = kit.thing_post_property({"Temperature": 21.5, "Power": "on"})
    assert rc == 0
    assert replied.wait(WAIT)
    assert results["post"] == (request_id, 200, "success")
    props = cloud.registry.device(pk, dn)["properties"]
    assert props["Temperature"]["value"] == 21.5 and props["Power"]["value"] == "on"
    # linkkit never subscribes: the server subscribed its system topics (_ss=1), so a property
    # set reaches it and its automatic set_reply completes the call
    reply = cloud.thread.call(cloud.thread.cloud.alink.set_property(pk, dn, {"Power": "off"}, 5))
    assert reply["code"] == 200
    assert changed.wait(WAIT) and results["set"] == {"Power": "off"}


def test_linkkit_with_wrong_secret_is_refused(cloud, sdk):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    mark = cloud.watcher.mark()
    kit = sdk(pk, dn, "W" * 32)
    accepted = threading.Event()
    kit.on_connect = lambda flag, rc, userdata: accepted.set() if rc == 0 else None
    kit.thing_setup()
    kit.connect_async()
    row = cloud.watcher.wait(lambda r: r["status"].startswith("rc="), since=mark)
    assert row["status"] == "rc=4 bad user name or password" and row["deviceName"] == dn
    assert "%s&%s|securemode=2" % (pk, dn) in row["content"]
    assert not accepted.is_set()
    assert cloud.registry.device(pk, dn)["state"] == "inactive"


def test_linkkit_mqtt_dynamic_registration(cloud, sdk):
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    kit = sdk(
        product["productKey"],
        device["deviceName"],
        product_secret=product["productSecret"],
        auth_type="register",
    )
    done = threading.Event()
    results = {}

    def on_register(rc, value, userdata):
        results["register"] = (rc, value)
        done.set()

    kit.on_device_dynamic_register = on_register
    kit.connect_async()
    assert done.wait(WAIT)
    assert results["register"] == (0, device["deviceSecret"])
