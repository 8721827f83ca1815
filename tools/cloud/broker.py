"""amqtt broker with the platform's session behaviour (reference §1.5, §1.6).

amqtt's plugins decide who may connect and which topics a session may use (broker_auth, topics);
this subclass adds what its plugin API cannot express:

* CONNACK return codes other than 5: the auth verdict carries the code (broker_auth).
* One session per device, whatever its clientId; a new connection of a device kicks the previous
  one offline (§1.5), and a refused CONNECT never touches an existing session.
* Device uplinks end at the cloud: they are handled and logged, never forwarded to other
  sessions (on Aliyun only the rule engine forwards). Will and retained messages are dropped:
  the platform supports neither on MQTT 3.1.1 (§1.5).
* QoS 0 and 1 only: a QoS 2 PUBLISH closes the connection, subscriptions are granted QoS ≤ 1.
* Keep-alive: a session silent for 1.5 × its keep-alive is disconnected ([S5]).
"""

import asyncio
import contextlib
import logging
import math

from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from tools.cloud.broker_auth import VERDICT, Verdict

log = logging.getLogger("aliyun-local.broker")
KICK_TIMEOUT_S = 5
AUTO = "aliyun.auto_subscribe"  # session attribute while the server subscribes for an SDK


class AliyunHandler(BrokerProtocolHandler):
    """Protocol handler of one connection; ``finished`` is set once the broker let it go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.finished = asyncio.Event()

    def handle_read_timeout(self):
        # The read timeout is the session keep-alive, set to 1.5 × the CONNECT value ([S5]).
        if self.session is not None and self.session.keep_alive > 0:
            log.info("%s: keep-alive expired, disconnecting", self.session.client_id)
            asyncio.ensure_future(self.handle_connection_closed())

    async def handle_publish(self, publish_packet):
        if publish_packet.qos == 2:  # §1.5: QoS 0 and 1 only
            log.warning("%s: QoS 2 PUBLISH, disconnecting", getattr(self.session, "client_id", ""))
            await self.handle_connection_closed()
            return
        await super().handle_publish(publish_packet)


class AliyunBroker(Broker):
    """The broker of the local cloud; ``cloud`` is the owning server (registry, log)."""

    keepalive_factor = 1.5  # disconnect after this many keep-alive periods of silence ([S5])

    def __init__(self, config, cloud):
        super().__init__(config)
        self.cloud = cloud

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        try:
            handler, incoming = await AliyunHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except MQTTError:
            await writer.close()  # amqtt already answered with its CONNACK code
            raise
        except NoDataError as exc:
            raise AMQTTError(exc) from exc
        # The Aliyun rules run before any session lookup, so a refused CONNECT changes nothing.
        await super()._authenticate(incoming, None)
        verdict = incoming.attributes.get(VERDICT) or Verdict(5, "no verdict")
        if verdict.identity is None:
            await ConnackPacket.build(0, verdict.rc).to_stream(writer)
            await writer.close()
            raise MQTTError("CONNECT refused (rc=%d): %s" % (verdict.rc, verdict.reason))
        identity = verdict.identity
        key = identity.key
        incoming.client_id = key
        await self.kick(key, "a new connection of the same device")
        session = incoming
        if incoming.clean_session:
            await self._delete_session(key)
        elif key in self._sessions:
            session = self._sessions[key][0]  # persistent session of this device
            for name in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "username",
                "password",
                "remote_address",
                "remote_port",
                "ssl_object",
            ):
                setattr(session, name, getattr(incoming, name))
            session.attributes.update(incoming.attributes)
            session.parent = 1
        if session is incoming:
            session.parent = 0
        # Keep-alive timeout 1.5 × ([S5]); registration sessions are not checked (§3.2).
        alive = identity.keepalive if identity.kind == "device" else 0
        session.keep_alive = math.ceil(alive * self.keepalive_factor)
        if identity.auto_subscribe:
            session.attributes[AUTO] = True
            for topic in self.cloud.auto_subscriptions(identity):
                await self.add_subscription((topic, 1), session)
            del session.attributes[AUTO]
        return handler, session

    async def _authenticate(self, session, listener):
        verdict = session.attributes.get(VERDICT)
        return verdict is not None and verdict.identity is not None

    async def kick(self, key, reason) -> bool:
        """Disconnect the live connection of session ``key``; wait until the broker let it go."""
        entry = self._sessions.get(key)
        if entry is None or not entry[0].transitions.is_connected():
            return False
        session, handler = entry
        self.cloud.log_kick(session, reason)
        await handler.handle_connection_closed()
        if isinstance(handler, AliyunHandler):
            try:
                await asyncio.wait_for(handler.finished.wait(), KICK_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("%s: kicked connection did not finish in time", key)
        return True

    async def _handle_disconnect(self, client_session, handler, disconnect_waiter):
        try:
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        finally:
            if isinstance(handler, AliyunHandler):
                handler.finished.set()

    async def _broadcast_message(self, session, topic, data, force_qos=None):
        if session is not None:
            return  # device uplinks (and wills) end at the cloud
        await super()._broadcast_message(session, topic, data, force_qos)

    async def retain_message(self, source_session, topic_name, data, qos=None):
        if source_session is not None:
            return  # no retained messages on MQTT 3.1.1 (§1.5)
        await super().retain_message(source_session, topic_name, data, qos)

    async def add_subscription(self, subscription, session):
        topic_filter, qos = subscription
        return await super().add_subscription((topic_filter, min(qos, 1)), session)

    async def push(self, key, topic, payload: bytes, qos=0) -> bool:
        """Send a PUBLISH to session ``key`` only, without a subscription (``/ext/register``)."""
        entry = self._sessions.get(key)
        if entry is None or not entry[0].transitions.is_connected():
            return False
        with contextlib.suppress(AMQTTError, ConnectionError):
            await entry[1].mqtt_publish(topic, payload, qos, retain=False)
            return True
        return False

    def subscribers(self, topic) -> list:
        """Session keys whose subscriptions match ``topic``."""
        keys = []
        for topic_filter, subscriptions in self._subscriptions.items():
            if self._matches(topic, topic_filter):
                keys += [s.client_id for s, _ in subscriptions]
        return keys

    def session_connected(self, key) -> bool:
        entry = self._sessions.get(key)
        return entry is not None and entry[0].transitions.is_connected()

    def listener_ports(self) -> dict:
        """Bound port of each listener (port 0 in the config means the OS chose)."""
        return {
            name: server.instance.sockets[0].getsockname()[1]
            for name, server in self._servers.items()
        }
