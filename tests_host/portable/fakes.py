"""Test shim (CPython and MicroPython): an in-memory duplex stream and a scripted fake modem.

``FakeStream`` is the host end of a UART: the asyncio stream interface the AT engine uses on a
board (``read``/``readinto``/``write``/``drain``/``close``). The device end feeds bytes to the
host (``feed``), delivered in chunks of a fixed or seeded-random size down to one byte, and
sees every byte the host writes (``written``, ``on_write``).

``FakeModem`` plays the module on a ``FakeStream``: it cuts host writes into command lines at
CR, records them (``commands``), optionally echoes them, and runs the script registered for
each command. A script is a sequence of steps:

- ``bytes``: sent to the host (a reply, a URC, half a line: anything, at any point);
- ``Delay(ms)``: pause (module latency, not synchronization);
- ``Read(n)``: take the next n raw bytes the host writes as payload (``payloads``), not as
  commands (after ``DOWNLOAD`` or ``>``);
- ``Wait(event)``: hold until the test sets the event;
- ``EOF``: close the device end (the host reads end of stream);
- a callable ``step(modem)`` (may be async).

Unknown commands get ``default`` (``ERROR``; None: no answer). Tests synchronize on events
(``wait_command``), never on sleeps.
"""

import asyncio


def sleep_ms(ms):
    return asyncio.sleep_ms(ms)


def wait_ms(aw, ms):
    return asyncio.wait_for_ms(aw, ms)


class Chunks:
    """Chunk sizes: ``size`` bytes at most per read (0: all), or random in ``size=(lo, hi)``.

    Random sizes come from a 31-bit LCG seeded with ``seed``, so both runtimes see the same
    sequence.
    """

    def __init__(self, size=0, seed=1):
        self.size = size
        self.state = seed & 0x7FFFFFFF

    def next(self):
        size = self.size
        if type(size) is int:
            return size
        lo, hi = size
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (self.state >> 8) % (hi - lo + 1)


class FakeStream:
    """In-memory duplex stream; host side has the asyncio Stream interface."""

    def __init__(self, chunk=0, seed=1, record=True, pace=False):
        self.chunks = Chunks(chunk, seed)
        self.pace = pace  # yield to other tasks before each chunk, as a slow UART would
        self.written = bytearray() if record else None  # every byte the host wrote
        self.on_write = None  # device hook: on_write(data), called at each host write
        self.closed = False  # host closed
        self.reads = 0
        self.out_buf = b""  # like MicroPython's Stream: writes go out at once, none pending
        self._rx = bytearray(256)  # pending bytes are _rx[_pos:_len]
        self._rxmv = memoryview(self._rx)
        self._pos = 0
        self._len = 0
        self._eof = False
        self._ev = asyncio.Event()

    # -- device end --

    def feed(self, data):
        n = len(data)
        if self._pos == self._len:
            self._pos = self._len = 0
        if self._len + n > len(self._rx):  # grow (tests only; the bench stays below)
            rx = bytearray(2 * (self._len - self._pos + n))
            rx[0 : self._len - self._pos] = self._rxmv[self._pos : self._len]
            self._len -= self._pos
            self._pos = 0
            self._rx = rx
            self._rxmv = memoryview(rx)
        self._rx[self._len : self._len + n] = data
        self._len += n
        self._ev.set()

    def eof(self):
        self._eof = True
        self._ev.set()

    def pending(self):
        return self._len - self._pos

    # -- host end --

    def _take(self, n):
        limit = self.chunks.next()
        k = self._len - self._pos
        if n < k:
            k = n
        if 0 < limit < k:
            k = limit
        self.reads += 1
        return k

    async def readinto(self, buf):
        if self.pace:
            await sleep_ms(0)
        while self._pos >= self._len:
            if self._eof or self.closed:
                return 0
            self._ev.clear()
            await self._ev.wait()
        k = self._take(len(buf))
        p = self._pos
        buf[0:k] = self._rxmv[p : p + k]
        self._pos = p + k
        return k

    async def read(self, n=-1):
        if self.pace:
            await sleep_ms(0)
        while self._pos >= self._len:
            if self._eof or self.closed:
                return b""
            self._ev.clear()
            await self._ev.wait()
        k = self._take(n if n >= 0 else self._len)
        p = self._pos
        self._pos = p + k
        return bytes(self._rx[p : p + k])

    def write(self, data):
        if self.closed:
            raise OSError(32)
        if self.written is not None:
            self.written.extend(data)
        if self.on_write is not None:
            self.on_write(data)

    async def drain(self):
        if self.closed:
            raise OSError(32)
        await sleep_ms(0)

    def close(self):
        self.closed = True
        self._ev.set()


class ReadOnlyStream:
    """Wraps a FakeStream without ``readinto`` (CPython's StreamReader shape: ``read(n)``)."""

    def __init__(self, inner):
        self.inner = inner

    async def read(self, n=-1):
        return await self.inner.read(n)

    def write(self, data):
        self.inner.write(data)

    async def drain(self):
        await self.inner.drain()

    def close(self):
        self.inner.close()


class Delay:
    def __init__(self, ms):
        self.ms = ms


class Read:
    def __init__(self, n):
        self.n = n


class Wait:
    def __init__(self, event):
        self.event = event


EOF = object()


class FakeModem:
    """Scripted modem on the device end of a FakeStream."""

    def __init__(self, stream, echo=False, default=b"\r\nERROR\r\n"):
        self.stream = stream
        self.echo = echo
        self.default = default
        self.commands = []  # command lines received, without CR
        self.payloads = []  # raw payloads taken by Read steps
        self._scripts = {}
        self._inbox = bytearray()
        self._ipos = 0
        self._in_ev = asyncio.Event()
        self._cmd_ev = asyncio.Event()
        self._wr_ev = asyncio.Event()
        stream.on_write = self._on_write
        self._task = asyncio.create_task(self._run())

    def on(self, cmd, *steps, repeat=False):
        """Answer ``cmd`` (bytes, no CR) with ``steps``; once, or every time with ``repeat``.

        Several ``on`` for one command are used in order.
        """
        self._scripts.setdefault(bytes(cmd), []).append((steps, repeat))

    def inject(self, data):
        """Send bytes to the host now (a URC between or inside answers)."""
        self.stream.feed(data)

    def count(self, cmd):
        return self.commands.count(cmd)

    async def wait_command(self, cmd, n=1, timeout_ms=2000):
        """Wait until ``cmd`` has been received ``n`` times."""

        async def seen():
            while self.commands.count(cmd) < n:
                self._cmd_ev.clear()
                await self._cmd_ev.wait()

        await wait_ms(seen(), timeout_ms)

    async def wait_written(self, data, timeout_ms=2000):
        """Wait until the host has written ``data`` (even while a script step holds)."""

        async def seen():
            while data not in self.stream.written:
                self._wr_ev.clear()
                await self._wr_ev.wait()

        await wait_ms(seen(), timeout_ms)

    async def close(self):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def _on_write(self, data):
        self._inbox.extend(data)
        self._in_ev.set()
        self._wr_ev.set()

    async def _more(self):
        self._in_ev.clear()
        await self._in_ev.wait()

    async def _line(self):
        while True:
            i = self._inbox.find(b"\r", self._ipos)
            if i >= 0:
                line = bytes(self._inbox[self._ipos : i])
                self._ipos = i + 1
                return line.lstrip(b"\n")
            await self._more()

    async def _raw(self, n):
        while len(self._inbox) - self._ipos < n:
            await self._more()
        data = bytes(self._inbox[self._ipos : self._ipos + n])
        self._ipos += n
        return data

    def _script(self, line):
        queue = self._scripts.get(line)
        if not queue:
            return None
        steps, repeat = queue[0]
        if not repeat:
            queue.pop(0)
        return steps

    async def _run(self):
        while True:
            line = await self._line()
            if not line:
                continue
            self.commands.append(line)
            self._cmd_ev.set()
            if self.echo:
                self.stream.feed(line + b"\r")
            steps = self._script(line)
            if steps is None:
                if self.default:
                    self.stream.feed(self.default)
                continue
            for step in steps:
                await self._step(step)

    async def _step(self, step):
        if isinstance(step, (bytes, bytearray)):
            self.stream.feed(step)
        elif isinstance(step, Delay):
            await sleep_ms(step.ms)
        elif isinstance(step, Read):
            self.payloads.append(await self._raw(step.n))
        elif isinstance(step, Wait):
            await step.event.wait()
        elif step is EOF:
            self.stream.eof()
        else:
            result = step(self)
            if result is not None and hasattr(result, "send"):
                await result


class Rig:
    """``async with Rig(make, chunk=..., echo=...) as rig``: stream, modem, and ``make(stream)``.

    With chunked delivery the stream also yields before each chunk, so other tasks (callers,
    the modem) run between the pieces of a reply.

    ``rig.obj`` is what ``make`` built (a channel, a driver); it is started if it has
    ``start()`` and closed (``await obj.close()``) on exit, then the modem task is stopped.
    """

    def __init__(self, make=None, chunk=0, seed=1, echo=False, default=b"\r\nERROR\r\n"):
        self.make = make
        self.stream = FakeStream(chunk, seed, pace=chunk != 0)
        self.modem = None
        self.obj = None
        self._echo = echo
        self._default = default

    async def __aenter__(self):
        self.modem = FakeModem(self.stream, self._echo, self._default)
        if self.make is not None:
            self.obj = self.make(self.stream)
            if hasattr(self.obj, "start"):
                self.obj.start()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if self.obj is not None and hasattr(self.obj, "close"):
            await self.obj.close()
        await self.modem.close()
        return False
