"""Board definitions: one module per port, chosen by ``sys.platform`` and imported lazily.

Only the module of the running port is imported, so ``machine`` is imported only on real
hardware (esp32, rp2) and never by lib/. Every module defines ``Board`` (see boards/unix.py for
the interface the session uses).
"""

import sys


def module_name(platform=None) -> str:
    """The board module for ``platform`` (default: this one); ValueError when unsupported."""
    platform = platform or sys.platform
    # sys.platform -> board module. The unix port reports the host OS.
    name = {"esp32": "esp32", "rp2": "rp2", "linux": "unix", "darwin": "unix"}.get(platform)
    if name is None:
        raise ValueError("no board module for platform " + platform)
    return name


def load(platform=None):
    """Import the board module for ``platform`` and return its ``Board`` class."""
    return __import__("boards." + module_name(platform), None, None, ("Board",)).Board
