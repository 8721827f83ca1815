"""RP2040 boards (Raspberry Pi Pico, Pico W and alike) wired to an Air724UG (README wiring).

Defaults: UART1 on TX GP4 / RX GP5 (header pins 6 and 7), which leaves UART0 on GP0/GP1 free for
a debug probe's serial bridge; PWRKEY through a transistor on GP6; status LED "LED" (GP25 on the
Pico, the wireless chip's LED pin on the Pico W). ``config["uart"]`` and ``config["pins"]``
override each value that is not None.
"""

import machine

from boards import mcu


class Board(mcu.MCUBoard):
    name = "rp2"
    uart_id = 1
    tx = 4
    rx = 5
    pwrkey_pin = 6
    led_pin = "LED"
    wdt_limit_ms = 8388  # RP2040 watchdog maximum; longer timeouts are extended in software
    # A stopped firmware's watchdog is fed by a virtual timer (id -1): the RP2040's cannot be
    # stopped and outlives a soft reset (MicroPython's rp2 WDT has no deinit).

    def __init__(self, config: dict, log=None):
        parts = (machine.UART, machine.Pin, machine.WDT, machine.reset, machine.Timer)
        super().__init__(config, parts, log)
