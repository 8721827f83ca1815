"""The web console's HTTP side: nothing without the token, the login ways, the JSON API, the
log search and the live event stream (the pages are tested in a browser: tests_host/browser).
"""

import asyncio
import http.client
import json
import socket
import threading
import time
import urllib.parse

import pytest

from tools.cloud import registry as reg
from tools.cloud.console import live

from .helpers import WAIT

PAGES = ("/", "/products", "/devices", "/log", "/devices/a1x/dev0001", "/static/console.js")
APIS = (
    ("GET", "/api/products"),
    ("GET", "/api/devices"),
    ("GET", "/api/log"),
    ("GET", "/api/events"),
    ("GET", "/api/products/a1x/secret"),
    ("POST", "/api/products"),
    ("POST", "/api/pub"),
    ("DELETE", "/api/devices/a1x/dev0001"),
)


class Client:
    """http.client against the console, keeping its session cookie."""

    def __init__(self, cloud):
        self.port = cloud.port("console")
        self.cookie = None

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, data, headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return response, payload

    def json(self, method, path, body=None, status=200):
        response, payload = self.request(method, path, body)
        assert response.status == status, payload
        return json.loads(payload)


def login(cloud, client):
    url = urllib.parse.urlsplit(cloud.thread.cloud.console.login_url())
    response, _ = client.request("GET", url.path + "?" + url.query)
    assert response.status == 303 and client.cookie
    return client


@pytest.fixture
def console(cloud):
    return login(cloud, Client(cloud))


def test_the_ready_info_names_the_console(cloud):
    assert cloud.info["console"] == "http://127.0.0.1:%d/" % cloud.port("console")


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_sends_to_the_login_page(cloud, path):
    response, payload = Client(cloud).request("GET", path)
    assert response.status == 303
    location = urllib.parse.urlsplit(response.getheader("Location"))
    assert location.path == "/login"
    assert urllib.parse.parse_qs(location.query) == {"next": [path]}
    assert b"<" not in payload  # no page content


@pytest.mark.parametrize(("method", "path"), APIS)
def test_the_api_without_a_session_answers_401(cloud, method, path):
    body = {} if method == "POST" else None
    response, payload = Client(cloud).request(method, path, body)
    assert response.status == 401
    assert json.loads(payload) == {"ok": False, "error": "log in first"}


def test_a_forged_cookie_or_a_wrong_bearer_token_is_refused(cloud):
    client = Client(cloud)
    client.cookie = "aliyun_local_console_%d=%s" % (cloud.port("console"), "0" * 32)
    assert client.request("GET", "/api/products")[0].status == 401
    bearer = {"Authorization": "Bearer " + "f" * 32}
    assert Client(cloud).request("GET", "/api/products", headers=bearer)[0].status == 401


def test_a_one_time_link_works_once(cloud):
    url = urllib.parse.urlsplit(cloud.thread.cloud.console.login_url())
    first, second = Client(cloud), Client(cloud)
    response, _ = first.request("GET", url.path + "?" + url.query)
    assert response.status == 303 and response.getheader("Location") == "/"
    assert "HttpOnly" in response.getheader("Set-Cookie")
    assert "SameSite=Strict" in response.getheader("Set-Cookie")
    assert first.json("GET", "/api/products")["ok"]
    response, payload = second.request("GET", url.path + "?" + url.query)
    assert response.status == 401 and b"used already" in payload
    assert second.cookie is None


def test_the_login_page_takes_the_token(cloud):
    token = cloud.thread.cloud._token
    client = Client(cloud)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = urllib.parse.urlencode({"token": "nope", "next": "/log"}).encode()
    response, payload = client.request("POST", "/login", headers=form, raw=wrong)
    assert response.status == 401 and b"Wrong token" in payload and client.cookie is None
    # an off-site "next" is not followed
    right = urllib.parse.urlencode({"token": token, "next": "//evil.example/"}).encode()
    response, _ = client.request("POST", "/login", headers=form, raw=right)
    assert response.status == 303 and response.getheader("Location") == "/"
    assert client.json("GET", "/api/devices")["ok"]


def test_logout_ends_the_session(cloud, console):
    session = console.cookie
    assert console.request("POST", "/logout", {})[0].status == 303
    console.cookie = session  # the old cookie, kept: the server forgot it
    assert console.request("GET", "/api/products")[0].status == 401


def test_changes_need_json_from_the_console_itself(cloud, console):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response, _ = console.request("POST", "/api/products", headers=form, raw=b"name=x")
    assert response.status == 403
    foreign = {"Origin": "http://evil.example"}
    response, _ = console.request("POST", "/api/products", {"name": "x"}, headers=foreign)
    assert response.status == 403
    assert not [p for p in cloud.registry.products() if p["name"] == "x"]


def test_products_and_devices_through_the_api(cloud, console):
    body = {"name": "<b>api</b>", "nodeType": "direct", "dataFormat": "alink"}
    created = console.json("POST", "/api/products", dict(body, authType="dynreg"))
    pk = created["productKey"]
    listed = [p for p in console.json("GET", "/api/products")["products"] if p["productKey"] == pk]
    assert listed[0]["name"] == "<b>api</b>" and "productSecret" not in listed[0]
    assert "dynamic registration" in listed[0]["authType"]
    secret = console.json("GET", "/api/products/%s/secret" % pk)["productSecret"]
    assert secret == cloud.registry.product(pk)["productSecret"]
    refused = console.json("POST", "/api/products", dict(body, nodeType="gateway"), status=400)
    assert "not emulated" in refused["error"]

    triple = console.json("POST", "/api/devices", {"productKey": pk, "deviceName": "web-0001"})
    assert triple["deviceSecret"] == cloud.registry.device(pk, "web-0001")["deviceSecret"]
    devices = console.json("GET", "/api/devices?productKey=" + pk)["devices"]
    assert [(d["deviceName"], d["status"]) for d in devices] == [("web-0001", "inactive")]
    assert "deviceSecret" not in devices[0]
    bad = console.json("POST", "/api/devices", {"productKey": pk, "deviceName": "x"}, status=400)
    assert "4-32" in bad["error"]

    path = "/api/devices/%s/web-0001" % pk
    assert not console.json("POST", path + "/enabled", {"enabled": False})["kicked"]
    assert console.json("GET", path)["device"]["status"] == "disabled"
    console.json("POST", path + "/enabled", {"enabled": True})
    topics = {t["topic"]: t for t in console.json("GET", path)["device"]["topics"]}
    assert topics["/%s/web-0001/user/get" % pk]["permission"] == "subscribe"
    assert topics["/%s/web-0001/user/update" % pk]["permission"] == "publish"
    console.json("DELETE", path, {})
    assert cloud.registry.device(pk, "web-0001") is None
    assert console.json("GET", path, status=400)["error"] == "no device %s/web-0001" % pk


def test_publish_set_property_and_service_reach_the_device(cloud, console, online):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    get = "/%s/%s/user/get" % (pk, dn)
    assert dev.subscribe(get) == 1
    for service in ("service/+", "service/property/set"):  # the SDKs' explicit filters
        assert dev.subscribe("/sys/%s/%s/thing/%s" % (pk, dn, service)) == 1
    reply = console.json("POST", "/api/pub", {"topic": get, "payload": "hi <there>", "qos": 1})
    assert reply["status"] == "200"
    assert dev.expect(get) == (get, b"hi <there>")
    refused = console.json("POST", "/api/pub", {"topic": "/%s/%s/user/update" % (pk, dn)}, 400)
    assert "no subscribe permission" in refused["error"]

    path = "/api/devices/%s/%s" % (pk, dn)
    for kind, body in (
        ("property-set", {"params": {"LEDSwitch": 1}}),
        ("service", {"identifier": "Reboot", "params": {"delay": 2}}),
    ):
        result = {}

        def answer(kind=kind, result=result):
            name = "property/set" if kind == "property-set" else "Reboot"
            request = dev.expect_json("/sys/%s/%s/thing/service/%s" % (pk, dn, name))
            result["request"] = request
            reply_topic = "/sys/%s/%s/thing/service/%s_reply" % (pk, dn, name)
            dev.publish(reply_topic, {"id": request["id"], "code": 200, "data": {"ok": 1}})

        worker = threading.Thread(target=answer)
        worker.start()
        reply = console.json("POST", path + "/" + kind, body)
        worker.join(WAIT)
        assert reply["reply"]["code"] == 200 and reply["reply"]["data"] == {"ok": 1}
        assert result["request"]["params"] == body["params"]
    assert result["request"]["method"] == "thing.service.Reboot"
    bad = console.json("POST", path + "/service", {"identifier": "a/b", "params": {}}, 400)
    assert "service identifier" in bad["error"]


def test_the_history_of_a_property_comes_from_its_posts(cloud, console, online):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    dev = online(device)
    post = "/sys/%s/%s/thing/event/property/post" % (pk, dn)
    dev.subscribe(post + "_reply")
    t0 = reg.now_ms() - 60000  # a device time must be within 24 h of the cloud's clock
    for n, value in enumerate((5, 7.5, "text", True)):
        dev.publish(post, {"id": str(n), "params": {"RSSI": {"value": value, "time": t0 + n}}})
        dev.expect(post + "_reply")
    history = console.json("GET", "/api/devices/%s/%s/history?identifier=RSSI" % (pk, dn))
    assert history["unit"] == "dBm"
    assert history["points"] == [[t0, 5.0], [t0 + 1, 7.5], [t0 + 3, 1.0]]


def test_chart_units_come_from_the_products_tsl(cloud, console):
    from pathlib import Path

    product = cloud.product()
    pk = product["productKey"]
    tsl_file = Path(__file__).resolve().parent.parent / "tsl_all_types.json"
    cloud.registry.things.import_tsl(pk, tsl_file.read_text(), 0)
    dn = cloud.device(product)["deviceName"]
    record = console.json("GET", "/api/devices/%s/%s" % (pk, dn))["device"]
    assert record["units"] == {"Count": "pcs", "Temp": "°C"}  # not the example's table
    history = console.json("GET", "/api/devices/%s/%s/history?identifier=Temp" % (pk, dn))
    assert history["unit"] == "°C" and history["points"] == []


def test_log_search_and_the_live_filter_agree(cloud, console):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    base = {"productKey": pk, "deviceName": dn}
    rows = [
        cloud.registry.log(reg.UP, pk, dn, "/%s/%s/user/update" % (pk, dn), "needle 1", 200),
        cloud.registry.log(reg.DOWN, pk, dn, "/%s/%s/user/get" % (pk, dn), "hay", 200),
        cloud.registry.log(reg.UP, pk, dn, "/x/needle", "{}", 460),
    ]
    cases = [
        ({}, rows),
        ({"type": "up"}, [rows[0], rows[2]]),
        ({"text": "needle"}, [rows[0], rows[2]]),
        ({"status": "460"}, [rows[2]]),
        ({"messageId": rows[1]["messageId"]}, [rows[1]]),
        ({"since": rows[1]["time"] + 1}, [r for r in rows if r["time"] > rows[1]["time"]]),
        ({"until": rows[0]["time"]}, [r for r in rows if r["time"] <= rows[0]["time"]]),
    ]
    for filters, want in cases:
        query = urllib.parse.urlencode(dict(base, **filters))
        found = console.json("GET", "/api/log?" + query)["rows"]
        assert [r["messageId"] for r in found] == [r["messageId"] for r in want], filters
        live = [r for r in rows if reg.message_matches(r, dict(base, **filters))]
        assert [r["messageId"] for r in live] == [r["messageId"] for r in want], filters
    assert console.json("GET", "/api/log?since=soon", status=400)["ok"] is False


def test_the_event_stream_sends_new_matching_rows(cloud, console):
    device = cloud.device()
    pk, dn = device["productKey"], device["deviceName"]
    sock = socket.create_connection(("127.0.0.1", cloud.port("console")), timeout=WAIT)
    query = urllib.parse.urlencode({"productKey": pk, "deviceName": dn, "type": "up"})
    request = "GET /api/events?%s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % (
        query,
        console.cookie,
    )
    sock.sendall(request.encode())
    stream = sock.makefile("rb")
    assert stream.readline().startswith(b"HTTP/1.1 200")
    while stream.readline() not in (b"\r\n", b""):
        pass  # headers: once sent, the stream's listener is registered
    registry = cloud.thread.cloud.registry

    def log_rows():
        registry.log(reg.DOWN, pk, dn, "/t", "skipped: a downlink", 200)
        return registry.log(reg.UP, pk, dn, "/t", "wanted", 200)

    wanted = cloud.thread.call(_run(log_rows))
    data = b""
    while b"wanted" not in data:
        line = stream.readline()
        assert line, "stream ended"
        data += line
    assert b"event: row" in data and b"skipped" not in data
    assert ("id: %d" % wanted["seq"]).encode() in data
    sock.close()


async def _run(func):
    return func()


def test_an_event_stream_the_browser_left_is_let_go(cloud, console, monkeypatch):
    monkeypatch.setattr(live, "PING_S", 0.05)
    registry = cloud.thread.cloud.registry
    before = len(registry.listeners)
    sock = socket.create_connection(("127.0.0.1", cloud.port("console")), timeout=WAIT)
    request = "GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % console.cookie
    sock.sendall(request.encode())
    assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 200")
    assert len(registry.listeners) == before + 1
    sock.close()
    deadline = time.monotonic() + WAIT
    while len(registry.listeners) > before:  # a ping fails within a few 0.05 s periods
        assert time.monotonic() < deadline, "the stream's listener is still registered"
        cloud.thread.call(asyncio.sleep(0.05))
