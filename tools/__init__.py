"""Host-side tools: signing CLI, Air724 emulator, local cloud, virtual board, build and deploy.

The portable code in lib/ and firmware/ is written for MicroPython and imports, exactly as on a
board, ``const`` from ``micropython``, ``ticks_ms``/``ticks_diff``/``ticks_add`` from ``time`` and
uses ``asyncio.sleep_ms``/``asyncio.wait_for_ms``. CPython lacks them, so importing this package
installs them once (the only place they are declared): ``const`` is the identity, the ticks are
plain monotonic milliseconds (no wrap), and the asyncio helpers take milliseconds.
"""

import asyncio
import sys
import time
import types

if "micropython" not in sys.modules:
    _shim = types.ModuleType("micropython")
    _shim.const = lambda value: value
    sys.modules["micropython"] = _shim


def _ticks_ms() -> int:
    return int(time.monotonic() * 1000)


def _ticks_add(ticks: int, delta: int) -> int:
    return ticks + delta


def _ticks_diff(end: int, start: int) -> int:
    return end - start


def _sleep_ms(ms: int):
    return asyncio.sleep(ms / 1000)


def _wait_for_ms(aw, timeout_ms: int):
    return asyncio.wait_for(aw, timeout_ms / 1000)


for _module, _names in (
    (time, (("ticks_ms", _ticks_ms), ("ticks_add", _ticks_add), ("ticks_diff", _ticks_diff))),
    (asyncio, (("sleep_ms", _sleep_ms), ("wait_for_ms", _wait_for_ms))),
):
    for _name, _value in _names:
        if not hasattr(_module, _name):
            setattr(_module, _name, _value)
