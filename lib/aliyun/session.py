"""Session supervisor: from power-on to online on Aliyun IoT, and back online after every fault.

States (``aliyun``), in order: sync -> sim -> network -> [bearer] -> auth -> connect (the
steps live in ``aliyun.bringup``) -> subscribe -> online. A failure, or a link event while
online (``air724.events.DOWN``), goes to ``backoff``: ``Recovery`` names the remedy (its
``LADDER``: MQTT reconnect -> bearer reset -> AT+CFUN cycle -> AT+RESET -> PWRKEY power
cycle) and the jittered delay, then the bring-up starts over with that remedy.
Credentials the cloud refuses (auth codes 401/460/5001/6200, repeated CONNACK refusals) are
permanent faults: reported, then retried only after a long wait.

The application API and the online tasks are ``aliyun.online.Online``, its base class.
QoS1 messages go through a bounded ``Outbox`` and leave it only after PUBACK, so what the
application handed over while offline is delivered after recovery, in order. The board's
watchdog is fed only by this supervisor, at each step and while it waits healthy.

RAM: the bring-up code and what it needs (module checks, signing, HTTPS auth, the HTTP client)
is imported for each bring-up and unloaded before going online; online, only the MQTT path,
the thing-model dispatch and this module stay loaded.
"""

import asyncio
import gc
import sys
from time import ticks_diff, ticks_ms

from micropython import const

from air724.events import DOWN, PDP_DEACT
from aliyun import BACKOFF, MQTT_UP, ONLINE, SUBSCRIBE, SYNC, Kept, PermanentError, unload
from aliyun.online import Online, describe
from aliyun.recovery import PDP_STEP, Recovery

_WATCHDOG_MS = const(120000)
_INBOX = const(16)


class Session(Online):
    """One device's link to Aliyun IoT over an Air724UG on ``board`` (see firmware/boards).

    ``config`` is the validated config.json (firmware/config.py); ``log(level, message)``;
    ``store_path`` keeps the device secret obtained by dynamic registration.
    """

    def __init__(self, board, config: dict, log=None, store_path: str = "device_secret.json"):
        super().__init__(board, config, log)
        self.store_path = store_path
        self.state = SYNC
        self.kept = Kept(self.device_name, store_path)  # what one bring-up leaves to the next
        self.recovery = Recovery()
        self._state_cbs = []
        self._started = ticks_ms()

    # -- application API --

    @property
    def signal_dbm(self) -> "int | None":
        """The signal at the last bring-up, in dBm (None: unknown)."""
        return self.kept.signal_dbm

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
        return self.recovery.failed()

    async def _bring_up(self, remedy) -> None:
        self._lost.clear()
        self._lost_reason = None
        self.set_state(SYNC)
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
        self.set_state(SUBSCRIBE)
        mqtt = self.modem.mqtt
        await mqtt.set_push()  # +MSUB pushed as it arrives (§7.2); lost on a reboot
        for topic_filter in self.thing.filters():
            await mqtt.subscribe(topic_filter, 1)

    async def _open(self) -> None:
        if self.modem is not None and not self.modem.channel.closed:
            return
        from air724 import Air724

        if self.modem is not None:
            self.board.close_uart()
        reader, writer = await self.board.open_uart()
        gc.collect()
        self.modem = Air724(reader, writer, queue_len=_INBOX)
        self.modem.start()
        self.modem.events.subscribe(self._on_link_event)

    def _on_link_event(self, name: str, line: bytes) -> None:
        # Called from the reader task: only note it; the supervisor acts. Before the MQTT link
        # is up the bring-up checks each step itself, so an event then (RDY at power-on) is
        # no fault; a PDP loss is remembered, as it decides the remedy.
        if name == PDP_DEACT:
            self.kept.pdp_lost = True
        if name in DOWN and self.state in MQTT_UP:
            self._link_failed(name)

    def _go_online(self) -> None:
        now = ticks_ms()
        if self._time_to_online is None:
            self._time_to_online = ticks_diff(now, self._started)
        else:
            self.reconnects += 1
        self._online_since = now
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
