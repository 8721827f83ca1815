"""Bounded QoS1 outbox: messages accepted while offline wait here, in order, until published.

A ring of ``capacity`` slots allocated once. When full, ``put`` drops the oldest message and
counts it in ``dropped``: a device offline for days keeps its newest data and says how much it
lost. A message leaves only when ``pop`` confirms it was published (PUBACK received), so a link
lost mid-publish sends it again after recovery (at-least-once, as QoS1 promises).
"""


class Outbox:
    def __init__(self, capacity: int = 32):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._slots: list = [None] * capacity
        self._head = 0  # index of the oldest message
        self._count = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._count

    @property
    def capacity(self) -> int:
        return len(self._slots)

    def put(self, topic: str, payload) -> bool:
        """Queue a message; return False if the oldest one had to be dropped to make room."""
        size = len(self._slots)
        kept = True
        if self._count == size:
            self._head = (self._head + 1) % size
            self._count -= 1
            self.dropped += 1
            kept = False
        self._slots[(self._head + self._count) % size] = (topic, payload)
        self._count += 1
        return kept

    def peek(self) -> "tuple | None":
        """The oldest message as ``(topic, payload)``, or None when empty."""
        return self._slots[self._head] if self._count else None

    def pop(self) -> None:
        """Remove the oldest message (after its PUBACK)."""
        if self._count:
            self._slots[self._head] = None
            self._head = (self._head + 1) % len(self._slots)
            self._count -= 1
