"""ESP32 dev boards (DevKitC, DOIT DevKit V1 and alike) wired to an Air724UG (README wiring).

Defaults: UART2 on TX GPIO17 / RX GPIO16 (free on WROOM boards; UART0 is the USB console),
PWRKEY through a transistor on GPIO4, status LED on GPIO2 (the on-board LED of most boards).
``config["uart"]`` and ``config["pins"]`` override each value that is not None.
"""

import machine

from boards import mcu


class Board(mcu.MCUBoard):
    name = "esp32"
    uart_id = 2
    tx = 17
    rx = 16
    pwrkey_pin = 4
    led_pin = 2
    wdt_limit_ms = 0x7FFFFFFF  # no port limit worth extending in software
    timer_id = 0  # feeds a stopped firmware's watchdog: a hardware timer (no virtual ones here)

    def __init__(self, config: dict, log=None):
        parts = (machine.UART, machine.Pin, machine.WDT, machine.reset, machine.Timer)
        super().__init__(config, parts, log)
