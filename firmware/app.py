"""Example application: what the device reports and how it reacts to the cloud.

The thing model is ``firmware/tsl.json`` (the console's TSL export); the session checks every
property set, service call and post against ``tsl_table``, generated from it by
``python -m tools.tsl_table firmware/tsl.json -o firmware/tsl_table.py`` (460 naming the field
and the rule for a bad downlink, ``AlinkError`` for a bad post, before it leaves).

- Every ``telemetry_interval_s`` while online, post thing-model properties: ``Uptime`` (s),
  ``FreeHeap`` (bytes), ``DemoValue`` (a wave 0..100 of shape ``DemoShape``), ``DemoHistory``
  (its last five values), the settings, ``LastSet`` (when a set was last applied, once the clock
  is known) and ``RSSI`` (dBm) when the session knows the signal. When ``DemoValue`` rises above
  ``DemoThreshold``, the event ``Threshold`` is posted with its time.
- Property set: ``ReportInterval`` (s) changes the interval, ``LEDSwitch`` lights or darkens the
  status LED, ``QuietHours`` (UTC hours ``Start``..``End``) keeps it dark while the clock is in
  them, ``DemoShape``, ``DemoThreshold`` and ``Label`` are kept and reported; the new values are
  reported at once. Desired values (期望属性值) arrive the same way after each connect.
- Services: ``Blink`` (async) blinks the LED ``Times`` times; ``Status`` (sync, over RRPC)
  answers ``Uptime`` and ``Reports`` after ``WaitMs`` (a demo of the platform's deadline: past
  it the session answers the timeout code itself).
- ``/pk/dn/user/get``: each message is logged and, with ``echo_user_get``, published back to
  ``/pk/dn/user/update`` (QoS1, through a bounded queue).
"""

import asyncio

import tsl_table
from logger import ticks_diff, ticks_ms
from micropython import const

from aliyun.alink import AlinkError

_ECHO_QUEUE = const(8)  # echoes waiting to be published; more are dropped and counted
_PREVIEW = const(48)  # payload characters shown in the log
_DEMO_STEPS = const(20)
_HISTORY = const(5)  # DemoHistory: the last values (the TSL's array size)
_BLINK_MS = const(200)
_REPLY_MS = const(10000)  # how long a post waits for its post_reply


async def wait_event(event, timeout_ms: int) -> bool:
    """Wait for ``event`` at most ``timeout_ms``; True if it was set."""
    try:
        if hasattr(asyncio, "wait_for_ms"):
            await asyncio.wait_for_ms(event.wait(), timeout_ms)
        else:
            await asyncio.wait_for(event.wait(), timeout_ms / 1000)
        return True
    except asyncio.TimeoutError:
        return False


class App:
    """The application around a session (``aliyun.session.Session`` or a test fake)."""

    def __init__(self, session, board, config: dict, log, wait=wait_event):
        self.session = session
        self.board = board
        self.log = log
        self.interval_s = config["telemetry_interval_s"]
        self.echo = config["echo_user_get"]
        self.led_switch = 1
        self.settings = {"DemoShape": 0, "DemoThreshold": 100.0, "Label": ""}
        self.settings["QuietHours"] = {"Start": 0, "End": 0}
        self.last_set = None  # "LastSet": UTC ms (a string, the TSL's date type)
        self.history = []
        self._above = False
        self.reports = 0  # property posts the cloud answered 200
        self.echoed = 0
        self.echo_dropped = 0
        self._wait = wait
        self._online = asyncio.Event()
        self._wake = asyncio.Event()
        self._echo_ready = asyncio.Event()
        self._echo_queue = []
        self._subscribed = False
        self._uptime_ms = 0
        self._last_tick = ticks_ms()
        self._demo = 0

    def start(self) -> None:
        """Register the callbacks; call before ``session.run()``."""
        self.session.use_model(tsl_table)
        self.session.on_state(self._on_state)
        self.session.on_property_set(None, self._on_property_set)
        self.session.on_service("Blink", self._blink)
        self.session.on_service("Status", self._status)
        self._subscribe()

    async def run(self) -> None:
        """Telemetry and echo loops; runs until cancelled."""
        await asyncio.gather(self._telemetry(), self._echo_loop())

    # -- session callbacks --

    def _subscribe(self) -> None:
        # The topics exist once the device name is known (config, or the IMEI after bring-up).
        topics = self.session.topics
        if not self._subscribed and topics is not None:
            self.session.subscribe(topics.user("get"), self._on_user_get)
            self._subscribed = True

    def _on_state(self, state: str) -> None:
        self.log("info", "state " + state)
        self._subscribe()
        if state == "online":
            self._online.set()
        else:
            self._online.clear()

    def _on_property_set(self, accepted: dict) -> None:
        for key in accepted:
            if key == "ReportInterval":
                self.interval_s = accepted[key]
            elif key == "LEDSwitch":
                self.led_switch = accepted[key]
            else:
                self.settings[key] = accepted[key]
        self.board.led_enable(self._led_on())
        now = self.session.time_ms()
        self.last_set = None if now is None else str(now)
        changes = ", ".join("%s=%s" % (key, accepted[key]) for key in sorted(accepted))
        self.log("info", "property set " + changes)
        self._wake.set()  # report the new values now

    def _led_on(self) -> bool:
        """``LEDSwitch`` on and the clock (when known) outside ``QuietHours``."""
        quiet = self.settings["QuietHours"]
        start, end = quiet.get("Start", 0), quiet.get("End", 0)
        now = self.session.time_ms()
        if self.led_switch != 1:
            return False
        if now is None or start == end:
            return True
        hour = now // 3600000 % 24
        inside = start <= hour < end if start < end else hour >= start or hour < end
        return not inside

    async def _blink(self, params: dict) -> dict:
        """Service ``Blink`` (async): the LED flashes ``Times`` times, then shows its state."""
        for _ in range(params.get("Times", 1)):
            self.board.led_enable(True)
            await asyncio.sleep(_BLINK_MS / 1000)
            self.board.led_enable(False)
            await asyncio.sleep(_BLINK_MS / 1000)
        self.board.led_enable(self._led_on())
        return {}

    async def _status(self, params: dict) -> dict:
        """Service ``Status`` (sync): answered after ``WaitMs``."""
        await asyncio.sleep(params.get("WaitMs", 0) / 1000)
        return {"Uptime": self._uptime_ms // 1000, "Reports": self.reports}

    def _on_user_get(self, topic: str, payload) -> None:
        # The log names the device once, at start: "/pk/dn/user/get" -> "user/get", and shows
        # the payload's first characters, the unprintable ones as ".".
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in bytes(payload[:_PREVIEW]))
        self.log(
            "info",
            "down %s %d B: %s%s"
            % (
                topic[len(self.session.topics.user_prefix) - 5 :],
                len(payload),
                text,
                "..." if len(payload) > _PREVIEW else "",
            ),
        )
        if not self.echo:
            return
        if len(self._echo_queue) >= _ECHO_QUEUE:
            self.echo_dropped += 1
            self.log("warning", "echo queue full: message dropped")
            return
        self._echo_queue.append(bytes(payload))
        self._echo_ready.set()

    # -- loops --

    def properties(self) -> dict:
        """The thing-model properties to post now."""
        now = ticks_ms()
        self._uptime_ms += ticks_diff(now, self._last_tick)
        self._last_tick = now
        value = self.demo_value()
        self.history = (self.history + [value])[-_HISTORY:]
        params = {
            "Uptime": self._uptime_ms // 1000,
            "FreeHeap": self.board.free_heap(),
            "DemoValue": value,
            "DemoHistory": self.history,
            "ReportInterval": self.interval_s,
            "LEDSwitch": self.led_switch,
        }
        params.update(self.settings)
        if self.last_set is not None:
            params["LastSet"] = self.last_set
        dbm = getattr(self.session, "signal_dbm", None)
        if dbm is not None:
            params["RSSI"] = dbm
        return params

    def demo_value(self) -> int:
        """The next point of the demo wave: triangle, square or sawtooth (``DemoShape``)."""
        step = self._demo % _DEMO_STEPS
        self._demo += 1
        half = _DEMO_STEPS // 2
        shape = self.settings["DemoShape"]
        if shape == 1:
            return 100 if step < half else 0
        if shape == 2:
            return step * 100 // (_DEMO_STEPS - 1)
        return (step if step <= half else _DEMO_STEPS - step) * 100 // half

    async def _threshold(self, value: int) -> None:
        """Post ``Threshold`` when the demo value rises above ``DemoThreshold``."""
        above = value > self.settings["DemoThreshold"]
        if above and not self._above:
            code = await self.session.post_event("Threshold", {"Value": value}, _REPLY_MS)
            self.log("info", "up event Threshold %d: %s" % (value, code or "no reply"))
        self._above = above

    async def _telemetry(self) -> None:
        # Offline a post goes into the session's QoS1 outbox, delivered after recovery: the
        # app does not wait for its reply then. A failed post must not stop the loop.
        await self._online.wait()  # the first report once online; from then on, every interval
        while True:
            self._wake.clear()
            params = self.properties()
            online = self.session.online
            try:
                code = await self.session.post_properties(params, _REPLY_MS if online else 0)
                if not online:
                    self.log("info", "up properties: queued while offline")
                elif code == 200:
                    self.reports += 1
                    self.log("info", "up properties: 200 (heap %d B)" % params["FreeHeap"])
                else:
                    self.log("warning", "up properties: %s" % (code or "no reply"))
                if online:
                    await self._threshold(params["DemoValue"])
            except AlinkError as exc:  # the thing model refused it before it left
                self.log("error", "property post refused on the device: " + exc.message)
            except Exception as exc:
                self.log("warning", "property post failed: " + repr(exc))
            self.board.led_enable(self._led_on())
            await self._wait(self._wake, self.interval_s * 1000)

    async def _echo_loop(self) -> None:
        while True:
            if not self._echo_queue:
                self._echo_ready.clear()
                await self._echo_ready.wait()
                continue
            payload = self._echo_queue.pop(0)
            try:
                accepted = await self.session.publish(
                    self.session.topics.user("update"), payload, 1
                )
            except Exception as exc:
                self.log("warning", "echo failed: " + repr(exc))
                continue
            if accepted:
                self.echoed += 1
                self.log("info", "up user/update %d B (echo)" % len(payload))
            else:
                self.log("warning", "echo not accepted")

    def summary(self) -> dict:
        """The session's stats plus the application's counters (logged when stopped)."""
        stats = dict(getattr(self.session, "stats", None) or {})
        stats["reports"] = self.reports
        stats["echoed"] = self.echoed
        stats["echo_dropped"] = self.echo_dropped
        return stats
