"""``machine`` on the virtual board: the unix port's module plus a board's ``reset()``, and
stand-ins for ``WDT`` and ``Timer`` that behave like the RP2040's.

Runs inside the VM; vm_main installs it as ``sys.modules["machine"]``. Every other name is the
built-in module's.

``WDT(timeout=ms)`` tells the host, which keeps the countdown: it survives a soft reset (a
fresh VM) as the RP2040's does, cannot be stopped, and bites with a hard reset when ``feed()``
does not come in time; a hard reset (``machine.reset()``, the bite itself) ends it. ``Timer``
is a virtual periodic or one-shot timer on a thread; a soft reset ends it with the VM, as the
rp2 port stops its soft timers at a soft reset.
"""

import time

import machine as _builtin

for _name in dir(_builtin):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_builtin, _name)
del _name

_notify = None  # set by vm_main: sends a control message to the host
# The RP2040's limit: a 24-bit counter that an erratum (RP2040-E1) decrements twice a
# microsecond, so 0xFFFFFF / 2 us.
_WDT_MAX_MS = 8388


def reset():
    """Hard reset: the host restarts the VM (fresh state, boot.py then main.py)."""
    _notify(b"H")
    while True:  # the host kills this VM; a board never returns from reset()
        try:
            time.sleep_ms(1000)
        except KeyboardInterrupt:
            pass


def soft_reset():
    """Soft reset, as on a board: leave to the REPL, which reboots."""
    raise SystemExit


class WDT:
    """The RP2040's watchdog, kept by the host: ``WDT(id=0, timeout=5000)``, ``feed()``."""

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if not 1 <= timeout <= _WDT_MAX_MS:
            raise ValueError("timeout exceeds %d" % _WDT_MAX_MS)
        _notify(b"W", timeout.to_bytes(4, "big"))

    def feed(self):
        _notify(b"D")


class Timer:
    """A virtual timer: ``Timer(-1, mode=Timer.PERIODIC, period=ms, callback=f)``, ``deinit()``."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, mode=PERIODIC, period=-1, callback=None):
        if id != -1:
            raise ValueError("Timer(%d) doesn't exist" % id)
        self._run = [False]
        self.init(mode=mode, period=period, callback=callback)

    def init(self, mode=PERIODIC, period=-1, callback=None):
        self.deinit()
        if period < 0 or callback is None:
            return
        import _thread  # here: a board's heap pays for it only when a timer runs

        self._run = run = [True]
        _thread.start_new_thread(self._tick, (run, mode, period, callback))

    def deinit(self):
        self._run[0] = False

    def _tick(self, run, mode, period, callback):
        while run[0]:
            time.sleep_ms(period)
            if not run[0]:
                break
            callback(self)
            if mode == Timer.ONE_SHOT:
                break
