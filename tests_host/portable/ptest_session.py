"""Session supervision that needs no modem: what a failed bring-up leaves loaded."""

import sys

from fakes_session import DEVICE_NAME, PRODUCT_KEY, FakeBoard
from ptest import raises

from aliyun.session import Session

BRING_UP = "aliyun.bringup"


class PartialModule:
    """What running out of memory half-way through an import can leave in ``sys.modules`` on
    MicroPython: a module object without the names its file defines."""

    __name__ = BRING_UP


class ModemStub:
    def __init__(self):
        self.released = 0

    def release(self):
        self.released += 1


def make_session():
    session = Session(FakeBoard(), {"device_name": DEVICE_NAME, "product_key": PRODUCT_KEY})
    session.modem = ModemStub()

    async def opened():  # the UART and the Air724 facade are not needed to reach the import
        pass

    session._open = opened
    return session


async def test_a_bring_up_whose_import_failed_is_loaded_afresh_next_time():
    session = make_session()
    saved = sys.modules.pop(BRING_UP, None)
    sys.modules[BRING_UP] = PartialModule()
    try:
        with raises(ImportError):
            await session._bring_up(None)
        # Unloaded despite the failure: the next bring-up imports the real file again.
        assert BRING_UP not in sys.modules
        assert session.modem.released == 1
        from aliyun.bringup import LOADED_FOR_BRING_UP, bring_up

        assert BRING_UP in LOADED_FOR_BRING_UP and callable(bring_up)
    finally:
        sys.modules.pop(BRING_UP, None)
        if saved is not None:
            sys.modules[BRING_UP] = saved


def test_only_a_login_that_makes_a_request_needs_https():
    from aliyun.login import needs_http

    cfg = {"auth": "http", "product_key": PRODUCT_KEY, "device_name": DEVICE_NAME}
    now = 1000
    fresh = ("iot-id", "token", "host", 1883, now - 60000)
    stale = ("iot-id", "token", "host", 1883, now - (6 * 24 + 1) * 3600 * 1000)
    assert needs_http(cfg, "no-such-file.json", None, now)  # no token yet
    assert not needs_http(cfg, "no-such-file.json", fresh, now)  # reused: no bearer, no request
    assert needs_http(cfg, "no-such-file.json", stale, now)  # renewed a day before it ends
    cfg["auth"] = "direct"
    assert not needs_http(cfg, "no-such-file.json", None, now)
    cfg["auth"] = "dynreg"
    assert needs_http(cfg, "no-such-file.json", None, now)  # not registered yet
