"""Helpers for portable tests: the same test module runs on CPython and on MicroPython.

A portable test module is named ``ptest_*.py`` and holds plain ``test_*`` functions (sync or
``async``) that use ``assert`` and the helpers below; it must not import pytest. The collector in
tests_host/conftest.py runs each test three times: on CPython, on the ``micropython`` VM with lib/
from source, and on the VM with lib/ from the mpy-cross build.
"""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


class raises:  # noqa: N801 - reads like pytest.raises at the call site
    """Context manager asserting that the block raises ``exc_type``; keeps it in ``.value``."""

    def __init__(self, exc_type, match=None):
        self.exc_type = exc_type
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError("did not raise " + self.exc_type.__name__)
        if not issubclass(exc_type, self.exc_type):
            return False  # propagate the unexpected exception
        if self.match is not None and self.match not in str(exc):
            raise AssertionError("%r does not contain %r" % (str(exc), self.match))
        self.value = exc
        return True


def fresh_import(name, replace=None):
    """Import module ``name`` anew, with ``replace`` ({module name: stand-in}) in sys.modules.

    Used to test fallbacks, e.g. a ``hashlib`` without ``md5``. Every module touched is restored
    afterwards, so other tests see the real ones.
    """
    replace = replace or {}
    saved = {}
    for key in list(replace) + [name]:
        if key in sys.modules:
            saved[key] = sys.modules.pop(key)
    try:
        sys.modules.update(replace)
        module = __import__(name)  # the top-level package; walk down to ``name``
        for part in name.split(".")[1:]:
            module = getattr(module, part)
        return module
    finally:
        for key in list(replace) + [name]:
            sys.modules.pop(key, None)
        sys.modules.update(saved)
        for key, saved_module in saved.items():  # importing a submodule rebinds its package's
            parent, _, child = key.rpartition(".")  # attribute; point it back at the original
            if parent in sys.modules:
                setattr(sys.modules[parent], child, saved_module)
