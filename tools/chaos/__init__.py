"""``make chaos``: the firmware against a seeded random sequence of every fault the emulator has.

``python -m tools.chaos [--faults N] [--seed S] [--seconds T] [--kinds a,b]`` runs the firmware
(the .mpy build, MicroPython VM at the firmware's heap, ``FIRMWARE_HEAP``; ``CHAOS_HEAP`` in the
environment sets another) against the emulator and the local cloud, its application publishing
numbered QoS1 messages, injects the faults one after the other, and prints per fault kind how many
were injected and recovered, and the median and maximum time to recover against the kind's bound
(kinds.py), then the message accounting and the heap trend (report.py). Exit status 0 only when
every fault was recovered within its bound, no message was lost within the outbox's capacity, the
outbox drained and the heap did not grow. Every file of the run (device, module and cloud logs,
result.json) is kept in the work folder.
"""

from .cli import main

__all__ = ["main"]
