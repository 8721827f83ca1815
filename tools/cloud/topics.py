"""Topic permissions of a device (reference §4.1), and the amqtt topic-checking plugin.

A device publishes and subscribes only its own topics. The classes below are tables of
``(template, permission)``; ``{pk}``/``{dn}`` are the device's productKey/deviceName. Custom topic
classes come from the registry (``/{pk}/{dn}/user/<name>``, 发布/订阅/发布和订阅).

Choices where the reference is silent (§4.1, §8):
* A forbidden SUBSCRIBE gets the SUBACK failure code 0x80 (MQTT 3.1.1; the Aliyun limits doc
  says rejections show in the SUBACK).
* A forbidden PUBLISH is dropped (PUBACK still sent for QoS 1, as MQTT 3.1.1 has no negative
  PUBACK) and logged with status ``denied``; the connection stays up. Firmware must therefore not
  rely on either behaviour: the log is where a wrong topic shows.
* A subscription filter is allowed when every topic it matches lies inside one class with
  subscribe permission (so ``…/thing/service/+`` and ``…/thing/event/+/post_reply`` are fine,
  ``/pk/#`` is not).
* The thing-model classes are the explicit topics of the platform's lists (reference §4.3: the
  Alink topics of properties, events, services, desired properties, raw data, tags), as the
  console's topic list shows them; the wildcard ``/sys/pk/dn/thing/#`` is within none of them and
  is refused (SUBACK 0x80). The reference names ``thing/#`` only as a family of topics (§4.1); no
  source says the platform grants a SUBSCRIBE to it, so the stricter reading is taken, and the
  official SDKs subscribe the explicit topics.
"""

from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseTopicPlugin

PUB, SUB = 1, 2
TOPIC_MAX_BYTES = 128  # topic length limit (reference §4.1, [S6])

# System topic classes of every device (reference §4.1, §4.3, §4.5–§4.8).
_THING = "/sys/{pk}/{dn}/thing/"
SYSTEM_CLASSES = (
    # thing model (§4.3): properties, events, services and their replies
    (_THING + "event/+/post", PUB),  # property post and events (thing/event/<id>/post)
    (_THING + "event/+/post_reply", SUB),
    (_THING + "event/property/batch/post", PUB),
    (_THING + "event/property/batch/post_reply", SUB),
    (_THING + "event/property/history/post", PUB),  # readings of the past (§4.3)
    (_THING + "event/property/history/post_reply", SUB),
    (_THING + "service/+", PUB | SUB),  # calls thing/service/<id>; a device publishes <id>_reply
    (_THING + "service/property/set", SUB),
    (_THING + "service/property/set_reply", PUB),
    (_THING + "property/desired/get", PUB),
    (_THING + "property/desired/get_reply", SUB),
    (_THING + "property/desired/delete", PUB),
    (_THING + "property/desired/delete_reply", SUB),
    (_THING + "model/up_raw", PUB),
    (_THING + "model/up_raw_reply", SUB),
    (_THING + "model/down_raw", SUB),
    (_THING + "model/down_raw_reply", PUB),
    (_THING + "deviceinfo/update", PUB),
    (_THING + "deviceinfo/update_reply", SUB),
    (_THING + "deviceinfo/delete", PUB),
    (_THING + "deviceinfo/delete_reply", SUB),
    (_THING + "ota/firmware/get", PUB),
    (_THING + "ota/firmware/get_reply", SUB),
    ("/sys/{pk}/{dn}/rrpc/request/+", SUB),  # §4.7 system RRPC
    ("/sys/{pk}/{dn}/rrpc/response/+", PUB),
    ("/ext/ntp/{pk}/{dn}/request", PUB),  # §4.5 NTP
    ("/ext/ntp/{pk}/{dn}/response", SUB),
    ("/ota/device/inform/{pk}/{dn}", PUB),  # §4.6 OTA
    ("/ota/device/progress/{pk}/{dn}", PUB),
    ("/ota/device/request/{pk}/{dn}", PUB),
    ("/ota/device/upgrade/{pk}/{dn}", SUB),
    ("/shadow/update/{pk}/{dn}", PUB),  # §4.8 device shadow
    ("/shadow/get/{pk}/{dn}", SUB),
    ("/broadcast/{pk}/#", SUB),  # product-wide broadcast
)
# Default custom topic classes of a product (§4.1): /user/update, /user/update/error, /user/get.
DEFAULT_USER_CLASSES = (("update", PUB), ("update/error", PUB), ("get", SUB))
USER_TEMPLATE = "/{pk}/{dn}/user/"
PERM_BITS = {"pub": PUB, "sub": SUB, "all": PUB | SUB}

# Topics the platform subscribes on behalf of an SDK client (Aliyun doc "automatic topic
# subscription": Link SDK clients receive system downlinks without SUBSCRIBE; MQTT.fx-style
# clients must subscribe). Which CONNECT marks an SDK client is not documented; the official
# SDKs send ``_ss=1`` in the clientId and the Python SDK never subscribes, so ``_ss=1`` turns
# this on (INFERRED). The same explicit thing-model topics as a device subscribes.
AUTO_SUBSCRIBE = (
    _THING + "service/property/set",
    _THING + "service/+",
    _THING + "event/+/post_reply",
    _THING + "event/property/batch/post_reply",
    _THING + "property/desired/get_reply",
    _THING + "property/desired/delete_reply",
    "/sys/{pk}/{dn}/rrpc/request/+",
    "/ext/ntp/{pk}/{dn}/response",
    "/ota/device/upgrade/{pk}/{dn}",
    "/shadow/get/{pk}/{dn}",
)
RRPC_PREFIX = "/ext/rrpc/"  # custom-topic RRPC: /ext/rrpc/<messageId><topic> (§4.7)


def matches(topic: str, pattern: str) -> bool:
    """True if the concrete ``topic`` is matched by the MQTT filter ``pattern``."""
    t, p = topic.split("/"), pattern.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or level not in ("+", t[i]):
            return False
    return len(t) == len(p)


def within(subscription: str, pattern: str) -> bool:
    """True if every topic the filter ``subscription`` matches is matched by ``pattern``."""
    s, p = subscription.split("/"), pattern.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(s) or s[i] == "#":
            return False
        if level != "+" and s[i] != level:
            return False
    return len(s) == len(p)


def device_classes(pk: str, dn: str, custom=()) -> list:
    """All ``(pattern, permission bits)`` of one device; ``custom`` is ``[(name, perm)]``."""
    out = [(t.format(pk=pk, dn=dn), perm) for t, perm in SYSTEM_CLASSES]
    prefix = USER_TEMPLATE.format(pk=pk, dn=dn)
    out += [(prefix + name, perm) for name, perm in DEFAULT_USER_CLASSES]
    out += [(prefix + name, PERM_BITS[perm]) for name, perm in custom]
    return out


def _valid_topic(topic: str) -> bool:
    return bool(topic) and len(topic.encode()) <= TOPIC_MAX_BYTES


def may_publish(pk: str, dn: str, topic: str, custom=()) -> bool:
    """May device pk/dn PUBLISH to ``topic``?"""
    if not _valid_topic(topic) or "+" in topic or "#" in topic:
        return False
    classes = device_classes(pk, dn, custom)
    if any(perm & PUB and matches(topic, pattern) for pattern, perm in classes):
        return _service_reply_only(pk, dn, topic)
    # RRPC reply on a custom topic goes back on the request topic: /ext/rrpc/<id>/<own topic>
    inner = _rrpc_inner(topic)
    return inner is not None and _may_receive(classes, inner)


def _service_reply_only(pk: str, dn: str, topic: str) -> bool:
    """A device publishes on ``thing/service/<id>`` only its replies (``<id>_reply``)."""
    service = _THING.format(pk=pk, dn=dn) + "service/"
    if not topic.startswith(service):
        return True
    return topic.endswith("_reply")


def may_subscribe(pk: str, dn: str, subscription: str, custom=()) -> bool:
    """May device pk/dn SUBSCRIBE to the filter ``subscription``?"""
    if not _valid_topic(subscription):
        return False
    classes = device_classes(pk, dn, custom)
    if _may_receive(classes, subscription):
        return True
    inner = _rrpc_inner(subscription)  # /ext/rrpc/+/<topic the device may subscribe>
    return inner is not None and _may_receive(classes, inner)


def _may_receive(classes, subscription: str) -> bool:
    return any(perm & SUB and within(subscription, pattern) for pattern, perm in classes)


def _rrpc_inner(topic: str):
    """``<topic>`` of ``/ext/rrpc/<id>/<topic>``, else None."""
    if not topic.startswith(RRPC_PREFIX):
        return None
    rest = topic[len(RRPC_PREFIX) :]
    slash = rest.find("/")
    if slash <= 0:
        return None
    return rest[slash:]


def auto_subscriptions(pk: str, dn: str) -> list:
    return [t.format(pk=pk, dn=dn) for t in AUTO_SUBSCRIBE]


def topic_owner(topic: str, known_products) -> tuple:
    """``(productKey, deviceName)`` named by a device topic, else (None, None); a product
    broadcast topic gives ``(productKey, None)``.

    ``known_products`` is a container of productKeys used to tell the forms apart.
    """
    levels = topic.split("/")
    if len(levels) < 3 or levels[0]:
        return None, None
    if levels[1] == "broadcast":  # product-wide: no device
        return (levels[2], None) if levels[2] in known_products else (None, None)
    candidates = []
    if levels[1] in ("sys", "shadow") or levels[1:3] == ["ext", "ntp"]:
        offset = {"sys": 2, "shadow": 3}.get(levels[1], 3)
        candidates.append(offset)
    elif levels[1] == "ota" and len(levels) >= 6:
        candidates.append(4)
    elif levels[1] == "ext" and levels[2] == "rrpc":
        inner = _rrpc_inner(topic)
        return topic_owner(inner, known_products) if inner else (None, None)
    else:
        candidates.append(1)  # /pk/dn/user/…
    for i in candidates:
        if len(levels) > i + 1 and levels[i] in known_products:
            return levels[i], levels[i + 1]
    return None, None


@dataclass
class _CloudConfig:
    cloud: Any = None


class AliyunTopicPlugin(BaseTopicPlugin):
    """amqtt topic check: a device may use only its own topics (reference §4.1)."""

    Config = _CloudConfig

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        cloud = self.config.cloud
        if action == Action.RECEIVE:
            return True  # what a session receives was checked when it subscribed
        ident = cloud.identity(session)
        if ident is None or ident.kind != "device" or topic is None:
            return False  # registration sessions only receive the /ext/register push
        custom = cloud.registry.topic_classes(ident.product_key)
        if action == Action.PUBLISH:
            return may_publish(ident.product_key, ident.device_name, topic, custom)
        if action == Action.SUBSCRIBE:
            allowed = may_subscribe(ident.product_key, ident.device_name, topic, custom)
            cloud.log_subscription(
                ident, topic, allowed, "aliyun.auto_subscribe" in session.attributes
            )
            return allowed
        return False
