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
* The platform's limits (``limits``): the first packet must be an MQTT 3.1.1 CONNECT within the
  CONNECT timeout, 8 filters per SUBSCRIBE and 100 subscriptions per device, uplink message
  rates and the payload size; the CONNECT rate is checked with the credentials (broker_auth).
"""

import asyncio
import contextlib
import functools
import logging
import math

from amqtt.broker import Broker
from amqtt.contexts import ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket

from tools.cloud import certs
from tools.cloud import limits as lim
from tools.cloud.broker_auth import VERDICT, Verdict

log = logging.getLogger("aliyun-local.broker")
KICK_TIMEOUT_S = 5
AUTO = "aliyun.auto_subscribe"  # session attribute while the server subscribes for an SDK
SUBS = "aliyun.subscriptions"  # session attribute: the filters the session holds (§4.1 limit)
REFUSED = 0x80  # SUBACK failure return code


class AliyunHandler(BrokerProtocolHandler):
    """Protocol handler of one connection; ``finished`` is set once the broker let it go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.finished = asyncio.Event()
        self.cloud = None
        self.guarded_reader = None

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
        qos = publish_packet.qos
        if self.cloud is not None and not self.cloud.uplink_allowed(self.session, qos):
            # §4.9: over the rate the platform drops, without feedback over MQTT
            self.cloud.log_throttled(self.session, publish_packet, qos)
            if qos == 1:
                await self._send_packet(PubackPacket.build(publish_packet.packet_id))
            return
        await super().handle_publish(publish_packet)


class AliyunBroker(Broker):
    """The broker of the local cloud; ``cloud`` is the owning server (registry, log)."""

    keepalive_factor = 1.5  # disconnect after this many keep-alive periods of silence ([S5])

    def __init__(self, config, cloud):
        super().__init__(config)
        self.cloud = cloud
        self.limits = cloud.limits

    async def _create_server_instance(self, name, kind, address, port, ssl_context):
        if ssl_context is None or kind != ListenerType.TCP:
            return await super()._create_server_instance(name, kind, address, port, ssl_context)
        # The CONNECT timeout covers the TLS handshake too (asyncio's default waits 60 s).
        return await asyncio.start_server(
            functools.partial(self.stream_connected, listener_name=name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            ssl_handshake_timeout=self.limits.connect_timeout_s,
        )

    @staticmethod
    def _create_ssl_context(listener):
        context = Broker._create_ssl_context(listener)
        certs.accept_module_suites(context)  # the Air724's TLS 1.2 RSA suites (§8)
        return context

    async def _first_packet(self, reader, writer, remote):
        """The checked CONNECT bytes (limits.read_connect); a refusal closes the connection."""
        try:
            return await lim.read_connect(reader, self.limits.connect_timeout_s)
        except lim.FirstPacketError as err:
            if err.connack is not None:
                with contextlib.suppress(ConnectionError):
                    await ConnackPacket.build(0, err.connack).to_stream(writer)
            self.cloud.log_closed(remote, err.reason, err.connack)
            await writer.close()
            raise AMQTTError(err.reason) from None
        except (EOFError, ConnectionError) as exc:
            await writer.close()
            raise AMQTTError("closed before CONNECT") from exc

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        remote = "%s:%s" % (remote_address, remote_port)
        prefix = await self._first_packet(reader, writer, remote)
        guarded = lim.GuardedReader(reader, prefix, self.limits.message_bytes, None)
        try:
            handler, incoming = await AliyunHandler.init_from_connect(
                guarded, writer, self.plugins_manager
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
        handler.cloud, handler.guarded_reader = self.cloud, guarded
        guarded.on_oversized = lambda size: self.cloud.log_oversized(identity, size)
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

    async def _handle_client_session(self, reader, writer, session, handler, *args):
        guarded = getattr(handler, "guarded_reader", None)  # reads on past the CONNECT
        await super()._handle_client_session(guarded or reader, writer, session, handler, *args)

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

    async def _handle_subscription(self, session, handler, subscribe_waiter):
        """SUBACK for one SUBSCRIBE: 0x80 for each filter after the 8th (§4.1)."""
        request = subscribe_waiter.result()
        most = self.limits.filters_per_subscribe
        codes = []
        for index, subscription in enumerate(request.topics):
            if index < most:
                codes.append(await self.add_subscription(subscription, session))
            else:
                codes.append(REFUSED)
                self.cloud.log_sub_limit(session, subscription[0], "more than %d filters" % most)
        await handler.mqtt_acknowledge_subscription(request.packet_id, codes)
        for subscription, code in zip(request.topics, codes, strict=True):
            if code != REFUSED:  # what amqtt does after its SUBACK
                await self.plugins_manager.fire_event(
                    BrokerEvents.CLIENT_SUBSCRIBED,
                    client_id=session.client_id,
                    topic=subscription[0],
                    qos=subscription[1],
                )
                await self._publish_retained_messages_for_subscription(subscription, session)

    async def add_subscription(self, subscription, session):
        topic_filter, qos = subscription
        held = session.attributes.setdefault(SUBS, set())
        most = self.limits.subscriptions_per_device
        if topic_filter not in held and len(held) >= most:  # §4.1: 100 per device
            self.cloud.log_sub_limit(session, topic_filter, "%d subscriptions held" % most)
            return REFUSED
        code = await super().add_subscription((topic_filter, min(qos, 1)), session)
        if code != REFUSED:
            held.add(topic_filter)
        return code

    def _del_subscription(self, a_filter, session):
        session.attributes.get(SUBS, set()).discard(a_filter)
        return super()._del_subscription(a_filter, session)

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
