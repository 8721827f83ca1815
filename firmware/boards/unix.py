"""The MicroPython unix port (``make sim``, tests): the module is an emulator, not a chip.

``config["uart"]["url"]`` says where the module is: ``tcp://HOST:PORT`` (the emulator's
``--listen``) or the path of a pty or serial device, opened raw and non-blocking through
termios. There is no PWRKEY or LED: ``power_cycle()`` returns False and LED changes are logged.
No watchdog either, except on the virtual board (vboard), whose ``machine.WDT`` is a stand-in
that bites like the RP2040's (8388 ms at most, kept across soft resets): there the firmware runs
the RP2040's watchdog code (boards/watchdog.py), so a hang resets the board and a Ctrl-C leaves the
watchdog fed by a ``machine.Timer``.

The interface every board module implements (the session and main.py call these):

- ``name``; ``Board(config, log=None)``
- ``await open_uart()`` -> (reader, writer) asyncio streams; ``close_uart()``
- ``await power_cycle()`` -> bool (False: the board cannot)
- ``led(pattern)`` with "boot", "connecting", "online", "error"; ``led_enable(on)``
- ``watchdog(timeout_ms)``, ``feed()``, ``stopped()`` (after a Ctrl-C: keep a started
  watchdog fed), ``free_heap()``, ``reset()``, ``reset_delay_ms``

Stopping: this port raises KeyboardInterrupt from its SIGINT handler wherever the VM is, also
inside a garbage collection, which then never completes (the heap stays locked, or objects in use
are freed). So the project's tools start the firmware with ``FIRMWARE_STOP=stdin`` and stop it
with a Ctrl-C byte on stdin, as a board's console would: ``Board.watch_stop(task)`` then cancels
``task`` (main.py's, which logs the stats line). SIGINT still works, with that small risk.
"""

import asyncio
import gc
import os
import sys

from micropython import const

_VMIN = const(6)  # termios c_cc indexes (Linux): a read returns what is there, at once
_VTIME = const(5)
_WDT_LIMIT_MS = const(8388)  # the vboard's stand-in has the RP2040's limit (boards/rp2.py)


def parse_url(url: str):
    """``(host, port)`` for ``tcp://host:port``, None for a device path."""
    if url and not url.startswith("tcp://"):
        return None
    host, sep, port = url[6:].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        # Imported here only: main.py releases config.py's RAM once the file is validated.
        from config import ConfigError

        raise ConfigError("uart.url", "required on the unix port: tcp://HOST:PORT or a pty path")
    return host.strip("[]"), int(port)


class Board:
    name = "unix"
    reset_delay_ms = 0

    def __init__(self, config: dict, log=None):
        uart = config.get("uart") or {}
        self.url = uart.get("url") or ""
        self.tcp = parse_url(self.url)  # the URL is required on this port
        self.baud = uart.get("baud") or 115200
        self._log = log
        self._streams = None
        self.pattern = ""
        self.led_on = True
        self._wdt = None

    async def open_uart(self) -> tuple:
        self.close_uart()
        if self.tcp is not None:
            self._streams = await asyncio.open_connection(self.tcp[0], self.tcp[1])
            # A UART has no Nagle delay: without TCP_NODELAY the kernel holds the command's CR
            # for a delayed ACK (~40 ms a command). IPPROTO_TCP = 6, TCP_NODELAY = 1 (Linux);
            # this port's socket module does not name them.
            sock = getattr(self._streams[1], "s", None)
            if sock is not None:
                sock.setsockopt(6, 1, 1)
        else:
            self._streams = _open_device(self.url, self.baud)
        return self._streams

    def close_uart(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            # MicroPython's Stream.close() leaves the closing to wait_closed(): close what it
            # wraps (``s``: the socket or the device) at once.
            writer = streams[1]
            getattr(writer, "s", writer).close()

    async def power_cycle(self) -> bool:
        return False

    def led(self, pattern: str) -> None:
        if pattern != self.pattern and self._log is not None:
            self._log("debug", "led " + pattern + ("" if self.led_on else " (dark: LEDSwitch 0)"))
        self.pattern = pattern

    def led_enable(self, on: bool) -> None:
        if on != self.led_on and self._log is not None:
            self._log("debug", "led " + ("on" if on else "dark"))
        self.led_on = on

    def watchdog(self, timeout_ms: int = 0) -> None:
        """The vboard's stand-in watchdog when ``machine`` has one, else none."""
        try:
            import machine
        except ImportError:  # CPython (host tests)
            return
        wdt_class = getattr(machine, "WDT", None)
        if wdt_class is not None and self._wdt is None:
            from boards.watchdog import Watchdog

            self._wdt = Watchdog(wdt_class, timeout_ms, _WDT_LIMIT_MS)

    def feed(self) -> None:
        if self._wdt is not None:
            self._wdt.feed()

    def stopped(self) -> None:
        """main.py after a Ctrl-C: the stand-in watchdog is fed by a timer from now on."""
        if self._wdt is not None:
            import machine

            self._wdt.park(machine.Timer, -1)  # pyright: ignore[reportAttributeAccessIssue]

    def reset(self) -> None:
        """No reset here: main.py then exits with status 1, the process stands for the chip."""

    @staticmethod
    async def watch_stop(task) -> None:
        """Cancel ``task`` when a Ctrl-C byte arrives on stdin, if FIRMWARE_STOP=stdin."""
        if os.getenv("FIRMWARE_STOP") != "stdin":
            return
        console = asyncio.StreamReader(sys.stdin.buffer)
        while True:
            byte = await console.read(1)
            if not byte:  # end of input: nobody can stop it this way
                return
            if byte == b"\x03":
                task.cancel()
                return

    def free_heap(self) -> int:
        mem_free = getattr(gc, "mem_free", None)
        if mem_free is None:
            return 0  # CPython
        gc.collect()
        return mem_free()


def _open_device(path: str, baud: int) -> tuple:
    """A pty or serial device in raw mode, non-blocking reads, wrapped in asyncio streams."""
    import termios  # unix port only

    device = open(path, "r+b", buffering=0)
    try:
        fd = device.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, "B%d" % baud, None)
        if speed is not None:
            attrs[4] = attrs[5] = speed
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except Exception:
        device.close()
        raise
    return asyncio.StreamReader(device), asyncio.StreamWriter(device, {})
