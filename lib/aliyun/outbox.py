"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring (``atmodem.Ring``) of ``size`` slots allocated once. When full, ``put`` drops the
oldest message and counts it in ``dropped``: a device offline for days keeps its newest data and
says how much it lost. A message leaves only when ``pop`` confirms it was published (PUBACK
received; ``peek`` reads it before), so a link lost mid-publish sends it again after recovery
(at-least-once, as QoS1 promises).
"""

from atmodem import Ring


class Outbox(Ring):
    def put(self, item, payload=None) -> bool:
        """Queue ``(topic, payload)`` (``item`` is the topic); False if the oldest message had
        to be dropped to make room."""
        return super().put((item, payload))
