"""Hardware behaviour shared by the real boards (ESP32, RP2040): LED patterns, PWRKEY, watchdog.

The board modules create the ``machine`` objects and hand them in, so this module never imports
``machine`` and runs on the host with fakes. The watchdog is in boards/watchdog.py (the vboard's
unix board uses it alone). Pins that drive the module go through an NPN
transistor (README wiring): GPIO high pulls the Air724's input low.
"""

import asyncio
import gc

from micropython import const

from boards.watchdog import Watchdog

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


def free_heap() -> int:
    gc.collect()
    return gc.mem_free()


def _pick(value, default):
    return default if value is None else value


class MCUBoard:
    """The board interface on a microcontroller; a port module sets the class attributes and
    passes its ``machine`` parts ``(UART, Pin, WDT, reset, Timer)``."""

    name = ""
    uart_id = 0
    tx = 0
    rx = 0
    pwrkey_pin = 0
    led_pin = 0
    wdt_limit_ms = 0
    timer_id = -1  # the machine.Timer that feeds a stopped firmware's watchdog
    rxbuf = 4096  # holds a full +HTTPREAD or +MSUB burst (air724-at.md §6.4, §7.4)
    reset_delay_ms = 10000  # after a crash: time to read the log before machine.reset()

    def __init__(self, config: dict, parts: tuple, log=None):
        self._uart_class: "type[machine.UART]"
        self._pin_class: "type[machine.Pin]"
        self._wdt_class: "type[machine.WDT]"
        self._timer_class: "type[machine.Timer]"
        self._uart_class, self._pin_class, self._wdt_class, self._reset, self._timer_class = parts
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

    def stopped(self) -> None:
        """main.py after a Ctrl-C: a started watchdog is fed by a timer from now on."""
        if self._wdt is not None:
            self._wdt.park(self._timer_class, self.timer_id)

    def free_heap(self) -> int:
        return free_heap()

    def reset(self) -> None:
        self._reset()
