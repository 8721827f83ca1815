"""Board selection and the board modules (firmware/boards/), on both runtimes.

The unix board talks to a loopback TCP server; the ESP32 and RP2040 boards run against a fake
``machine`` module, with ``mcu.sleep_ms`` recorded instead of slept.
"""

import asyncio
import random
import sys

import boards
from boards import mcu, unix, watchdog
from config import ConfigError
from fakes_session import LogLines, Recorder, wait_ms
from ptest import IS_MICROPYTHON, fresh_import, raises


def test_platform_selects_the_board_module():
    assert boards.module_name("esp32") == "esp32"
    assert boards.module_name("rp2") == "rp2"
    assert boards.module_name("linux") == "unix" and boards.module_name("darwin") == "unix"
    assert boards.module_name() == "unix"  # the host and the unix VM
    with raises(ValueError, match="pyboard"):
        boards.module_name("pyboard")


def test_load_imports_only_the_board_in_use():
    board_class = boards.load("linux")
    assert board_class is unix.Board and board_class.name == "unix"
    assert "boards.esp32" not in sys.modules and "boards.rp2" not in sys.modules


def test_unix_board_needs_a_uart_url():
    with raises(ConfigError) as caught:
        unix.Board({"uart": {"url": ""}, "pins": {}})
    assert caught.value.field == "uart.url"
    for url in ("tcp://127.0.0.1", "tcp://:80", "tcp://host:99999", "tcp://h:x"):
        with raises(ConfigError, match="tcp://HOST:PORT"):
            unix.Board({"uart": {"url": url}})
    assert unix.parse_url("tcp://127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert unix.parse_url("tcp://[::1]:7000") == ("::1", 7000)
    assert unix.parse_url("/dev/pts/3") is None


class ModuleServer:
    """A loopback TCP server playing the module: RDY on connect, OK for each AT."""

    def __init__(self):
        self.received = bytearray()
        self.closed = asyncio.Event()
        self.server = None
        self.port = 0

    async def start(self):
        if not IS_MICROPYTHON:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            return
        for _ in range(50):  # the VM's sockets cannot tell the port the OS chose
            port = 20000 + random.getrandbits(15)
            try:
                self.server = await asyncio.start_server(self._client, "127.0.0.1", port)
            except OSError:
                continue
            self.port = port
            return
        raise OSError("no free port")

    async def _client(self, reader, writer):
        writer.write(b"\r\nRDY\r\n")
        await writer.drain()
        while True:
            data = await reader.read(64)
            if not data:
                break
            self.received.extend(data)
            if self.received.endswith(b"AT\r"):
                writer.write(b"\r\nOK\r\n")
                await writer.drain()
        writer.close()
        self.closed.set()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def read_until(reader, marker):
    data = b""
    while marker not in data:
        chunk = await wait_ms(reader.read(64), 2000)
        assert chunk, "end of stream before %r" % marker
        data += chunk
    return data


async def test_unix_board_opens_a_tcp_uart_and_closes_it():
    server = ModuleServer()
    await server.start()
    try:
        board = unix.Board({"uart": {"url": "tcp://127.0.0.1:%d" % server.port}})
        reader, writer = await board.open_uart()
        assert b"RDY" in await read_until(reader, b"RDY\r\n")
        writer.write(b"AT\r")
        await writer.drain()
        assert b"OK" in await read_until(reader, b"OK\r\n")
        board.close_uart()
        await wait_ms(server.closed.wait(), 2000)  # the module saw the link close
        assert bytes(server.received) == b"AT\r"
        reader, writer = await board.open_uart()  # reopening gives a fresh link
        assert b"RDY" in await read_until(reader, b"RDY\r\n")
        board.close_uart()
    finally:
        await server.stop()


async def test_unix_board_has_no_pins_and_logs_led_changes():
    log = LogLines()
    board = unix.Board({"uart": {"url": "tcp://127.0.0.1:1"}}, log)
    assert await board.power_cycle() is False
    board.watchdog(30000)
    board.feed()
    assert board.free_heap() >= 0 and board.reset_delay_ms == 0
    for pattern in ("boot", "connecting", "connecting", "online"):
        board.led(pattern)
    board.led_enable(False)
    board.led("error")
    assert [m for _, m in log.lines] == [
        "led boot",
        "led connecting",
        "led online",
        "led dark",
        "led error (dark: LEDSwitch 0)",
    ]


# -- ESP32 and RP2040 against a fake machine module --


class FakePin:
    OUT = 1

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.mode = mode
        self.values = Recorder()
        if value is not None:
            self.values.append(value)

    def value(self, v=None):
        if v is None:
            return self.values[-1]
        self.values.append(v)
        return None


class FakeUART:
    def __init__(self, uart_id, **kwargs):
        self.id = uart_id
        self.kwargs = kwargs
        self.deinited = False

    def deinit(self):
        self.deinited = True


class FakeWDT:
    made = []

    def __init__(self, timeout=5000, id=0):
        self.timeout = timeout
        self.feeds = 0
        FakeWDT.made.append(self)

    def feed(self):
        self.feeds += 1


class FakeTimer:
    PERIODIC = 1
    made = []

    def __init__(self, id, mode=0, period=-1, callback=None):
        self.id, self.mode, self.period, self.callback = id, mode, period, callback
        FakeTimer.made.append(self)


class FakeMachine:
    Pin = FakePin
    UART = FakeUART
    WDT = FakeWDT
    Timer = FakeTimer
    resets = []

    @staticmethod
    def reset():
        FakeMachine.resets.append(True)


class Sleeps:
    """Records mcu.sleep_ms calls and yields, so sequences run without waiting."""

    def __init__(self, clock=None):
        self.calls = Recorder()
        self.clock = clock

    async def __call__(self, ms):
        self.calls.append(ms)
        if self.clock is not None:
            self.clock[0] += ms
        await asyncio.sleep(0)


def board_module(port):
    return fresh_import("boards." + port, {"machine": FakeMachine})


def test_esp32_and_rp2_pin_defaults_and_overrides():
    esp32 = board_module("esp32").Board({"uart": {}, "pins": {}})
    assert (esp32.name, esp32.uart_id, esp32.tx, esp32.rx) == ("esp32", 2, 17, 16)
    assert (esp32.pwrkey_pin, esp32.led_pin, esp32.baud) == (4, 2, 115200)
    rp2 = board_module("rp2").Board({})
    assert (rp2.name, rp2.uart_id, rp2.tx, rp2.rx) == ("rp2", 1, 4, 5)
    assert (rp2.pwrkey_pin, rp2.led_pin) == (6, "LED")
    cfg = {"uart": {"id": 1, "tx": 10, "rx": 9, "baud": 921600}, "pins": {"pwrkey": 27}}
    custom = board_module("esp32").Board(cfg)
    assert (custom.uart_id, custom.tx, custom.rx, custom.baud) == (1, 10, 9, 921600)
    assert custom.pwrkey_pin == 27 and custom.led_pin == 2


def test_mcu_uart_is_non_blocking_with_a_large_buffer():
    board = board_module("rp2").Board({"uart": {"baud": 460800}})
    uart = board.make_uart()
    assert uart.id == 1 and uart.kwargs["baudrate"] == 460800
    assert uart.kwargs["tx"].id == 4 and uart.kwargs["rx"].id == 5
    assert uart.kwargs["timeout"] == 0 and uart.kwargs["rxbuf"] >= 2048
    again = board.make_uart()  # reopening releases the old UART first
    assert uart.deinited and not again.deinited
    board.close_uart()
    assert again.deinited


async def test_mcu_open_uart_wraps_the_uart_in_streams():
    board = board_module("esp32").Board({})
    if IS_MICROPYTHON:  # MicroPython's streams wrap any stream object; CPython's need a loop
        reader, writer = await board.open_uart()
        assert hasattr(reader, "readinto") and hasattr(writer, "drain")
    else:
        assert board.make_uart().id == 2


async def test_power_cycle_holds_pwrkey_two_seconds_through_the_transistor():
    saved = mcu.sleep_ms
    mcu.sleep_ms = sleeps = Sleeps()
    try:
        board = board_module("esp32").Board({})
        key = board._key._pin
        assert key.id == 4 and key.values.items == [0, 0]  # released at power-up
        assert await board.power_cycle() is True
        # release 0.5 s, then GPIO high (PWRKEY low) for 2 s >= 1.5 s (air724-at.md §3.1)
        assert key.values.items[2:] == [0, 1, 0]
        assert sleeps.calls.items == [500, 2000]
    finally:
        mcu.sleep_ms = saved


async def test_power_key_is_released_when_cancelled_mid_press():
    saved = mcu.sleep_ms
    mcu.sleep_ms = sleeps = Sleeps()
    try:
        key = mcu.PowerKey(FakePin(6, FakePin.OUT))
        task = asyncio.create_task(key.press())
        await key._pin.values.wait(3)  # pressed
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert key._pin.values[-1] == 0 and sleeps.calls.items[0] == 500
    finally:
        mcu.sleep_ms = saved


async def test_led_patterns_blink_and_steady():
    saved = mcu.sleep_ms
    mcu.sleep_ms = Sleeps()
    try:
        pin = FakePin(2, FakePin.OUT)
        led = mcu.Led(pin)
        assert pin.values[-1] == 0
        led.show("online")
        assert pin.values[-1] == 1 and led._task is None
        led.show("error")
        await pin.values.wait(len(pin.values) + 4)  # blinking in its task
        assert set(pin.values.items[-4:]) == {0, 1}
        led.show("online")
        await wait_ms(_ended(led), 2000)
        assert pin.values[-1] == 1
        led.show("no such pattern")
        assert led.pattern == "error"
        led.enable(False)
        await wait_ms(_ended(led), 2000)
        assert pin.values[-1] == 0
        led.show("online")
        assert pin.values[-1] == 0  # dark while LEDSwitch is 0
        led.enable(True)
        assert pin.values[-1] == 1
    finally:
        mcu.sleep_ms = saved


async def _ended(led):
    while led._task is not None:
        await asyncio.sleep(0)


async def test_watchdog_extends_a_short_hardware_limit_until_the_deadline():
    clock = [1000]
    saved = watchdog.sleep_ms
    watchdog.sleep_ms = sleeps = Sleeps(clock)
    try:
        FakeWDT.made.clear()
        dog = mcu.Watchdog(FakeWDT, 30000, 8388, lambda: clock[0])
        hw = FakeWDT.made[0]
        assert hw.timeout == 8388  # RP2040 maximum
        await wait_ms(_task_done(dog), 2000)  # nobody fed: the extender stops at the deadline
        assert dog.expired() and clock[0] - 1000 >= 30000
        assert hw.feeds == len(sleeps.calls) and set(sleeps.calls.items) == {8388 // 4}
    finally:
        watchdog.sleep_ms = saved


async def _task_done(dog):
    while not dog._task.done():
        await asyncio.sleep(0)


def test_watchdog_feed_moves_the_deadline_and_long_limits_use_the_hardware():
    clock = [0]
    FakeWDT.made.clear()
    dog = mcu.Watchdog(FakeWDT, 60000, 0x7FFFFFFF, lambda: clock[0])
    assert FakeWDT.made[0].timeout == 60000 and dog._task is None
    clock[0] = 59999
    assert not dog.expired()
    dog.feed()
    clock[0] = 119998
    assert not dog.expired() and FakeWDT.made[0].feeds == 1
    clock[0] = 119999
    assert dog.expired()


def test_board_watchdog_starts_once_and_feeds():
    FakeWDT.made.clear()
    board = board_module("esp32").Board({})
    board.feed()  # before watchdog(): nothing to feed
    board.watchdog(20000)
    board.watchdog(5000)  # a started WDT cannot be changed
    board.feed()
    assert len(FakeWDT.made) == 1 and FakeWDT.made[0].timeout == 20000
    assert FakeWDT.made[0].feeds == 1
    board.reset()
    assert FakeMachine.resets and board.reset_delay_ms > 0
    if IS_MICROPYTHON:  # gc.mem_free is MicroPython's
        assert board.free_heap() > 0


async def test_a_stopped_firmware_keeps_its_watchdog_fed_from_a_timer():
    # Ctrl-C (main.stopped): the hardware watchdog cannot be stopped, so a timer feeds it.
    for port, timer_id, period in (("esp32", 0, 30000), ("rp2", -1, 8388 // 4)):
        FakeWDT.made.clear()
        FakeTimer.made.clear()
        board = board_module(port).Board({})
        board.stopped()  # no watchdog started yet: nothing to keep fed
        assert FakeTimer.made == []
        board.watchdog(120000)
        board.stopped()
        board.stopped()  # once only
        assert len(FakeTimer.made) == 1, port
        timer, hw = FakeTimer.made[0], FakeWDT.made[0]
        assert (timer.id, timer.mode, timer.period) == (timer_id, FakeTimer.PERIODIC, period)
        fed = hw.feeds
        timer.callback(timer)
        timer.callback(timer)
        assert hw.feeds == fed + 2
        if board._wdt._task is not None:  # rp2: the extender of the 8.4 s hardware limit
            board._wdt._task.cancel()
            await asyncio.sleep(0)
