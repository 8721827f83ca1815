"""The hardware watchdog with any timeout, and kept fed once the user stops the firmware.

Shared by the microcontroller boards (boards/mcu.py) and the virtual board's unix board, whose
``machine.WDT`` bites like the RP2040's. The ``machine`` classes are handed in, so this module
runs on the host with fakes.
"""

import asyncio

from logger import ticks_diff, ticks_ms

# A type checker takes every TYPE_CHECKING as true: it checks the calls below against the
# machine module of the port's stubs. At run time the board passes the classes in.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import machine


async def sleep_ms(ms: int) -> None:  # tests replace it to run the extender without waiting
    await asyncio.sleep(ms / 1000)


class Watchdog:
    """``machine.WDT`` with any timeout: a port limit below ``timeout_ms`` (RP2040: 8.3 s) is
    covered by a task that feeds the hardware often while the application's own deadline
    (last ``feed()`` + ``timeout_ms``) has not passed. A blocked event loop starves that task,
    so the hardware still resets a hung device within the port limit."""

    def __init__(self, wdt_class: "type[machine.WDT]", timeout_ms: int, limit_ms: int, clock=None):
        self.timeout_ms = timeout_ms
        self._clock = clock or ticks_ms
        self._last = self._clock()
        hw_ms = timeout_ms if timeout_ms <= limit_ms else limit_ms
        self.hw_ms = hw_ms
        self._wdt = wdt_class(timeout=hw_ms)
        self._task = None
        self._timer = None
        if hw_ms < timeout_ms:
            self._task = asyncio.create_task(self._extend(hw_ms // 4))

    def feed(self) -> None:
        self._last = self._clock()
        self._wdt.feed()

    def expired(self) -> bool:
        return ticks_diff(self._clock(), self._last) >= self.timeout_ms

    async def _extend(self, period_ms: int) -> None:
        while not self.expired():
            self._wdt.feed()
            await sleep_ms(period_ms)
        # Deadline passed: stop feeding; the hardware resets the board within hw_ms.

    def park(self, timer_class: "type[machine.Timer]", timer_id: int) -> None:
        """The user stopped the firmware (Ctrl-C): keep the board usable at its REPL.

        A started watchdog cannot be stopped (neither port has ``WDT.deinit``; on the RP2040 a
        soft reset keeps it counting), so a periodic timer feeds it from now on, off the event
        loop. A soft reset stops the timer (main.py then runs again and feeds); a hard reset
        stops both."""
        task, self._task = self._task, None  # it ties the stopped loop's tasks to this object
        if task is not None:
            task.cancel()
        if self._timer is None:
            self._timer = timer_class(
                timer_id, mode=timer_class.PERIODIC, period=self.hw_ms // 4, callback=self._fed
            )
            self._wdt.feed()

    def _fed(self, _timer) -> None:
        self._wdt.feed()
