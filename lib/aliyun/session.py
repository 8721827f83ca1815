"""Session supervisor: from power-on to online on Aliyun IoT, and back online after every fault.

States (``aliyun``), in order: sync -> sim -> network -> [bearer] -> auth -> connect (the
steps live in ``aliyun.bringup``) -> subscribe -> online. A failure, or a link event while
online (``air724.events.DOWN``), goes to ``backoff``: ``Recovery`` names the remedy (its
``LADDER``: MQTT reconnect -> bearer reset -> AT+CFUN cycle -> AT+RESET -> PWRKEY power
cycle) and the jittered delay, then the bring-up starts over with that remedy.
Credentials the cloud refuses (auth codes 401/460/5001/6200, repeated CONNACK refusals) are
permanent faults: reported, then retried only after a long wait.

The application API, the outbox pump and the downlink dispatch are ``aliyun.online.Online``,
its base class; this class runs them (``_serve``) under supervision: a task that ends by an error
is a link fault. A health check (``AT+MQTTSTATU``) runs every minute, or every quarter keepalive
if that is shorter. A silent half-open link (the module says connected, nothing passes) is found
from the application protocol: when nothing came down for half a keepalive the check sends an
NTP request, and when nothing has come down half a keepalive after that either, the link is
taken as lost: at most 1.5 keepalives of silence (the broker's own rule, aliyun-iot.md §1.5).
The NTP clock is asked again every 12 h online (ticks span 6.2 days). QoS1 messages leave the
bounded ``Outbox`` only after PUBACK: what the application handed over while offline is
delivered after recovery, in order. Only this supervisor feeds the board's watchdog.

RAM: the bring-up code (module checks, signing, HTTPS auth, the HTTP client) is imported for each
bring-up and unloaded before going online, where the MQTT path and the dispatch stay loaded.
"""

import asyncio
import gc
import sys
from time import ticks_diff, ticks_ms

from micropython import const

from air724.events import DOWN, PDP_DEACT
from aliyun import BACKOFF, MQTT_UP, ONLINE, SUBSCRIBE, SYNC, Kept, PermanentError, unload
from aliyun.online import Online, SubscribeError, describe
from aliyun.recovery import DEAF_STEP, LADDER, PDP_STEP, STEPS, Recovery
from atmodem import EV_HANDLER_ERROR, wait_ms
from atmodem.errors import ATTimeoutError

_WATCHDOG_MS = const(120000)
_HEALTH_MS = const(60000)  # online: one AT+MQTTSTATU per minute (no busy polling)
_CLOCK_MS = const(43200000)  # online: NTP again after 12 h, well within ticks' +-6.2 days
_INBOX = const(16)
# What the AT engine reports when a downlink (or a line) could not be delivered, by EV_* value,
# as the reason logged and counted in ``downlinks_dropped`` (a handler error: the +MSUB handler
# raised, e.g. a MemoryError for a large payload).
_DROPS = (None, "line over the buffer", "over data_max", "handler error", None, None, "truncated")


class LinkLostError(Exception):
    """The link went down (event name in ``args[0]``)."""


class Session(Online):
    """One device's link to Aliyun IoT over an Air724UG on ``board`` (see firmware/boards).

    ``config`` is the validated config.json (firmware/config.py); ``log(level, message)``;
    ``store_path`` keeps the device secret obtained by dynamic registration.
    """

    def __init__(
        self, board, config: dict, log=None, store_path="device_secret.json", store_dir="store"
    ):
        super().__init__(board, config, log, store_dir)
        self.store_path = store_path
        self.state = SYNC
        self.kept = Kept(self.device_name, store_path)  # what one bring-up leaves to the next
        self.kept.wants_clock = self.has_store
        self.recovery = Recovery()
        self._state_cbs = []
        self._started = ticks_ms()
        keepalive_ms = config.get("keepalive_s", 300) * 1000
        self._health_ms = min(_HEALTH_MS, keepalive_ms // 4)
        self._quiet_ms = keepalive_ms // 2  # silence that earns a probe, and a probe's wait

    # -- application API --

    @property
    def stats(self) -> dict:
        """Counters for logs and summaries (``dropped``: outbox overflow, QoS0 while offline,
        downlinks lost to a full queue)."""
        inbox_dropped = self.modem.inbox.dropped if self.modem is not None else 0
        return {
            "online_since_ms": self._online_since,
            "time_to_online_ms": self._time_to_online,
            "reconnects": self.reconnects,
            "published": self.published,
            "received": self.received,
            "dropped": self.outbox.dropped + self.qos0_dropped + inbox_dropped,
            "downlinks_dropped": sum(self.downlinks_dropped.values()),
            "app_errors": self.app_errors,
            "state_changes": self.state_changes,
            "store": self.readings and self.readings.state(self.thing.clock, self.time_ms()),
        }

    @property
    def signal_dbm(self) -> "int | None":
        """The signal at the last bring-up, in dBm (None: unknown)."""
        return self.kept.signal_dbm

    def time_ms(self):
        """Epoch ms: NTP's clock, else the module's network clock once the bring-up read it
        (taken over at once: a long network wait must not leave readings undated)."""
        if self.thing.clock is None and self.kept.clock is not None:
            self.thing.clock = self.kept.clock
            self.log("info", "clock set by the module")
        return super().time_ms()

    def on_state(self, callback) -> None:
        """``callback(state: str)`` after every state change."""
        self._state_cbs.append(callback)

    # -- supervision --

    async def run(self) -> None:
        """Bring the device online and keep it there; never returns."""
        self.board.watchdog(_WATCHDOG_MS)
        remedy = None
        while True:
            try:
                await self._bring_up(remedy)
                self._go_online()
                await self._serve()  # returns only by raising
            except Exception as exc:  # every fault ends here; the ladder decides what next
                remedy, delay_ms = self._failed(exc)
                self.online = False
                self._online_since = None
                self.set_state(BACKOFF)
                # No remedy after a permanent fault: only the wait.
                self.log("info", "retry in %d ms (%s)" % (delay_ms, remedy or "wait"))
                await self._sleep_fed(delay_ms)

    def _failed(self, exc) -> tuple:
        if isinstance(exc, PermanentError):
            self.log("error", "permanent fault: %s" % exc)
            return self.recovery.failed(permanent=True)
        self.log("warning", "%s failed: %s" % (self.state, self._lost_reason or describe(exc)))
        if self.kept.pdp_lost:
            # §5.3: after a PDP deactivation only CFUN 0/1 or a reset brings it back.
            self.recovery.escalate(PDP_STEP)
        if self.state == SYNC and isinstance(exc, ATTimeoutError):
            self.recovery.escalate(DEAF_STEP)  # no answer to AT: the engine may be deaf
        return self.recovery.failed()

    async def _bring_up(self, remedy) -> None:
        self._lost.clear()
        self._lost_reason = None
        self.set_state(SYNC)
        self.thing.release_model()  # the checks and serving code: loaded again when needed
        readings = self.readings
        if readings is not None:  # its code leaves RAM for the bring-up (aliyun.readings)
            readings.park(self.thing.clock, self.time_ms())
        if remedy is not None and LADDER[STEPS.index(remedy)][3] and self.modem is not None:
            await self.modem.close()  # a new channel on a reopened UART (_open)
        await self._open()
        kept = self.kept
        try:
            from aliyun.bringup import bring_up

            await bring_up(
                self.modem, self.board, self.config, kept, remedy, self.set_state, self.log
            )
        finally:
            if kept.device_name != self.device_name:
                self.name_known(kept.device_name)  # the IMEI, read by the bring-up
            self.modem.release()
            # Even when the import itself failed (a MemoryError half-way can leave a partial
            # module in sys.modules that every later import would return): the next bring-up
            # loads it afresh.
            loaded = sys.modules.get("aliyun.bringup")
            unload(getattr(loaded, "LOADED_FOR_BRING_UP", ("aliyun.bringup",)))
            if readings is not None:
                readings.reopen(self.log)
        self.set_state(SUBSCRIBE)
        await self._subscribe_all(self.modem.mqtt)

    async def _subscribe_all(self, mqtt) -> None:
        await mqtt.set_push()  # +MSUB pushed as it arrives (§7.2); lost on a reboot
        for topic_filter in self.thing.filters():  # back to back, each SUBACK checked
            try:
                await self.subscribe_one(topic_filter)
            except SubscribeError:
                pass  # logged with its topic, kept in ``refused``: the others still go
        if mqtt.cached:  # "+MSUB: <slot>" notices came before push mode was set: fetch them
            await mqtt.fetch()

    async def _open(self) -> None:
        if self.modem is not None and not self.modem.channel.closed:
            return
        from air724 import Air724

        if self.modem is not None:
            # Its buffers go before the new channel's are allocated.
            self.modem = None  # pyright: ignore[reportAttributeAccessIssue]
            self.board.close_uart()
        reader, writer = await self.board.open_uart()
        gc.collect()
        self.modem = Air724(reader, writer, queue_len=_INBOX)
        self.modem.on_event = self._on_engine_event
        self.modem.start()
        self.modem.events.subscribe(self._on_link_event)

    def _on_engine_event(self, kind, data) -> None:
        # Called from the reader task: a downlink the engine could not deliver is logged and
        # counted with its reason.
        reason = _DROPS[kind] if kind < len(_DROPS) else None
        if reason is None:
            return
        if kind == EV_HANDLER_ERROR:
            reason += ": " + type(data).__name__
        drops = self.downlinks_dropped
        drops[reason] = drops.get(reason, 0) + 1
        self.log(
            "warning", "downlink dropped (%s%s)" % (reason, "" if data is None else ", %s" % data)
        )

    def _on_link_event(self, name: str, line: bytes) -> None:
        # Called from the reader task: only note it; the supervisor acts. Before the MQTT link
        # is up the bring-up checks each step itself, so an event then (RDY at power-on) is
        # no fault; a PDP loss is remembered, as it decides the remedy.
        if name == PDP_DEACT:
            self.kept.pdp_lost = True
        if name in DOWN and self.state in MQTT_UP:
            self._link_failed(name)

    async def _serve(self) -> None:
        """Online: publish the outbox, dispatch downlinks, check health; until the link fails."""
        self.outbox.held = False  # a pump cancelled mid-publish left it set
        pump = asyncio.create_task(self._supervised(self._pump))
        inbox = asyncio.create_task(self._supervised(self._dispatch))
        self._heard = ticks_ms()
        self._probed = None
        self._sync_clock()
        desired = asyncio.create_task(self._desired())
        try:
            while True:
                try:
                    await wait_ms(self._lost.wait(), self._health_ms)
                except ATTimeoutError:
                    self.board.feed()
                    await self._health()
                    continue
                raise LinkLostError(self._lost_reason)
        finally:
            pump.cancel()
            inbox.cancel()
            desired.cancel()

    async def _supervised(self, task) -> None:
        # A long-lived task that ends by an error would leave the session online but deaf.
        try:
            await task()
        except Exception as exc:
            self.log("error", "%s died: %s" % (task.__name__, describe(exc)))
            self._link_failed(exc)

    async def _health(self) -> None:
        if await self.modem.mqtt.status() != 1:
            self._link_failed("mqtt status")
            return
        now = ticks_ms()
        probed = self._probed
        if probed is not None and ticks_diff(now, probed) >= self._quiet_ms:
            self._link_failed("no answer from the cloud (half-open link)")
        elif probed is None and ticks_diff(now, self._heard) >= self._quiet_ms:
            self._probed = now  # nothing came down for a while: ask for something
            self._sync_clock()
        elif self.thing.clock is not None and ticks_diff(now, self.thing.clock[1]) >= _CLOCK_MS:
            self._sync_clock()  # its base must stay recent: a post's time counts from it

    def _go_online(self) -> None:
        now = ticks_ms()
        if self._time_to_online is None:
            self._time_to_online = ticks_diff(now, self._started)
        else:
            self.reconnects += 1
        self._online_since = now
        self._clock_at_online = self.thing.clock
        self.recovery.succeeded()
        self.online = True
        self.set_state(ONLINE)
        self._wake_outbox.set()

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.state_changes += 1
        self.board.feed()
        self.board.led("online" if state == ONLINE else "connecting")
        for callback in self._state_cbs:
            callback(state)

    async def _sleep_fed(self, delay_ms: int) -> None:
        """Sleep ``delay_ms`` while feeding the watchdog (a deliberate wait is progress)."""
        while delay_ms > 0:
            step = min(delay_ms, _WATCHDOG_MS // 4)
            await asyncio.sleep_ms(step)
            self.board.feed()
            delay_ms -= step
