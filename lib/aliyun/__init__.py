"""Aliyun IoT on the Air724 driver. The package holds what the session and its bring-up
share: the states, the record kept between bring-ups, ``PermanentError`` and ``unload``.

States, in order: sync (autobaud, echo off) -> sim -> network (registered and attached) ->
bearer (SAPBR, only when the login needs HTTPS) -> auth -> connect (MCONFIG, (SSL)MIPSTART,
MCONNECT) -> subscribe -> online; any failure -> backoff, then sync again. The names are the
strings that ``Session.on_state`` callbacks and the log see.
"""

import gc
import sys

SYNC = "sync"
SIM = "sim"
NETWORK = "network"
BEARER = "bearer"
AUTH = "auth"
CONNECT = "connect"
SUBSCRIBE = "subscribe"
ONLINE = "online"
BACKOFF = "backoff"
MQTT_UP = (SUBSCRIBE, ONLINE)  # the MQTT link is up: a link event now is a fault


class Kept:
    """What one bring-up leaves to the next: the HTTPS auth ``token`` (see aliyun.login),
    CONNACK ``refusals`` in a row, ``pdp_lost`` (the default PDP context went down: an MQTT
    retry cannot help), the module's ``firmware`` string once read, ``signal_dbm``, the
    ``device_name`` (config.json's, else the IMEI once read), the ``store_path`` of the
    secret a dynamic registration obtained and, when ``wants_clock`` (readings on flash to
    date), the module's network ``clock`` (epoch ms, ticks) until NTP answers; ``passed``: a
    CONNECT was accepted in this boot, ``connects``: the times of the last CONNECTs
    (``aliyun.bringup.connect_wait_ms``)."""

    def __init__(self, device_name: str, store_path: str):
        self.device_name = device_name
        self.store_path = store_path
        self.token = None
        self.refusals = 0
        self.passed = False
        self.connects = []
        self.pdp_lost = False
        self.firmware = None
        self.signal_dbm = None
        self.wants_clock = False
        self.clock = None


class PermanentError(Exception):
    """A fault that retrying soon cannot repair (bad credentials, unknown device)."""


def unload(names) -> None:
    """Drop modules from ``sys.modules`` and their packages so the GC can free their code."""
    for name in names:
        if sys.modules.pop(name, None) is not None:
            package, _, attr = name.rpartition(".")
            parent = sys.modules.get(package)
            if parent is not None and hasattr(parent, attr):
                delattr(parent, attr)
    gc.collect()
