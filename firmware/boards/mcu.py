"""Hardware behaviour shared by the real boards (ESP32, RP2040): LED patterns, PWRKEY, watchdog.

The board modules create the ``machine`` objects and hand them in, so this module never imports
``machine`` and runs on the host with fakes. Pins that drive the module go through an NPN
transistor (README wiring): GPIO high pulls the Air724's input low.
"""

import asyncio
import gc
from time import ticks_diff, ticks_ms

from micropython import const

# A type checker takes every TYPE_CHECKING as true: it checks the calls below against the
# machine module of the port's stubs (esp32 or rp2). At run time the board passes it in.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import machine

# PWRKEY low >= 1.5 s powers the module on; the Air724 MQTT guide holds it 2 s (air724-at.md
# §3.1, §10). Released first so a press always starts from the idle level.
PWRKEY_RELEASE_MS = const(500)
PWRKEY_PRESS_MS = const(2000)

# LED pattern -> (on ms, off ms); off 0 = steady on, on 0 = dark.
PATTERNS = {
    "boot": (1000, 0),  # steady: powering up
    "connecting": (100, 900),  # short blink each second: working on it
    "online": (1000, 0),  # steady on
    "error": (100, 100),  # fast blink: needs attention (bad config, crash)
}
_STEADY_MS = const(1000)


async def sleep_ms(ms: int) -> None:  # tests replace it to run the sequences without waiting
    await asyncio.sleep(ms / 1000)


class Led:
    """Status LED on ``pin`` (a machine.Pin set to output); ``enabled`` False keeps it dark."""

    def __init__(self, pin: "machine.Pin", active: int = 1):
        self._pin = pin
        self._active = active
        self.pattern = "boot"
        self.enabled = True
        self._task = None
        self._set(False)

    def _set(self, on: bool) -> None:
        self._pin.value(self._active if on else 1 - self._active)

    def show(self, pattern: str) -> None:
        """Switch to ``pattern`` (unknown names show as "error"); blinking runs in a task."""
        self.pattern = pattern if pattern in PATTERNS else "error"
        self._apply()

    def enable(self, on: bool) -> None:
        self.enabled = on
        self._apply()

    def _apply(self) -> None:
        on_ms, off_ms = PATTERNS[self.pattern]
        if off_ms and self.enabled:
            if self._task is None:
                self._task = asyncio.create_task(self._blink())
            return
        self._set(self.enabled and on_ms > 0)

    async def _blink(self) -> None:
        lit = False
        try:
            while True:
                on_ms, off_ms = PATTERNS[self.pattern]
                if not off_ms or not self.enabled:
                    break  # show()/enable() already set the steady level
                lit = not lit
                self._set(lit)
                await sleep_ms(on_ms if lit else off_ms)
        finally:
            self._task = None


class PowerKey:
    """The Air724's PWRKEY through a transistor: ``press()`` holds it low for PWRKEY_PRESS_MS."""

    def __init__(self, pin: "machine.Pin", active: int = 1):
        self._pin = pin
        self._active = active
        pin.value(1 - active)  # released

    async def press(self) -> None:
        self._pin.value(1 - self._active)
        await sleep_ms(PWRKEY_RELEASE_MS)
        self._pin.value(self._active)
        try:
            await sleep_ms(PWRKEY_PRESS_MS)
        finally:
            self._pin.value(1 - self._active)  # never leave the key held (cancelled mid-press)


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
        self._wdt = wdt_class(timeout=hw_ms)
        self._task = None
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


def free_heap() -> int:
    gc.collect()
    return gc.mem_free()


def _pick(value, default):
    return default if value is None else value


class MCUBoard:
    """The board interface on a microcontroller; a port module sets the class attributes and
    passes its ``machine`` parts ``(UART, Pin, WDT, reset)``."""

    name = ""
    uart_id = 0
    tx = 0
    rx = 0
    pwrkey_pin = 0
    led_pin = 0
    wdt_limit_ms = 0
    rxbuf = 4096  # holds a full +HTTPREAD or +MSUB burst (air724-at.md §6.4, §7.4)
    reset_delay_ms = 10000  # after a crash: time to read the log before machine.reset()

    def __init__(self, config: dict, parts: tuple, log=None):
        self._uart_class: "type[machine.UART]"
        self._pin_class: "type[machine.Pin]"
        self._wdt_class: "type[machine.WDT]"
        self._uart_class, self._pin_class, self._wdt_class, self._reset = parts
        uart = config.get("uart") or {}
        pins = config.get("pins") or {}
        self.uart_id = _pick(uart.get("id"), self.uart_id)
        self.tx = _pick(uart.get("tx"), self.tx)
        self.rx = _pick(uart.get("rx"), self.rx)
        self.baud = _pick(uart.get("baud"), 115200)
        self.pwrkey_pin = _pick(pins.get("pwrkey"), self.pwrkey_pin)
        self.led_pin = _pick(pins.get("led"), self.led_pin)
        self._log = log
        self._uart = None
        out = self._pin_class.OUT
        self._key = PowerKey(self._pin_class(self.pwrkey_pin, out, value=0))
        self._led = Led(self._pin_class(self.led_pin, out, value=0))
        self._wdt = None

    async def open_uart(self) -> tuple:
        """(reader, writer) asyncio streams on a fresh UART (non-blocking reads)."""
        uart = self.make_uart()
        return asyncio.StreamReader(uart), asyncio.StreamWriter(uart, {})

    def make_uart(self):
        self.close_uart()
        pin = self._pin_class
        self._uart = self._uart_class(
            self.uart_id,
            baudrate=self.baud,
            tx=pin(self.tx),
            rx=pin(self.rx),
            rxbuf=self.rxbuf,
            timeout=0,
        )
        return self._uart

    def close_uart(self) -> None:
        if self._uart is not None:
            self._uart.deinit()
            self._uart = None

    async def power_cycle(self) -> bool:
        await self._key.press()
        return True

    def led(self, pattern: str) -> None:
        self._led.show(pattern)

    def led_enable(self, on: bool) -> None:
        """LEDSwitch of the example app: False keeps the status LED dark."""
        self._led.enable(on)

    def watchdog(self, timeout_ms: int) -> None:
        if self._wdt is None:  # a started WDT cannot be changed or stopped
            self._wdt = Watchdog(self._wdt_class, timeout_ms, self.wdt_limit_ms)

    def feed(self) -> None:
        if self._wdt is not None:
            self._wdt.feed()

    def free_heap(self) -> int:
        return free_heap()

    def reset(self) -> None:
        self._reset()
