"""Example application: what the device reports and how it reacts to the cloud.

The thing model is ``firmware/tsl.json`` (the console's TSL export); the session checks every
property set, service call and post against ``tsl_table``, generated from it by
``python -m tools.tsl_table firmware/tsl.json -o firmware/tsl_table.py`` (460 naming the field
and the rule for a bad downlink, ``AlinkError`` for a bad post, before it leaves).

- Every ``telemetry_interval_s`` while online, post thing-model properties: ``Uptime`` (s),
  ``FreeHeap`` (bytes), ``DemoValue`` (a triangle wave 0..100), the settings ``ReportInterval``
  and ``LEDSwitch``, and ``RSSI`` (dBm) when the session knows the signal.
- Property set: ``ReportInterval`` int 1..86400 s (the range of ``telemetry_interval_s``)
  changes the interval, ``LEDSwitch`` (bool) lights or darkens the status LED; the new values
  are reported at once. Desired values (期望属性值) arrive the same way after each connect.
- Services: ``Blink`` (async) blinks the LED ``Times`` times; ``Status`` (sync, over RRPC)
  answers ``Uptime`` and ``Reports`` after ``WaitMs`` (a demo of the platform's deadline: past
  it the session answers the timeout code itself).
- ``/pk/dn/user/get``: each message is logged and, with ``echo_user_get``, published back to
  ``/pk/dn/user/update`` (QoS1, through a bounded queue).
"""

import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from aliyun.alink import AlinkError

VERSION = "1.0.0"  # the application's version, reported as OTA module "app"

_ECHO_QUEUE = const(8)  # echoes waiting to be published; more are dropped and counted
_PREVIEW = const(48)  # payload characters shown in the log
_DEMO_STEPS = const(20)
_BLINK_MS = const(200)
_REPLY_MS = const(10000)  # how long a post waits for its post_reply


async def wait_event(event, timeout_ms: int) -> bool:
    """Wait for ``event`` at most ``timeout_ms``; True if it was set."""
    try:
        await asyncio.wait_for_ms(event.wait(), timeout_ms)
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
        self.session.use_model("tsl_table")  # imported by the session when needed
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
        if "ReportInterval" in accepted:
            self.interval_s = accepted["ReportInterval"]
        if "LEDSwitch" in accepted:
            self.led_switch = accepted["LEDSwitch"]
            self.board.led_enable(self.led_switch == 1)
        changes = ", ".join("%s=%s" % (key, accepted[key]) for key in sorted(accepted))
        self.log("info", "property set " + changes)
        self._wake.set()  # report the new values now

    async def _blink(self, params: dict) -> dict:
        """Service ``Blink`` (async): the LED flashes ``Times`` times, then shows its state."""
        for _ in range(params.get("Times", 1)):
            self.board.led_enable(True)
            await asyncio.sleep(_BLINK_MS / 1000)
            self.board.led_enable(False)
            await asyncio.sleep(_BLINK_MS / 1000)
        self.board.led_enable(self.led_switch == 1)
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
        step = self._demo % _DEMO_STEPS
        self._demo += 1
        half = _DEMO_STEPS // 2
        params = {
            "Uptime": self._uptime_ms // 1000,
            "FreeHeap": self.board.free_heap(),
            "DemoValue": (step if step <= half else _DEMO_STEPS - step) * 100 // half,
            "ReportInterval": self.interval_s,
            "LEDSwitch": self.led_switch,
        }
        dbm = getattr(self.session, "signal_dbm", None)
        if dbm is not None:
            params["RSSI"] = dbm
        return params

    async def _telemetry(self) -> None:
        # Offline a post goes into the session's QoS1 outbox (or its store on flash), delivered
        # after recovery: the app does not wait for its reply then. A failed post must not
        # stop the loop. With a store the readings start at once, else once online.
        if not getattr(self.session, "has_store", False):
            await self._online.wait()
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
                elif code is None and getattr(self.session, "has_store", False):
                    self.log("info", "up properties: stored, sent after the older ones")
                else:
                    self.log("warning", "up properties: %s" % (code or "no reply"))
            except AlinkError as exc:  # the thing model refused it before it left
                self.log("error", "property post refused on the device: " + exc.message)
            except Exception as exc:
                self.log("warning", "property post failed: " + repr(exc))
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
