"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring (``atmodem.Ring``) of ``size`` slots allocated once. When full, ``put`` drops the
oldest message not yet sent and counts it in ``dropped``: a device offline for days keeps its
newest data and says how much it lost. A message leaves only when ``pop`` confirms it was
published (PUBACK received; ``peek`` reads it before, ``sending`` marks it handed to the
module), so a link lost mid-publish sends it again after recovery (at-least-once, as QoS1
promises). The message in flight is never the one dropped: it may well be delivered, and its
``pop`` must remove it, not the next one.
"""

from atmodem import Ring


class Outbox(Ring):
    def __init__(self, size: int = 32):
        super().__init__(size)
        self.sending = False  # the oldest message is with the module, its PUBACK awaited

    def put(self, item, payload=None) -> bool:
        """Queue ``(topic, payload)`` (``item`` is the topic); False if the oldest message not
        yet sent had to be dropped to make room."""
        items = self._items
        size = len(items)
        if not self.sending or self._len < size:
            return super().put((item, payload))
        self.dropped += 1
        if size == 1:  # the one slot is in flight: the new message is the oldest unsent
            return False
        head = self._head
        second = (head + 1) % size
        items[second] = items[head]  # the one in flight moves over the oldest unsent
        items[head] = None
        self._head = second
        self._len -= 1
        super().put((item, payload))
        return False

    def pop(self) -> None:
        """Remove the oldest message (published)."""
        self.sending = False
        super().pop()
