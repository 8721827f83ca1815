"""The module's AT engine: boot, autobaud, echo, line assembly, dispatch and result codes.

Commands come from small tables (basic, bearer, http, mqtt): ``{name: {form: handler}}``.
A handler returns None (``OK``), a string (its own final line), ``NO_FINAL``, or raises
AtError / CmeError. One command runs at a time; URCs are written whenever their event happens,
so they may fall between a command and its final result, as on the module (ref §3.2).
"""

import asyncio
import inspect
import time

from . import basic, bearer, http, mqtt
from .atparse import TEST, ArgError, parse_command, split_line, wire_text
from .radio import Radio
from .results import CME_TEXT, NO_FINAL, AtError, CmeError

_MAX_LINE = 16384  # a longer line is dropped with ERROR (bounded buffer; the limit is INFERRED)
TABLES = (basic.COMMANDS, bearer.COMMANDS, http.COMMANDS, mqtt.COMMANDS)


class Modem:
    """One emulated Air724UG behind a Uart."""

    def __init__(self, uart, dialect, profile, identity, network, faults=None, log=None):
        self.uart = uart
        self.dialect = dialect
        self.profile = profile
        self.identity = identity
        self.network = network
        self.faults = faults
        self.log = log or (lambda text: None)
        self.handlers = {}
        for table in TABLES:
            self.handlers.update(table)
        self.radio = Radio(self)
        self.bearer = bearer.BearerService(self)
        self.http = http.HttpService(self)
        self.mqtt = mqtt.MqttService(self)
        self.generation = 0
        self.powered = False
        self.ready = False
        self.trained = False
        self.echo = True
        self.cmee = 1
        self.boots = 0
        self._rx = bytearray()
        self._rx_event = asyncio.Event()
        self._skip_lf = False
        self._ab_tail = b""
        self._backlog = []
        self._stall_until = 0.0
        self._tasks = set()
        self._boot_task = None
        self._processor = None
        uart.on_receive = self.feed
        uart.on_attach = self.host_attached

    # -- life cycle ---------------------------------------------------------------------------

    def start(self):
        self.power_on(cold=True)

    def _restart_processor(self):
        """Abandon the command in progress (a reboot mid-DOWNLOAD must not eat what follows)."""
        if self._processor:
            self._processor.cancel()
        self._rx.clear()
        self._skip_lf = False
        self._processor = asyncio.ensure_future(self._process())

    async def stop(self):
        self._cancel_generation()
        self.mqtt.reset()
        if self._processor:
            self._processor.cancel()
            await asyncio.gather(self._processor, return_exceptions=True)

    def power_on(self, cold):
        """Boot: cold (power-on, needs autobaud) or soft (AT+RESET, CFUN=1,1, fault)."""
        self._cancel_generation()
        self.generation += 1
        self.boots += 1
        self.powered, self.ready = True, False
        self.echo, self.cmee = True, int(self.dialect.cmee_boot)
        if cold or self.dialect.autobaud_reset:
            self.trained = not self.dialect.autobaud
            self._ab_tail = b""
        self._backlog.clear()
        self.uart.discard_input()
        self._restart_processor()
        for service in (self.radio, self.bearer, self.http, self.mqtt):
            service.reset()
        delay = self.profile.power_on if cold else self.profile.reset
        self.log(f"{'power-on' if cold else 'reboot'}: RDY in {delay:g} s")
        self._boot_task = self.spawn(self._boot(delay))

    def power_off(self):
        """AT+CPOWD=1: the module stops; only a power cycle (ctl power_cycle) brings it back."""
        self._cancel_generation()
        self.generation += 1
        self.powered = self.ready = False
        self._restart_processor()
        for service in (self.radio, self.bearer, self.http, self.mqtt):
            service.reset()

    async def _boot(self, delay):
        await asyncio.sleep(delay)
        self.ready = True
        self.urc("RDY")  # ref §3.2: certain on every boot
        await self.radio.boot_sequence()

    def _cancel_generation(self):
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    def spawn(self, coro):
        """Run a task that belongs to this boot; a reboot cancels it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            self.log(f"internal error: {task.exception()!r}")

    # -- output -------------------------------------------------------------------------------

    def write(self, data):
        """Raw bytes to the host."""
        self.uart.send(data)

    def info(self, text):
        """A response line: ``\\r\\n<text>\\r\\n``."""
        self.write(b"\r\n" + _b(text) + b"\r\n")

    def urc(self, text):
        """An unsolicited line. Before autobaud training nothing reaches the host: the module
        reports what happened once the rate is known (ref §2)."""
        frame = b"\r\n" + _b(text) + b"\r\n"
        if not self.trained or self._backlog:  # keep the order until the backlog is out
            self._backlog.append(frame)
        else:
            self.write(frame)

    def cme(self, code):
        """The error line for a code under the current AT+CMEE."""
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(code, code)}"
        return f"+CME ERROR: {code}"

    # -- input --------------------------------------------------------------------------------

    def feed(self, data):
        """Host bytes arriving on the UART (paced)."""
        if not self.powered:
            return
        if not self.trained:
            if not self.ready:
                return  # booting: the UART is not listening yet
            joined = self._ab_tail + data
            index = joined.find(b"AT")  # only upper-case AT trains the rate (ref §2)
            if index < 0:
                self._ab_tail = joined[-1:]
                return
            self.trained = True
            data = joined[index:]
            self.log("autobaud: rate trained")
        self._rx += data
        self._rx_event.set()

    def host_attached(self):
        """A host connected to the UART: the module keeps its state (an MCU reset does not
        reset the module, whose MQTT session stays up: `ALREADY CONNECT`, §7.2)."""
        self.log("host connected (module state kept)")
        if self.faults:
            self.faults.host_attached()

    def stall(self, seconds):
        """Answer nothing for ``seconds``: no output, no command processed."""
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)
        self.uart.hold(seconds)

    async def _wait_input(self):
        self._rx_event.clear()
        await self._rx_event.wait()

    async def _read_line(self):
        line = bytearray()
        while True:
            if not self._rx:
                await self._wait_input()
                continue
            if self._skip_lf and self._rx[:1] == b"\n":
                if self.echo:
                    self.write(b"\n")
                del self._rx[:1]
            self._skip_lf = False
            if not self._rx:
                continue
            end = self._rx.find(b"\r")
            stop = len(self._rx) if end < 0 else end + 1
            if end >= 0 and self._rx[stop : stop + 1] == b"\n":
                stop += 1  # CRLF terminator: the LF is echoed with its line
            chunk = bytes(self._rx[:stop])
            del self._rx[:stop]
            if self.echo:
                self.write(chunk)
            _edit(line, chunk if end < 0 else chunk[: chunk.index(b"\r")])
            if end >= 0:
                self._skip_lf = not chunk.endswith(b"\n")
                return None if len(line) > _MAX_LINE else bytes(line)

    async def read_data(self, count=None, timeout=None, idle=None, terminator=None, echo=False):
        """Raw bytes after a prompt: exactly ``count`` (within ``timeout`` s), or up to
        ``terminator`` / ``idle`` seconds without data. Returns what arrived."""
        data = bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._skip_lf and self._rx[:1] == b"\n":
                del self._rx[:1]
            if self._rx:
                self._skip_lf = False
            take = len(self._rx) if count is None else min(len(self._rx), count - len(data))
            chunk = bytes(self._rx[:take])
            del self._rx[:take]
            if terminator is not None and terminator in chunk:
                cut = chunk.index(terminator)
                self._rx[:0] = chunk[cut + 1 :]
                chunk, done = chunk[:cut], True
            else:
                done = False
            if echo and chunk:
                self.write(chunk)
            data += chunk
            if done or (count is not None and len(data) >= count):
                return bytes(data)
            waits = [] if idle is None else [idle]
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return bytes(data)
                waits.append(left)
            try:
                await asyncio.wait_for(self._wait_input(), min(waits) if waits else None)
            except asyncio.TimeoutError:
                if idle is not None:
                    return bytes(data)

    async def _process(self):
        while True:
            raw = await self._read_line()
            wait = self._stall_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if raw is None:
                self.info("ERROR")
                continue
            await self.execute(wire_text(raw))
            self._flush_backlog()

    def _flush_backlog(self):
        """After the training command: what happened before, in order (ref §2)."""
        if self._backlog and self.trained:
            for frame in self._backlog:
                self.write(frame)
            self._backlog.clear()

    # -- dispatch -----------------------------------------------------------------------------

    async def execute(self, text):
        """Run one command line and print its final result."""
        text = text.strip()
        if not text or text[:2].upper() != "AT":
            return  # not a command: the module ignores it (INFERRED)
        generation = self.generation
        final = self.faults.intercept(text) if self.faults else None
        if final is None:
            final = await self._run_line(text)
        if generation != self.generation:
            return  # the module rebooted while the command ran: no answer
        if final is not NO_FINAL:
            self.info(final)
        self._flush_backlog()
        if self.faults:
            self.faults.after_command(text)

    async def _run_line(self, text):
        try:
            commands = [parse_command(part, text) for part in split_line(text[2:])]
        except ArgError as err:
            self.log(f"syntax: {err}")
            return "ERROR"
        final = "OK"
        for command in commands:
            try:
                result = self._dispatch(command)
                if inspect.isawaitable(result):
                    result = await result
            except AtError:
                return "ERROR"
            except ArgError as err:
                self.log(f"{command.name}: {err}")
                return "ERROR"
            except CmeError as err:
                return self.cme(err.code)
            final = "OK" if result is None else result
        return final

    def _dispatch(self, command):
        forms = self.handlers.get(command.name)
        if forms is None:
            raise AtError(f"unknown command {command.name}")
        handler = forms.get(command.kind)
        if handler is None:
            if command.kind == TEST:
                return None  # test form of a known command: OK
            raise AtError(f"{command.name} has no {command.kind} form")
        return handler(self, command)

    def state(self):
        """A summary for ``ctl status``."""
        return {
            "boots": self.boots,
            "ready": self.ready,
            "trained": self.trained,
            "echo": self.echo,
            **self.radio.state(),
            **self.bearer.state(),
            **self.http.state(),
            **self.mqtt.state(),
            "uart": {"to_host": self.uart.tx_bytes, "from_host": self.uart.rx_bytes},
        }


def _edit(line, data):
    """Append typed bytes to a line: backspace/DEL erase, LF is ignored, the length is capped."""
    for byte in data:
        if byte in (8, 127):
            del line[-1:]
        elif byte != 10 and len(line) <= _MAX_LINE:
            line.append(byte)


def _b(text):
    return text if isinstance(text, bytes) else text.encode("latin-1", "replace")
