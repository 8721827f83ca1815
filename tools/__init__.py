"""Host-side tools: signing CLI, Air724 emulator, local cloud, virtual board, build and deploy.

The portable library in lib/ is written for MicroPython and imports ``const`` from the built-in
``micropython`` module. CPython has no such module, so importing this package installs a minimal
stand-in (``const`` is the identity there), which lets host tools and tests import lib/ unchanged.
"""

import sys
import types

if "micropython" not in sys.modules:
    _shim = types.ModuleType("micropython")
    _shim.const = lambda value: value
    sys.modules["micropython"] = _shim
