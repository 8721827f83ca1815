"""The web console in a real browser, end to end: the product and device are made on its pages,
the firmware (MicroPython VM) comes online through the emulated Air724UG with the triple the page
showed, and every effect is waited for on the page, with no reload (a mark set in the page's
window must survive).

The stack is the one of ``make sim`` (tools/sim/): ``aliyun-local serve`` (console on a
free port; the test logs in with the one-time link it prints), ``air724-sim``, the firmware.
"""

import json
import re
import signal

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tools.sim import board, parts, rows

from .support import Shots, new_driver

WAIT = 60  # seconds: a loaded CI machine; a passing wait returns as soon as the page shows it
DEVICE = parts.DEFAULT_IMEI  # the DeviceName the emulated module's IMEI gives the firmware
PRODUCT = "Console demo <i>x</i>"  # markup in a name must show as text


class Site:
    """The cloud, its console in Chromium, and (once online) the emulator and the firmware."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.lines = []
        self.rows = rows.RowLog()
        self.cloud = parts.Cloud(workdir / "cloud", self._line)
        self.emulator = self.firmware = None
        self.driver = None
        self.base = None
        self.triple = None
        self.product_secret = None

    def _line(self, source, stream, text):
        self.lines.append((source, stream, text))

    def start(self):
        info = self.cloud.start()
        self.cloud.follow(self.rows.add)
        _, match = self.cloud.proc.wait_for(r"^console: (http://\S+)$", WAIT, stream="err")
        self.base = info["console"].rstrip("/")
        self.driver = new_driver()
        self.driver.get(match.group(1))  # the one-time link logs this browser in
        return self

    def open(self, path, live=True):
        self.driver.get(self.base + path)
        if live:
            self.wait_css("body[data-live='on']")  # the live stream is connected

    def wait(self, condition, timeout=WAIT, what="the page"):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)
        except TimeoutException:
            raise AssertionError(
                "%s did not show %s in %s s" % (self.page(), what, timeout)
            ) from None

    def wait_css(self, css, timeout=WAIT):
        return self.wait(ec.presence_of_element_located((By.CSS_SELECTOR, css)), timeout, css)

    def wait_text(self, css, pattern, timeout=WAIT):
        """The element ``css`` once its text matches ``pattern``."""

        def check(driver):
            for node in driver.find_elements(By.CSS_SELECTOR, css):
                if re.search(pattern, node.text):
                    return node
            return False

        return self.wait(check, timeout, "%s ~ /%s/" % (css, pattern))

    def css(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def fill(self, css, text):
        node = self.css(css)
        node.clear()
        node.send_keys(text)

    def mark(self):
        """Mark the page's window; ``marked()`` is False after any reload."""
        self.driver.execute_script("window.consoleTestMark = 42;")

    def marked(self):
        return self.driver.execute_script("return window.consoleTestMark === 42;")

    def page(self):
        return self.driver.current_url

    def start_device(self):
        self.emulator = parts.Emulator(self.cloud.info, on_line=self._line)
        self.emulator.start()
        config = parts.device_config(self.triple, uart_url=self.emulator.uart_url)
        self.firmware = board.Firmware(self.workdir / "board", config, on_line=self._line)
        self.firmware.prepare().start()

    def secrets_seen(self):
        candidates = ((self.triple or {}).get("deviceSecret"), self.product_secret)
        secrets = [s for s in candidates if s]
        return [
            line
            for line in self.lines
            if line[0] != "module" and any(s in line[2] for s in secrets)
        ]

    def close(self):
        if self.driver is not None:
            self.driver.quit()
        for part in (self.firmware, self.emulator):
            if part is not None:
                part.close()
        for proc in (self.cloud.follower, self.cloud.proc):
            if proc is not None:
                proc.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def site(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("console")
    monkeypatch_module.setenv("ALIYUN_LOCAL_STATE", str(folder / "unused-state"))
    handle = Site(folder)
    try:
        yield handle.start()
    finally:
        handle.close()
    assert not handle.secrets_seen(), "a secret was printed"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def made(site, tmp_path_factory):
    """A product and a device made on the console's pages (their triple read off the page)."""
    shots = Shots(tmp_path_factory.mktemp("made"))
    site.open("/products", live=False)
    site.fill("#product-name", PRODUCT)
    Select(site.css("#auth-type")).select_by_value("secret")
    site.css("#product-create").click()
    row = site.wait_text("#products tbody tr", re.escape(PRODUCT))
    pk = row.get_attribute("data-pk")
    row.find_element(By.CSS_SELECTOR, ".secret button").click()
    secret = site.wait_text("#products tbody tr[data-pk='%s'] .secret code" % pk, r"\S").text
    site.product_secret = secret
    shots.take(site.driver, "products", readme=True)

    site.open("/devices?productKey=" + pk)
    site.fill("#device-name", DEVICE)
    site.css("#device-add").click()
    text = site.wait_text("#triple-text", DEVICE).text
    fields = dict(line.split(None, 1) for line in text.strip().splitlines())
    site.triple = {
        "productKey": fields["ProductKey"],
        "deviceName": fields["DeviceName"],
        "deviceSecret": fields["DeviceSecret"],
    }
    shots.take(site.driver, "device-add", readme=True)
    return {"productKey": pk, "productSecret": secret, "shots": shots}


@pytest.fixture(scope="module")
def online(site, made):
    """The firmware started with the page's triple; the device list shows it online, live."""
    site.open("/devices?productKey=" + made["productKey"])
    site.wait_css("#devices tr[data-dn='%s'][data-status='inactive']" % DEVICE)
    site.mark()
    site.start_device()
    site.wait_css("#devices tr[data-dn='%s'][data-status='online']" % DEVICE)
    status = {"reloaded": not site.marked()}
    made["shots"].take(site.driver, "devices", readme=True)
    return status


def device_path(made):
    return "/devices/%s/%s" % (made["productKey"], DEVICE)


def test_the_console_needs_a_login(site, shots):
    driver = new_driver()
    try:
        driver.get(site.base + "/devices")
        WebDriverWait(driver, WAIT).until(ec.url_contains("/login"))
        assert not driver.find_elements(By.CSS_SELECTOR, "#devices")
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "login").click()
        error = WebDriverWait(driver, WAIT).until(
            ec.presence_of_element_located((By.ID, "login-error"))
        )
        assert error.text == "Wrong token."
        shots.take(driver, "login")
        token = json.loads((site.cloud.state_dir / "server.json").read_text())["token"]
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()
        WebDriverWait(driver, WAIT).until(ec.url_contains("/devices"))
        WebDriverWait(driver, WAIT).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "body[data-live='on']"))
        )
    finally:
        driver.quit()


def test_create_a_product_and_a_device(site, made):
    product = site.cloud.cli("product", "list")
    mine = [p for p in product if p["productKey"] == made["productKey"]]
    assert (
        mine and mine[0]["name"] == PRODUCT and mine[0]["productSecret"] == made["productSecret"]
    )
    # the name's markup is text: no <i> element came from it
    site.open("/products", live=False)
    row = site.wait_text("#products tbody tr", re.escape(PRODUCT))
    assert not row.find_elements(By.TAG_NAME, "i")
    shown = site.cloud.cli("device", "show", "%s/%s" % (made["productKey"], DEVICE), "--secret")
    assert site.triple["deviceSecret"] == shown["deviceSecret"]
    assert site.triple["productKey"] == made["productKey"]


def test_the_triple_warns_of_look_alike_characters(site, made):
    site.open("/devices?productKey=" + made["productKey"])
    site.fill("#device-name", "dev-IlO0-01")
    site.css("#device-add").click()
    warning = site.wait_text("#lookalike", "dev-IlO0-01|DeviceName")
    assert warning.is_displayed()
    for text in ("capital i 'I' at position 5", "small L 'l' at position 6"):
        assert "DeviceName has " + text in warning.text
    assert "ProductKey has digit one '1' at position 2" in warning.text  # "a1…"
    marks = [m.text for m in site.driver.find_elements(By.CSS_SELECTOR, "#triple-text mark")]
    assert marks[:1] == ["1"] and "I" in marks and "0" in marks
    site.css("#triple-copy").click()
    site.wait_text("#triple-copied", r"Copied|Selected")


def test_disable_enable_and_delete_a_device(site, made):
    site.open("/devices?productKey=" + made["productKey"])
    site.fill("#device-name", "spare-0001")
    site.css("#device-add").click()
    row_css = "#devices tr[data-dn='spare-0001']"
    site.wait_css(row_css + "[data-status='inactive']").find_element(
        By.CSS_SELECTOR, ".toggle"
    ).click()
    site.wait_css(row_css + "[data-status='disabled']").find_element(
        By.CSS_SELECTOR, ".toggle"
    ).click()
    site.wait_css(row_css + "[data-status='inactive']").find_element(
        By.CSS_SELECTOR, ".delete"
    ).click()
    site.wait(ec.alert_is_present(), what="the delete confirmation").accept()
    site.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, row_css), what="the row gone")
    shown = site.cloud.cli("device", "list", "--product", made["productKey"])
    assert "spare-0001" not in [d["deviceName"] for d in shown]


def test_a_device_comes_online_when_the_firmware_connects(site, made, online):
    assert not online["reloaded"], "the device list was reloaded to show the change"
    row = site.wait_css("#devices tr[data-dn='%s'][data-status='online']" % DEVICE)
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.find_element(By.CSS_SELECTOR, ".seen").text
    )
    assert row.find_element(By.CSS_SELECTOR, ".firmware").text == "-"  # it reports no version
    site.rows.wait(WAIT, type="status", status="online", deviceName=DEVICE)


def test_publish_a_message_and_see_the_echo_in_the_log(site, made, online):
    site.open("/log")
    log_window = site.driver.current_window_handle
    site.mark()
    site.driver.switch_to.new_window("tab")
    site.open(device_path(made) + "#topics")
    topic = "/%s/%s/user/get" % (made["productKey"], DEVICE)
    row = site.wait_text("#topic-list tbody tr", re.escape(topic) + " subscribe")
    system = site.css("#system-topic-list").get_attribute("textContent")
    service = "/sys/%s/%s/thing/service/+" % (made["productKey"], DEVICE)
    assert service + "publish and subscribe" in system
    row.find_element(By.CSS_SELECTOR, "button").click()
    assert site.css("#pub-topic").get_attribute("value") == topic
    site.fill("#pub-payload", '{"hello":"console","n":1}')
    Select(site.css("#pub-qos")).select_by_value("1")
    site.css("#pub-send").click()
    site.wait_text("#pub-message", "Published to .*user/get \\(QoS 1\\): 200")
    site.driver.execute_script("document.getElementById('topics').scrollIntoView()")
    Shots(site.workdir).take(site.driver, "topics", readme=True)
    site.driver.close()

    site.driver.switch_to.window(log_window)
    echo = site.wait_text("#log tbody tr[data-type='up']", r"/user/update .*hello.*console")
    assert "200" in echo.find_element(By.CSS_SELECTOR, ".status").text
    site.wait_text("#log tbody tr[data-type='down']", r"/user/get .*hello")
    assert site.marked(), "the log page was reloaded"


def test_set_a_property_and_the_chart_gains_a_point(site, made, online, shots):
    site.open(device_path(made) + "#thing")
    site.wait_css("#properties tr[data-property='ReportInterval']")
    Select(site.css("#chart-property")).select_by_value("ReportInterval")
    site.wait_css("#chart[data-property='ReportInterval']")
    before = int(site.css("#chart").get_attribute("data-points"))
    site.mark()
    site.fill("#set-identifier", "ReportInterval")
    site.fill("#set-value", "7")
    site.css("#set-send").click()
    site.wait_text("#replies tbody tr", r"set ReportInterval=7 200")
    site.wait(
        lambda d: d.find_element(By.ID, "chart").get_attribute("data-last") == "7",
        what="the chart's last point at 7",
    )
    assert int(site.css("#chart").get_attribute("data-points")) > before
    value = site.css("#properties tr[data-property='ReportInterval'] .value")
    assert value.text == "7"
    # a service the example app does not have: its reply (460) shows too
    site.fill("#service-identifier", "Reboot")
    site.css("#service-send").click()
    site.wait_text("#replies tbody tr", r"service Reboot 460")
    assert site.marked(), "the device page was reloaded"
    # hovering the chart's right edge shows the last point's value, with its unit, in the legend
    site.driver.execute_script("document.getElementById('thing').scrollIntoView()")
    chart = site.css("#chart .u-over")
    ActionChains(site.driver).move_to_element_with_offset(
        chart, chart.size["width"] // 2 - 1, 0
    ).perform()
    legend = site.css("#chart .u-legend .u-series:nth-child(2) .u-value").text
    assert legend == "7 s", legend
    shots.take(site.driver, "thing", readme=True)


def test_filter_the_log_and_open_a_message(site, made, online, shots):
    site.cloud.pub("/%s/%s/user/get" % (made["productKey"], DEVICE), '{"hello":"filter"}')
    site.rows.wait(WAIT, type="up", topic="/user/update", content='{"hello":"filter"}')
    site.open("/log")
    Select(site.css("#log-type")).select_by_value("up")
    site.fill("#log-text", '"filter"')
    site.css("#log-search").click()
    site.wait(lambda d: "text=" in d.current_url, what="the filters in the URL")
    row = site.wait_text("#log tbody tr", r"/user/update")
    rows = site.driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")
    assert len(rows) == 1 and rows[0].get_attribute("data-type") == "up"
    message_id = row.get_attribute("data-message-id")

    site.fill("#log-text", "")
    Select(site.css("#log-type")).select_by_value("")
    site.fill("#log-message-id", message_id)
    site.css("#log-search").click()
    site.wait(lambda d: "messageId=" in d.current_url, what="the MessageID filter")
    rows = site.wait(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, "#log tbody tr[data-message-id='%s']" % message_id
        )
    )
    assert len(site.driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")) == 1
    rows[0].find_element(By.CSS_SELECTOR, "button").click()
    site.wait_css("#detail[open]")
    assert site.css("#detail-id").text == message_id
    assert site.css("#detail-topic").text.endswith("/%s/user/update" % DEVICE)
    assert site.css("#detail-status").text == "200"
    assert json.loads(site.css("#detail-content").text) == {"hello": "filter"}
    shots.take(site.driver, "log-detail", readme=True)
    site.css("#detail-close").click()

    site.fill("#log-message-id", "")
    Select(site.css("#log-type")).select_by_value("status")
    site.fill("#log-status", "online")
    site.css("#log-search").click()
    site.wait(lambda d: "status=online" in d.current_url, what="the status filter")
    row = site.wait_text("#log tbody tr", DEVICE)
    statuses = {
        r.get_attribute("data-status")
        for r in site.driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")
    }
    assert statuses == {"online"}
    site.fill("#log-status", "")
    Select(site.css("#log-type")).select_by_value("")
    Select(site.css("#log-device")).select_by_value("%s/%s" % (made["productKey"], DEVICE))
    site.css("#log-search").click()
    site.wait(lambda d: "deviceName=" in d.current_url, what="the device filter")
    site.wait_text("#log tbody tr", "property/post")
    shots.take(site.driver, "log", readme=True)
