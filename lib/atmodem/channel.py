"""ATChannel: one reader task, serialized commands with timeouts, tokens, prompts and URCs.

The channel owns an asyncio stream with MicroPython's ``asyncio.Stream`` interface (a board's
``asyncio.StreamReader(uart)``, or ``asyncio.open_connection`` on the unix port / CPython, where
the writer is passed separately). Its reader task feeds the received bytes to the scanner it
extends (``atmodem.scanner.LineScanner``: lines, counted reads, prompts). Each complete line is
offered, in this order, to the pending command (echo, success tokens, ``ERROR`` / ``+CME
ERROR``, abort tokens, response prefixes) and then to the always-on URC table, so a URC never
lands in a command's response.

A command runs in stages: ``_checked`` (the line itself), the inline acquire of the channel, a
resync when needed, ``_expect`` and ``_data`` (the pending command's fields), the exchange
(write, then wait for the reader or the timer), ``_result`` and ``_release``. One timer task
wakes a command at its deadline: no ``wait_for`` task, and only the command's own coroutine,
per command.

After a timeout or a cancelled wait the answer may still come; the next command first sends a
probe whose answer has a known line, and drops any final result that comes before that line,
so a late ``OK`` is never taken as the next command's answer.
"""

import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from atmodem.errors import ArgumentError, ATTimeoutError, ClosedError
from atmodem.pending import OK, Pending

_EV_CLOSED = const(5)  # atmodem.EV_CLOSED

# Resync probes: standard commands whose answer carries a line with a known prefix. Two, so
# the probe can differ from the command that timed out.
PROBES = ((b"AT+CSQ", b"+CSQ:"), (b"AT+CMEE?", b"+CMEE:"))


class ATChannel(Pending):
    """AT command channel over an asyncio stream.

    ``bufsize`` bounds a line (and a counted header); counted payloads that fit after their
    header are read in place, larger ones into their own buffer up to ``data_max`` bytes, and
    bigger ones are skipped (``EV_DATA_DROPPED``; a command reading one raises ``DataError``).
    ``on_event(kind, data)`` receives the ``EV_*`` events. ``closed`` turns True (never back)
    when the stream ends or ``close()`` ran.

    ``command`` options: ``resp``, a prefix or tuple of prefixes of the lines that belong to
    the answer (others go to the URCs or out as ``EV_UNSOLICITED``), or None to collect every
    line no URC takes (bare answers such as an IMEI); ``counted``, the prefix of a header
    ending in a byte count n (the header and the n raw bytes are added to the lines);
    ``prompt`` (``b"DOWNLOAD"``, ``b">"``), which releases the write of ``payload``;
    ``resync=False`` skips the resync (autobaud ``AT``), None marks a probe. It raises
    ``ATTimeoutError``, ``CommandError``/``CMEError``, ``AbortError`` (a token of ``abort``),
    ``ClosedError``, ``ArgumentError`` (CR/LF in ``cmd``) and ``DataError``.
    """

    def __init__(self, stream, writer=None, bufsize: int = 1024, data_max: int = 8192):
        super().__init__(stream if writer is None else writer, bufsize, data_max)
        self._in = stream
        self.closed = False
        # Serialization: the task holding the channel and an Event (asyncio.Lock allocates on
        # every acquire).
        self._owner = None
        self._free = asyncio.Event()
        self._tasks = None  # (reader, timer)
        self._arm = asyncio.Event()  # wakes the idle timer
        self._until = None  # the deadline the timer sleeps until, None when it does not sleep
        self._deadline = 0
        self._stale = None  # after a timeout: that command's resp prefixes (a probe must differ)

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and timer tasks (once), from inside the running event loop."""
        if self._tasks is None and not self.closed:
            self._tasks = (asyncio.create_task(self._run()), asyncio.create_task(self._timer()))

    async def close(self) -> None:
        """Stop the tasks, fail a pending command with ``ClosedError``, close the stream."""
        for task in self._tasks or ():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = None
        self._shutdown()
        try:
            self._out.close()
        except Exception:  # closing is best effort
            pass

    def exclusive(self) -> "ATChannel":
        """``async with channel.exclusive():`` - this task's commands run with none in between."""
        return self

    async def __aenter__(self):
        while self._owner is not None:
            await self._free.wait()
        self._owner = asyncio.current_task()
        self._free.clear()
        return self

    async def __aexit__(self, *exc):
        self._owner = None
        self._free.set()

    async def command(
        self,
        cmd: "bytes | str",
        timeout_ms: int = 5000,
        ok: tuple = OK,
        abort: tuple = (),
        resp: "bytes | tuple | None" = (),
        counted: "bytes | None" = None,
        prompt: "bytes | None" = None,
        payload: "bytes | None" = None,
        resync: "bool | None" = True,
    ) -> list:
        """Send ``cmd`` (no CR/LF; the CR is added) and return its response lines, ending with
        the line that matched a token of ``ok`` (prefix match); options: see the class doc."""
        cmd = self._checked(cmd)
        own = self._owner is asyncio.current_task()  # inside exclusive(), or a resync probe
        if not own:
            while self._owner is not None:  # inline acquire: no allocation when free
                await self._free.wait()
            self._owner = asyncio.current_task()
            self._free.clear()
        try:
            if self._stale is not None and resync:
                await self.resync(timeout_ms)
            # Separate calls keep this coroutine's frame (allocated per command) small.
            self._expect(cmd, ok, abort, resp)
            self._data(counted, prompt, payload)
            self._probe = resync is None
            deadline = self._start_timer(timeout_ms)
            out = self._out
            try:
                self._send(cmd)
                while self._active or self._drain:
                    if self._drain:  # the command, or the payload written at the prompt
                        self._drain = False
                        if getattr(out, "out_buf", True):  # MicroPython: what did not fit
                            await out.drain()
                        continue
                    if ticks_diff(deadline, ticks_ms()) <= 0:
                        raise ATTimeoutError(cmd)
                    # No await since the checks above, so this clear loses no wake-up.
                    self._done.clear()
                    await self._done.wait()
            except OSError:
                raise ClosedError() from None
            return self._result()
        finally:
            self._release(own)

    async def resync(self, timeout_ms: int = 2000) -> None:
        """Make sure no late answer of an earlier command is pending.

        Sends a probe (``PROBES``) whose answer has a known prefix line; final results that
        arrive before that line belong to an earlier command and are dropped. Runs by itself
        before the first command after a timeout or a cancelled wait.
        """
        stale = self._stale
        probe = PROBES[-1]
        for probe in PROBES:
            if not stale or probe[1] not in stale:  # a late line could fool this probe
                break
        await self.command(probe[0], timeout_ms, resp=probe[1], resync=None)
        self._stale = None

    # -- command stages -----------------------------------------------------------------------

    def _checked(self, cmd) -> bytes:
        if isinstance(cmd, str):
            cmd = cmd.encode()
        if b"\r" in cmd or b"\n" in cmd:
            raise ArgumentError("CR/LF in command")
        if self.closed:
            raise ClosedError()
        return cmd

    def _send(self, cmd):
        # MicroPython's Stream writes at once and keeps in out_buf only what did not fit (its
        # drain() would then only yield); CPython's drain always runs.
        self._out.write(cmd)
        self._out.write(b"\r")  # the terminator the module expects (air724-at.md §2)
        self._drain = True

    def _start_timer(self, timeout_ms):
        deadline = self._deadline = ticks_add(ticks_ms(), timeout_ms)
        if self._until is None:
            self._arm.set()
        elif ticks_diff(self._until, deadline) > 0 and self._tasks is not None:
            self._until = None
            self._tasks[1].cancel()  # asleep past the new deadline: re-arm
        return deadline

    def _release(self, own):
        if self._active:  # timeout, cancelled caller or write error
            self._active = False
            if self._ctarget is None:
                self._ctarget = False  # a counted read under way is no longer ours
            self.expire()  # a counted read that stopped getting bytes is given up
            if not self.closed:
                self._stale = self._resp or ()  # a late answer may still come: resync first
        self._cprefix = self._prompt = self._payload = self._err = None
        self._lines = None  # pyright: ignore[reportAttributeAccessIssue]
        if not own:
            self._owner = None
            self._free.set()

    # -- tasks --------------------------------------------------------------------------------

    async def _timer(self):
        # Sleeps until the pending command's deadline, then wakes it (it raises the timeout).
        while True:
            if self._active:
                left = ticks_diff(self._deadline, ticks_ms())
                if left > 0:
                    self._until = self._deadline
                    try:
                        await asyncio.sleep_ms(left)
                    except asyncio.CancelledError:  # re-armed by command(), or closed
                        if self.closed:
                            raise
                    continue
                self._done.set()
            self._until = None
            self._arm.clear()
            await self._arm.wait()

    async def _run(self):
        # MicroPython's Stream has readinto(); CPython's StreamReader only read(n).
        recv = getattr(self._in, "readinto", None)
        try:
            while True:
                dst = self.space()
                if recv is not None:
                    n = await recv(dst)
                else:
                    data = await self._in.read(len(dst))
                    n = len(data)
                    dst[:n] = data
                if n is None:  # a UART read may return None (no data after all)
                    continue
                if not n:
                    break
                self.received(n)
        except OSError:
            pass
        finally:
            self._shutdown()

    def _shutdown(self):
        if not self.closed:
            self.closed = True
            if self._active:
                self._finish(ClosedError())
            if self._tasks is not None:
                self._tasks[1].cancel()  # the timer
            self._emit(_EV_CLOSED, None)
