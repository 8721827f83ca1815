"""The local cloud in one process: MQTT broker (TCP and TLS), iot-auth HTTPS, control API.

``Cloud.start()`` binds every listener on loopback (port 0 = let the OS choose) and returns the
ready info; the same info (plus the control token) goes to ``<state dir>/server.json`` so the CLI
finds the running server. ``CloudThread`` runs a Cloud on its own event loop for tests and tools
that use blocking clients.
"""

import asyncio
import json
import logging
import os
import secrets
import threading
from pathlib import Path

from amqtt.contexts import BrokerConfig, ListenerConfig

from tools.cloud import certs
from tools.cloud import registry as reg
from tools.cloud.alink import Alink, identity_of
from tools.cloud.broker import AliyunBroker
from tools.cloud.broker_auth import CONNACK_TEXT, SERVER_UNAVAILABLE, RefusedError
from tools.cloud.control import ControlAPI
from tools.cloud.https import AuthAPI, HTTPServer
from tools.cloud.limits import Limits, SlidingWindow
from tools.cloud.otaserver import OtaService
from tools.cloud.text import printable
from tools.cloud.topics import auto_subscriptions

log = logging.getLogger("aliyun-local")

STATE_ENV = "ALIYUN_LOCAL_STATE"
SERVER_FILE = "server.json"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "https": 8443, "control": 0, "console": 0}
DEFAULT_REGION = "cn-shanghai"
MQTT_PORT_ADVERTISED = 1883  # what /auth/devicename reports, as the platform does (§2)


def default_state_dir() -> Path:
    """``$ALIYUN_LOCAL_STATE``, else ``$XDG_STATE_HOME/aliyun-local`` (~/.local/state)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "aliyun-local"


def read_server_file(state_dir):
    """The running server's info (ports, CA, control token), or None."""
    path = Path(state_dir) / SERVER_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Cloud:
    def __init__(
        self,
        state_dir,
        host="127.0.0.1",
        ports=None,
        region=DEFAULT_REGION,
        advertised_mqtt_port=MQTT_PORT_ADVERTISED,
        limits=None,
    ):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.host = host
        self.ports = dict(DEFAULT_PORTS, **(ports or {}))
        self.region = region
        self.advertised_mqtt_port = advertised_mqtt_port
        self.limits = limits or Limits()
        self.connects = SlidingWindow(self.limits.connects_per_minute, 60.0)
        self.uplinks = {
            0: SlidingWindow(self.limits.qos0_per_second, 1.0),
            1: SlidingWindow(self.limits.qos1_per_second, 1.0),
        }
        self.registry = None
        self.broker = None
        self.alink = Alink(self)
        self.ota = OtaService(self)
        self.info = {}
        self._servers = []
        self._token = secrets.token_hex(16)
        # The web console (tools/cloud/console); imported here so that CLI commands that run no
        # server do not load aiohttp.
        from tools.cloud.console import Console

        self.console = Console(self, self._token)

    # used by the plugins ----------------------------------------------------------------------

    @staticmethod
    def identity(session):
        return identity_of(session)

    def auto_subscriptions(self, identity):
        return auto_subscriptions(identity.product_key, identity.device_name)

    def mqtt_resource(self, product_key):
        host = "%s.iot-as-mqtt.%s.aliyuncs.com" % (product_key, self.region)
        return {"host": host, "port": self.advertised_mqtt_port}

    def check_connect_rate(self, info):
        """RefusedError (CONNACK 3) once a device made its CONNECTs of the minute (§1.5)."""
        user = info.username or ""
        if user.count("&") == 1:
            dn, pk = user.split("&")
            device = self.registry.device(pk, dn)
        else:
            device = self.registry.device_by_iot_id(user) if user else None
        if device is None:
            return  # names no device: refused by the CONNECT rules, nothing to count
        key = device["productKey"] + "&" + device["deviceName"]
        if not self.connects.allow(key):
            raise RefusedError(
                SERVER_UNAVAILABLE,
                "more than %d CONNECTs of %s in 60 s" % (self.limits.connects_per_minute, key),
            )

    def uplink_allowed(self, session, qos) -> bool:
        """Within the device's uplink rate for ``qos`` (§4.9); counts the message."""
        ident = identity_of(session)
        if ident is None or ident.kind != "device" or qos not in self.uplinks:
            return True
        return self.uplinks[qos].allow(ident.key)

    def log_throttled(self, session, packet, qos):
        ident = identity_of(session)
        limit = self.uplinks[qos].limit
        note = "over %d QoS %d messages/s: dropped" % (limit, qos)
        self.registry.log(
            reg.UP, ident.product_key, ident.device_name, packet.topic_name, note, "throttled"
        )

    def log_oversized(self, ident, size):
        note = "PUBLISH payload of %d bytes, over the %d-byte limit: dropped unread" % (
            size,
            self.limits.message_bytes,
        )
        self.registry.log(reg.UP, ident.product_key, ident.device_name, None, note, "denied")

    def log_closed(self, remote, reason, connack=None):
        """A connection closed before its CONNECT was read (timeout, not CONNECT, protocol)."""
        status = "closed" if connack is None else "rc=%d %s" % (connack, CONNACK_TEXT[connack])
        self.registry.log(
            reg.STATUS, None, None, None, {"remote": remote, "reason": reason}, status
        )
        log.info("connection from %s %s: %s", remote, status, printable(reason))

    def log_sub_limit(self, session, topic, why):
        ident = identity_of(session)
        if ident is not None:
            self.registry.log(
                reg.STATUS,
                ident.product_key,
                ident.device_name,
                topic,
                "subscribe: " + why,
                "denied",
            )

    def log_refused(self, info, refused):
        dn = pk = None
        if info.username and info.username.count("&") == 1:
            dn, pk = info.username.split("&")
        content = {"clientId": info.client_id, "username": info.username, "reason": refused.reason}
        content["remote"] = info.remote
        status = "rc=%d %s" % (refused.rc, CONNACK_TEXT.get(refused.rc, ""))
        self.registry.log(reg.STATUS, pk, dn, None, content, status)
        log.info("CONNECT refused (%s): %s", status, printable(refused.reason))

    def log_subscription(self, identity, topic, allowed, auto=False):
        status = 200 if allowed else "denied"
        what = "subscribe (by the server for an SDK client, _ss=1)" if auto else "subscribe"
        self.registry.log(
            reg.STATUS, identity.product_key, identity.device_name, topic, what, status
        )

    def log_kick(self, session, reason):
        ident = identity_of(session)
        if ident is not None:
            content = {"clientId": ident.client_id, "reason": reason}
            self.registry.log(
                reg.STATUS, ident.product_key, ident.device_name, None, content, "kicked"
            )

    # lifecycle --------------------------------------------------------------------------------

    async def start(self) -> dict:
        self.registry = reg.Registry(self.state_dir / reg.DB_NAME)
        self.registry.reset_online()
        paths = certs.ensure(self.state_dir, self.region)
        plugin_config = {"cloud": self}
        config = BrokerConfig(
            listeners={
                "default": ListenerConfig(bind="%s:%d" % (self.host, self.ports["mqtt"])),
                "tls": ListenerConfig(
                    bind="%s:%d" % (self.host, self.ports["mqtts"]),
                    ssl=True,
                    certfile=paths.cert,
                    keyfile=paths.key,
                ),
            },
            plugins={
                "tools.cloud.broker_auth.AliyunAuthPlugin": plugin_config,
                "tools.cloud.topics.AliyunTopicPlugin": plugin_config,
                "tools.cloud.alink.CloudPlugin": plugin_config,
            },
            timeout_disconnect_delay=0,
        )
        self.broker = AliyunBroker(config, self)
        await self.broker.start()
        bound = self.broker.listener_ports()
        self.ota.start()
        routes = {**AuthAPI(self).routes(), **self.ota.routes()}
        https = HTTPServer(routes, certs.server_context(paths), "https")
        control_api = ControlAPI(self, self._token)
        control_routes = {**control_api.routes(), **self.ota.control_routes(control_api.guard)}
        control = HTTPServer(control_routes, None, "control")
        self._servers = [https, control]
        https_port = await https.start(self.host, self.ports["https"])
        control_port = await control.start("127.0.0.1", self.ports["control"])
        self._servers.append(self.console)
        console_port = await self.console.start("127.0.0.1", self.ports["console"])
        self.info = {
            "ready": True,
            "pid": os.getpid(),
            "host": self.host,
            "ports": {
                "mqtt": bound["default"],
                "mqtts": bound["tls"],
                "https": https_port,
                "control": control_port,
                "console": console_port,
            },
            "console": self.console.url(),
            "ca": str(paths.ca),
            "region": self.region,
            "stateDir": str(self.state_dir),
        }
        server_file = self.state_dir / SERVER_FILE
        fd = os.open(server_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(self.info, token=self._token), f)
        return self.info

    async def stop(self):
        server_file = self.state_dir / SERVER_FILE
        info = read_server_file(self.state_dir)
        if info and info.get("token") == self._token:
            server_file.unlink(missing_ok=True)
        for server in self._servers:
            await server.close()
        if self.broker is not None and self.broker.transitions.state == "started":
            await self.broker.shutdown()
        self.ota.close()
        if self.registry is not None:
            self.registry.reset_online()
            self.registry.close()
            self.registry = None


class CloudThread:
    """Run a Cloud on a background event loop: ``with CloudThread(dir) as cloud: cloud.info``."""

    def __init__(self, state_dir, ports=None, **kwargs):
        zero = {name: 0 for name in DEFAULT_PORTS}
        self.cloud = Cloud(state_dir, ports=dict(zero, **(ports or {})), **kwargs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.info = None

    def call(self, coro, timeout=30):
        """Run ``coro`` on the cloud's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self):
        self.thread.start()
        self.info = self.call(self.cloud.start())
        return self

    def stop(self):
        try:
            self.call(self.cloud.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
