"""Session supervisor: from power-on to online on Aliyun IoT, and back online after every fault.

States, in order: sync (autobaud, echo off) -> sim -> network (registered and attached) ->
bearer (SAPBR, only when the login needs HTTPS) -> auth -> connect (MCONFIG, (SSL)MIPSTART,
MCONNECT) -> subscribe -> online (the steps live in ``aliyun.bringup``). A failure, or a link
event while online (CLOSED, PDP deactivation, RDY, SIM removed), goes to ``backoff``:
``Recovery`` names the remedy (MQTT reconnect -> bearer reset -> AT+CFUN cycle -> AT+RESET ->
PWRKEY power cycle) and the jittered delay, then the bring-up starts over with that remedy.
Credentials the cloud refuses (auth codes 401/460/5001/6200, repeated CONNACK refusals) are
permanent faults: reported, then retried only after a long wait.

QoS1 messages go through a bounded ``Outbox`` and leave it only after PUBACK, so what the
application handed over while offline is delivered after recovery, in order. Property posts
(``store=True``, with a ``store`` section in the config) go to flash instead
(``aliyun.backlog``): they survive resets and power cuts, carry their measurement time once
NTP answered, and leave the store after PUBACK, after the outbox's messages. The board's
watchdog is fed only by this supervisor, at each step and while it waits healthy.

RAM: the bring-up code and what it needs (module checks, signing, HTTPS auth, the HTTP client)
is imported for each bring-up and unloaded before going online; online, only the MQTT path,
the thing-model dispatch and this module stay loaded.
"""

import asyncio
import gc
import sys

from micropython import const

from air724 import check_publish
from aliyun import alink
from aliyun.outbox import Outbox
from aliyun.recovery import Recovery
from aliyun.thing import Thing
from atmodem.channel import ticks_diff, ticks_ms  # with their CPython stand-ins

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only (a type checker takes this branch)
    from air724 import Air724
    from aliyun.alink import Topics

if hasattr(asyncio, "wait_for_ms"):
    _wait_ms = asyncio.wait_for_ms
else:  # CPython

    def _wait_ms(aw, timeout: int):
        return asyncio.wait_for(aw, timeout / 1000)


_WATCHDOG_MS = const(120000)
_HEALTH_MS = const(60000)  # online: one AT+MQTTSTATU per minute (no busy polling)
_INBOX = const(16)
_LINK_DOWN = ("closed", "pdp_deact", "reboot", "sim_removed")  # air724.events names
_CLOCK_RETRY_MS = const(10000)  # stored readings wait for NTP: asked again this often
_CLOCK_VALID_S = const(1577836800)  # 2020-01-01: an unset module clock reads older


class LinkLostError(Exception):
    """The link went down (event name in ``args[0]``)."""


class PermanentError(Exception):
    """A fault that retrying soon cannot repair (bad credentials, unknown device)."""


class Session:
    """One device's link to Aliyun IoT over an Air724UG on ``board`` (see firmware/boards).

    ``config`` is the validated config.json (firmware/config.py); ``log(level, message)``;
    ``store_path`` keeps the device secret obtained by dynamic registration.
    """

    def __init__(
        self,
        board,
        config: dict,
        log=None,
        store_path: str = "device_secret.json",
        store_dir: str = "store",
    ):
        self.board = board
        self.config = config
        self.log = log or _no_log
        self.store_path = store_path
        self.state = "sync"
        self.online = False
        self.device_name = config["device_name"]
        self.signal_dbm = None
        self.firmware = None  # the module's firmware string once known
        # Set by name_known() (config.json or the IMEI) before any message goes out.
        self.topics: "Topics" = None  # pyright: ignore[reportAttributeAccessIssue]
        self.recovery = Recovery()
        self.outbox = Outbox()
        self.store_dir = store_dir  # readings on flash (aliyun.backlog), opened by name_known
        self.backlog = None
        self._parked = (
            None  # the store closed for a bring-up: [dir, segment, size, max, boot, stats]
        )
        self._clock_at_online = None  # the clock when the link came up: NTP refreshes it
        # Its topics are set by name_known(), before any message can arrive or leave.
        self.thing = Thing(None, self.log, ticks_ms)  # pyright: ignore[reportArgumentType]
        # Counters behind ``stats``.
        self.published = 0
        self.received = 0
        self.reconnects = 0
        self.state_changes = 0
        self.qos0_dropped = 0
        self._online_since = None
        self._time_to_online = None
        # Shared with aliyun.bringup.
        self.modem: "Air724" = None  # pyright: ignore[reportAttributeAccessIssue] - see _open
        self.token = None  # HTTPS auth token kept between logins (see aliyun.login)
        self.pdp_lost = False  # the default PDP context went down: an MQTT retry cannot help
        self.refusals = 0  # CONNACK refusals in a row
        self._state_cbs = []
        self._lost = asyncio.Event()
        self._lost_reason = None
        self._wake_outbox = asyncio.Event()
        self._started = ticks_ms()
        if self.device_name:
            self.name_known(self.device_name)

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
            "state_changes": self.state_changes,
            "store": self._store_state(),
        }

    @property
    def has_store(self) -> bool:
        """Property posts go to flash (the config has a ``store`` section)."""
        return bool(self.config.get("store"))

    def _store_state(self):
        if self.backlog is not None:
            return self.backlog.state(self.thing.clock, self.time_ms())
        return self._parked[5] if self._parked else None  # as when closed, plus new readings

    def on_state(self, callback) -> None:
        """``callback(state: str)`` after every state change."""
        self._state_cbs.append(callback)

    def subscribe(self, topic_filter: str, callback) -> None:
        """Deliver messages matching ``topic_filter`` to ``callback(topic, payload)``; the
        subscription is renewed after every reconnect."""
        if self.thing.subscribe(topic_filter, callback) and self.online:
            asyncio.create_task(self._subscribe_now(topic_filter))

    def on_property_set(self, schema: dict, callback) -> None:
        """Property sets are checked against ``schema`` (see ``alink.check_properties``) and
        answered by the session; ``callback(accepted: dict)`` applies them."""
        self.thing.on_property_set(schema, callback)

    def on_service(self, identifier: str, callback) -> None:
        """``callback(params: dict) -> dict``: the data of the service reply."""
        self.thing.on_service(identifier, callback)

    async def publish(self, topic: str, payload, qos: int = 0) -> bool:
        """QoS1: accepted into the outbox (even offline) and sent in order, each after the
        previous PUBACK; True unless the outbox had to drop its oldest message. QoS0: sent now
        if online, else dropped (False, counted). A topic or payload the module cannot carry
        raises ``atmodem.ArgumentError`` at once."""
        check_publish(topic, payload)  # a bad topic or payload fails here, not in the outbox
        if qos == 1:
            kept = self.outbox.put(topic, payload)
            if not kept:
                self.log("warning", "outbox full: oldest message dropped")
            self._wake_outbox.set()
            return kept
        if not self.online:
            self.qos0_dropped += 1
            return False
        try:
            await self.modem.mqtt.publish(topic, payload, 0)
        except Exception as exc:  # the link failed under us: recovery takes over
            self._link_failed(exc)
            return False
        self.published += 1
        return True

    async def post_properties(self, params: dict, timeout_ms: int = 10000, store: bool = True):
        """Post thing-model properties (QoS1); the ``post_reply`` code, or None on timeout.

        ``store``: the reading goes to flash first, with its measurement time (see module doc);
        its reply is awaited only while online. OSError if the filesystem refuses it."""
        parked = self._parked
        if store and parked is not None:  # during a bring-up
            return self._spool(parked, params)
        if not store or self.backlog is None:
            return await self._request(
                self.topics.property_post, "thing.event.property.post", params, timeout_ms
            )
        msg_id = self.thing.ids()
        waiter = self.thing.expect_reply(msg_id)
        try:
            measured = self.time_ms()
            if not self.backlog.add(msg_id, params, measured, ticks_ms()):
                self.log("warning", "store full: oldest readings dropped")
            self.log("debug", "stored %s t=%s" % (msg_id, measured))
            self._wake_outbox.set()
            if not self.online or timeout_ms <= 0 or self.backlog.store.records > 1:
                return None  # offline, or behind older readings: the reply comes much later
            await _wait_ms(waiter.event.wait(), timeout_ms)
            return waiter.code
        except asyncio.TimeoutError:
            return None
        finally:
            self.thing.forget(msg_id)

    async def post_event(self, identifier: str, params: dict, timeout_ms: int = 10000):
        """Post a thing-model event (QoS1); the reply code, or None on timeout."""
        method = "thing.event." + identifier + ".post"
        return await self._request(self.topics.event_post(identifier), method, params, timeout_ms)

    def time_ms(self):
        """Epoch milliseconds once NTP over /ext/ntp answered (after each connect), else None."""
        clock = self.thing.clock
        return None if clock is None else clock[0] + ticks_diff(ticks_ms(), clock[1])

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
                self.set_state("backoff")
                self.log("info", "retry in %d ms (%s)" % (delay_ms, remedy))
                await self._sleep_fed(delay_ms)

    def _failed(self, exc) -> tuple:
        if isinstance(exc, PermanentError):
            self.log("error", "permanent fault: %s" % exc)
            return self.recovery.failed(permanent=True)
        self.log("warning", "%s failed: %s" % (self.state, self._lost_reason or _describe(exc)))
        if self.pdp_lost:
            # §5.3: after a PDP deactivation only CFUN 0/1 or a reset brings it back.
            self.recovery.escalate("cfun")
        return self.recovery.failed()

    async def _bring_up(self, remedy) -> None:
        self._lost.clear()
        self._lost_reason = None
        self.set_state("sync")
        self.park_store()
        await self._open()
        try:
            from aliyun.bringup import bring_up

            await bring_up(self, remedy)
        finally:
            self.modem.release()
            self.reopen_store()
            # Even when the import itself failed (a MemoryError half-way can leave a partial
            # module in sys.modules that every later import would return): the next bring-up
            # loads it afresh.
            loaded = sys.modules.get("aliyun.bringup")
            unload(getattr(loaded, "LOADED_FOR_BRING_UP", ("aliyun.bringup",)))

    async def _serve(self) -> None:
        """Online: publish the outbox, dispatch downlinks, check health; until the link fails."""
        pump = asyncio.create_task(self._pump())
        inbox = asyncio.create_task(self._dispatch())
        self._sync_clock()
        try:
            while True:
                try:
                    await _wait_ms(self._lost.wait(), _HEALTH_MS)
                except asyncio.TimeoutError:
                    self.board.feed()
                    await self._health()
                    continue
                raise LinkLostError(self._lost_reason)
        finally:
            pump.cancel()
            inbox.cancel()

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

    async def _subscribe_now(self, topic_filter: str) -> None:
        try:
            await self.modem.mqtt.subscribe(topic_filter, 1)
        except Exception as exc:
            self._link_failed(exc)

    # -- online tasks --

    async def _pump(self) -> None:
        """Publish the outbox in order, one QoS1 message at a time (§7.1: PUBACK first)."""
        mqtt = self.modem.mqtt
        while True:
            message = self.outbox.peek()
            if message is None and self.backlog is not None:
                try:
                    message = self._stored()
                except MemoryError:  # a fragmented heap: once more after a collection
                    gc.collect()
                    try:
                        message = self._stored()
                    except Exception as exc:
                        self._link_failed(exc)
                        return
            if message is None:
                self._wake_outbox.clear()
                if self.backlog is not None and self.backlog.store.records:
                    try:  # readings wait for the clock
                        await _wait_ms(self._wake_outbox.wait(), _CLOCK_RETRY_MS)
                    except asyncio.TimeoutError:
                        self._sync_clock()
                    continue
                await self._wake_outbox.wait()
                continue
            try:
                await mqtt.publish(message[0], message[1], 1)
            except Exception as exc:
                self._link_failed(exc)
                return  # stays in the outbox: sent again after recovery
            if len(message) == 3:
                self.backlog.store.ack(message[2])  # pyright: ignore[reportOptionalMemberAccess]
            else:
                self.outbox.pop()
            self.published += 1
            # Let a waiting QoS0 publish (a set_reply, the NTP request) take the channel before
            # the next QoS1 message: the channel's lock is not first-come-first-served.
            await asyncio.sleep(0)

    async def _dispatch(self) -> None:
        mqtt = self.modem.mqtt
        while True:
            try:
                topic, payload = await mqtt.message(_HEALTH_MS)
            except Exception:  # no message within the period: wait again
                continue
            self.received += 1
            reply = self.thing.dispatch(topic, payload)
            if reply is not None:
                await self.publish(reply[0], reply[1], 0)

    async def _health(self) -> None:
        if await self.modem.mqtt.status() != 1:
            self._link_failed("mqtt status")

    async def module_clock(self, module) -> None:
        """Until NTP answers, the module's network clock (``AT+CCLK?``, whole seconds) dates
        readings, if it is set (NITZ); called by the bring-up."""
        if self.thing.clock is not None or not self.config.get("store"):
            return
        try:
            seconds = await module.clock()
        except Exception:  # no clock is no fault
            return
        if seconds > _CLOCK_VALID_S:
            self.thing.clock = (seconds * 1000, ticks_ms())
            self.log("info", "clock set by the module")

    def park_store(self) -> None:
        """Close the store and unload its code for a bring-up (RAM for the login); readings
        taken meanwhile go to new segment files through ``aliyun.spool``."""
        backlog = self.backlog
        if backlog is not None:
            store = backlog.store
            state = backlog.state(self.thing.clock, self.time_ms())
            self._parked = [
                store.root,
                store._last + 1,
                0,
                store.segment_bytes,
                backlog.boot,
                state,
            ]
            self.backlog = None
            unload(("aliyun.backlog", "aliyun.store"))

    def reopen_store(self) -> None:
        parked, self._parked = self._parked, None
        if parked is not None:
            self._open_backlog(parked[4])

    def _spool(self, parked: list, params: dict) -> None:
        from aliyun import spool  # loaded: the store's own append

        msg_id, measured = self.thing.ids(), self.time_ms()
        record = spool.reading(msg_id, params, measured, parked[4], ticks_ms())
        if parked[2] and parked[2] + spool.HEAD + len(record) > parked[3]:
            parked[1] += 1  # segment full: the next (the store's naming, aliyun.store)
            parked[2] = 0
        parked[2] += spool.append("%s/%d.q" % (parked[0], parked[1]), record)
        parked[5]["records"] += 1
        self.log("debug", "stored %s t=%s" % (msg_id, measured))

    def _stored(self):
        """The next message from the backlog, dated by a clock NTP set since this connect."""
        clock = self.thing.clock
        if clock is self._clock_at_online:
            clock = None  # the cloud's clock may have moved: wait for this link's NTP answer
        now = self.time_ms() if clock is not None else 0
        backlog = self.backlog
        if backlog is None:
            return None
        if backlog.store.records > 1:
            gc.collect()  # a batch of old readings is the largest message
        return backlog.next(clock, now, self.topics.property_post)

    def _sync_clock(self) -> None:
        payload = alink.ntp_request(ticks_ms())
        asyncio.create_task(self.publish(self.topics.ntp_request, payload, 0))

    # -- helpers --

    async def _request(self, topic: str, method: str, params: dict, timeout_ms: int):
        msg_id = self.thing.ids()
        waiter = self.thing.expect_reply(msg_id)
        try:
            await self.publish(topic, alink.encode_request(msg_id, method, params), 1)
            await _wait_ms(waiter.event.wait(), timeout_ms)
            return waiter.code
        except asyncio.TimeoutError:
            return None
        finally:
            self.thing.forget(msg_id)

    def name_known(self, device_name: str) -> None:
        """The device name is known (config.json, else the IMEI): the topics follow from it."""
        self.device_name = device_name
        product_key = self.config["product_key"]
        self.topics = self.thing.topics = alink.Topics(product_key, device_name)
        if self.backlog is None:
            self._open_backlog()
            if self.backlog is not None:
                # Ids must differ from those of readings stored by earlier runs (unique per
                # device per day, reference §4.2): a million per run, counted by the store.
                self.thing._next_id = 1 + (self.backlog.store.boot % 4000) * 1000000

    def _open_backlog(self, boot=0) -> None:
        section = self.config.get("store")
        if section:
            from aliyun.backlog import Backlog

            pk, dn = self.config["product_key"], self.device_name
            self.backlog = Backlog(self.store_dir, section["max_bytes"], pk, dn, ticks_diff, boot)

    def _on_link_event(self, name: str, line: bytes) -> None:
        # Called from the reader task: only note it; the supervisor acts. Before the MQTT link
        # is up the bring-up checks each step itself, so an event then (RDY at power-on) is
        # no fault; a PDP loss is remembered, as it decides the remedy.
        if name == "pdp_deact":
            self.pdp_lost = True
        if name in _LINK_DOWN and self.state in ("subscribe", "online"):
            self._link_failed(name)

    def _link_failed(self, why) -> None:
        if not self._lost.is_set():
            self._lost_reason = why if type(why) is str else _describe(why)
            self._lost.set()

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
        self.set_state("online")
        self._wake_outbox.set()

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.state_changes += 1
        self.board.feed()
        self.board.led("online" if state == "online" else "connecting")
        for callback in self._state_cbs:
            callback(state)

    async def _sleep_fed(self, delay_ms: int) -> None:
        """Sleep ``delay_ms`` while feeding the watchdog (a deliberate wait is progress)."""
        while delay_ms > 0:
            step = min(delay_ms, _WATCHDOG_MS // 4)
            await asyncio.sleep(step / 1000)
            self.board.feed()
            delay_ms -= step


def _no_log(level, message):
    pass


def _describe(exc) -> str:
    text = str(exc)
    return type(exc).__name__ + (": " + text if text else "")


def unload(names) -> None:
    """Drop modules from ``sys.modules`` and their packages so the GC can free their code."""
    for name in names:
        if sys.modules.pop(name, None) is not None:
            package, _, attr = name.rpartition(".")
            parent = sys.modules.get(package)
            if parent is not None and hasattr(parent, attr):
                delattr(parent, attr)
    gc.collect()
