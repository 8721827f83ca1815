"""ATChannel: serialized commands with their own timeouts, tokens and prompts.

The channel owns an asyncio stream with MicroPython's ``asyncio.Stream`` interface (a board's
``asyncio.StreamReader(uart)``, or ``asyncio.open_connection`` on the unix port / CPython, where
the writer is passed separately). ``LineReader`` (reader.py) reads it; each complete line is
offered, in this order, to the pending command (echo, data prompt, success tokens, ``ERROR`` /
``+CME ERROR``, abort tokens, response prefixes) and then to the always-on URC table, so a URC
never lands in a command's response.

After a timeout or a cancelled wait the answer may still come; the next command first sends a
probe whose answer has a known line, and drops any final result that comes before that line,
so a late ``OK`` is never taken as the next command's answer.
"""

import asyncio

from micropython import const

from atmodem.errors import (
    AbortError,
    ArgumentError,
    ATTimeoutError,
    ClosedError,
    CMEError,
    CommandError,
    DataError,
    ResponseError,
)
from atmodem.reader import LineReader, _starts, _tail_int

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython (host tests); never runs on the device
    # A type checker takes every TYPE_CHECKING as true: it keeps the device's ticks (the
    # stubs' opaque tick type), and only CPython runs the int fallback.
    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from time import ticks_add, ticks_diff, ticks_ms
    else:
        from time import monotonic

        def ticks_ms():
            return int(monotonic() * 1000)

        def ticks_add(a, b):
            return a + b

        def ticks_diff(a, b):
            return a - b


if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms
else:  # CPython

    def _sleep_ms(delay: int):
        return asyncio.sleep(delay / 1000)


_OK = (b"OK",)
_ERROR_LEN = const(5)
# Resync probes: standard commands whose answer carries a line with a known prefix. Two, so
# the probe can differ from the command that timed out.
PROBES = ((b"AT+CSQ", b"+CSQ:"), (b"AT+CMEE?", b"+CMEE:"))


class _Exclusive:
    """``async with channel.exclusive():`` - this task's commands run with none in between."""

    def __init__(self, ch):
        self._ch = ch

    async def __aenter__(self):
        ch = self._ch
        await ch._acquire()
        ch._owner = asyncio.current_task()
        return ch

    async def __aexit__(self, exc_type, exc, tb):
        ch = self._ch
        ch._owner = None
        ch._unlock()
        return False


class ATChannel(LineReader):
    """AT command channel over an asyncio stream.

    ``bufsize`` bounds a line (and a counted header); counted payloads that fit after their
    header are read in place, larger ones into their own buffer up to ``data_max`` bytes, and
    bigger ones are skipped (``EV_DATA_DROPPED``; a command reading one raises ``DataError``).
    ``on_event(kind, data)`` receives the ``EV_*`` events of reader.py.
    """

    def __init__(
        self,
        stream,
        writer=None,
        bufsize: int = 1024,
        data_max: int = 8192,
        probes: tuple = PROBES,
    ):
        super().__init__(stream, bufsize, data_max)
        self._out = stream if writer is None else writer
        self.probes = probes
        # Serialization: a flag and an Event (asyncio.Lock allocates on every acquire).
        self._busy = False
        self._free = asyncio.Event()
        self._owner = None
        self._done = asyncio.Event()  # wakes the command task
        self._task = None
        self._timer_task = None
        self._arm = asyncio.Event()
        self._armed = False  # the timer sleeps until _until
        self._until = 0
        self._deadline = 0
        self._stale = False
        self._stale_resp = None
        self._probing = False
        # Pending command (fields, not an object: nothing allocated per command).
        self._active = False
        self._seq = 0
        self._cseq = 0
        self._cmd = b""
        self._ok = _OK
        self._abort = ()
        self._resp = None
        self._cprefix = None
        self._prompt = None
        self._gt = False
        self._payload = None
        self._drain = False
        self._need = False
        self._derr = False
        self._lines = None
        self._err = None

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and timer tasks (once), from inside the running event loop."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run())
            self._timer_task = asyncio.create_task(self._timer())

    async def close(self) -> None:
        """Stop the tasks, fail a pending command with ``ClosedError``, close the stream."""
        for task in (self._task, self._timer_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._task = self._timer_task = None
        self._shutdown()
        try:
            self._out.close()
        except Exception:  # closing is best effort
            pass

    def exclusive(self) -> "_Exclusive":
        """Context manager: the commands of this task run back to back, none in between."""
        return _Exclusive(self)

    async def command(
        self,
        cmd: "bytes | str",
        timeout_ms: int = 5000,
        ok: tuple = _OK,
        abort: tuple = (),
        resp: "bytes | tuple | None" = (),
        counted: "bytes | None" = None,
        prompt: "bytes | None" = None,
        payload: "bytes | None" = None,
        resync: bool = True,
    ) -> list:
        """Send ``cmd`` (no CR/LF; the CR is added) and return its response lines.

        The list holds the response lines (bytes) and ends with the line that matched a token
        of ``ok`` (prefix match). ``resp``: a prefix or tuple of prefixes of the lines that
        belong to the answer; other lines go to the URC table or, if no URC takes them, are
        reported as ``EV_UNSOLICITED``. ``resp=None`` instead collects every line no URC takes
        (bare answers such as an IMEI). ``counted``: prefix of a header line ending in a
        byte count n; the header and then the n raw bytes are added to the list. ``prompt``
        (``b"DOWNLOAD"`` or ``b">"``) releases the write of ``payload``. Raises
        ``ATTimeoutError``, ``CommandError``/``CMEError``, ``AbortError`` (a token of
        ``abort``), ``ClosedError``, ``ArgumentError`` (CR/LF in ``cmd``). After a timeout or
        a cancelled wait the next command first resyncs (see ``resync``); ``resync=False``
        skips that (autobaud ``AT``).
        """
        if isinstance(cmd, str):
            cmd = cmd.encode()
        if b"\r" in cmd or b"\n" in cmd:
            raise ArgumentError("CR/LF in command")
        if type(resp) is bytes:
            resp = (resp,)
        if type(ok) is bytes:
            ok = (ok,)
        if type(abort) is bytes:
            abort = (abort,)
        if self._closed:
            raise ClosedError()
        own = self._owner is not None and self._owner is asyncio.current_task()
        if not own:
            while self._busy:  # inline acquire: no allocation when free
                await self._free.wait()
            self._busy = True
            self._free.clear()
        try:
            if self._stale and resync:
                await self._resync(timeout_ms)
            # The exchange itself, inline: one coroutine object per command.
            self._seq += 1
            self._cmd = cmd
            self._ok = ok
            self._abort = abort
            self._resp = resp
            self._cprefix = counted
            self._prompt = prompt
            self._gt = prompt == b">"
            self._payload = payload if prompt is not None else None
            self._drain = False
            self._need = self._probing
            self._derr = False
            self._lines = None
            self._err = None
            self._active = True
            deadline = self._deadline = ticks_add(ticks_ms(), timeout_ms)
            self._arm_timer()
            out = self._out
            try:
                out.write(cmd)
                out.write(b"\r")  # the terminator the module expects (air724-at.md §2)
                # MicroPython's Stream writes at once and keeps in out_buf only what did not
                # fit; with nothing there its drain() would only yield. CPython's always runs.
                if getattr(out, "out_buf", True):
                    await out.drain()
            except OSError:
                raise ClosedError() from None
            while self._active or self._drain:
                if self._drain:  # the reader wrote the payload at the prompt; flush it
                    self._drain = False
                    if getattr(out, "out_buf", True):
                        await out.drain()
                    continue
                if ticks_diff(deadline, ticks_ms()) <= 0:
                    raise ATTimeoutError(cmd)
                # No await since the checks above, so this clear loses no wake-up. The reader
                # (result, prompt) or the timer (deadline) sets the event.
                self._done.clear()
                await self._done.wait()
            if self._err is not None:
                raise self._err
            return self._lines or []  # never None here: success added its final line
        finally:
            if self._active:  # timeout, cancelled caller or write error
                self._active = False
                if not self._closed:
                    # A late answer may still come: resync before the next command.
                    self._stale = True
                    self._stale_resp = resp
            self._payload = None
            self._lines = None
            self._err = None
            if not own:
                self._unlock()

    async def resync(self, timeout_ms: int = 2000) -> None:
        """Make sure no late answer of an earlier command is pending.

        Sends a probe (``probes``) whose answer has a known prefix line; final results that
        arrive before that line belong to an earlier command and are dropped. Runs by itself
        before the first command after a timeout or a cancelled wait.
        """
        if self._closed:
            raise ClosedError()
        own = self._owner is not None and self._owner is asyncio.current_task()
        if not own:
            await self._acquire()
        try:
            await self._resync(timeout_ms)
        finally:
            if not own:
                self._unlock()

    # -- command side -----------------------------------------------------------------------

    async def _acquire(self):
        while self._busy:
            await self._free.wait()
        self._busy = True
        self._free.clear()

    def _unlock(self):
        self._busy = False
        self._free.set()

    async def _resync(self, timeout_ms):
        stale = self._stale_resp
        pick = self.probes[-1]
        for probe in self.probes:
            if stale is None or probe[1] not in stale:  # a late line could fool this probe
                pick = probe
                break
        # The probe runs as a command of this task, with the "drop finals before the answer
        # line" rule (_need) on.
        owner = self._owner
        self._owner = asyncio.current_task()
        self._probing = True
        try:
            await self.command(pick[0], timeout_ms, resp=pick[1], resync=False)
        finally:
            self._owner = owner
            self._probing = False
        self._stale = False
        self._stale_resp = None

    def _arm_timer(self):
        if not self._armed:
            self._arm.set()
        elif ticks_diff(self._until, self._deadline) > 0 and self._timer_task is not None:
            self._armed = False
            self._timer_task.cancel()  # asleep past the new deadline: re-arm

    async def _timer(self):
        # One task wakes a command at its deadline: no wait_for task per command.
        while True:
            if not self._active:
                self._armed = False
                self._arm.clear()
                await self._arm.wait()
                continue
            left = ticks_diff(self._deadline, ticks_ms())
            if left > 0:
                self._armed = True
                self._until = self._deadline
                try:
                    await _sleep_ms(left)
                except asyncio.CancelledError:
                    if self._closed:
                        raise
                continue
            self._done.set()  # past the deadline: the command raises ATTimeoutError
            self._armed = False
            self._arm.clear()
            await self._arm.wait()

    def _finish(self, err):
        if err is None and self._derr:
            err = DataError()
        self._err = err
        self._active = False
        self._done.set()

    def _add(self, item):
        if self._lines is None:
            self._lines = [item]
        else:
            self._lines.append(item)

    def _release(self):
        # Data prompt: write the payload now (no scheduling delay inside the module's input
        # window); the command task drains it.
        self._out.write(self._payload)
        self._payload = None
        self._drain = True
        self._done.set()

    # -- hooks called by the reader -----------------------------------------------------------

    def _on_closed(self):
        if self._active:
            self._finish(ClosedError())
        if self._timer_task is not None:
            self._timer_task.cancel()

    def _cmd_prompt(self):
        if self._gt and self._payload is not None and self._active:
            self._release()
            return True
        return False

    def _cmd_counted(self, s, n):
        cp = self._cprefix
        if cp is not None and self._active and _starts(self._buf, cp, s, n):
            self._cseq = self._seq
            return True
        return False

    def _cmd_data(self, head, payload):
        if self._active and self._cseq == self._seq:
            self._add(bytes(head))
            self._add(bytes(payload))
        else:  # the command that asked for it is gone (timed out)
            self._unsolicited(head)

    def _dropped(self, for_command):
        if for_command and self._active:
            self._derr = True

    def _line(self, s, e):
        buf = self._buf
        n = e - s
        if self._active:
            cmd = self._cmd
            if n == len(cmd) and buf.startswith(cmd, s):
                return  # echo (on by default after boot, air724-at.md §2)
            p = self._prompt
            if p is not None and not self._gt and self._payload is not None:
                if _starts(buf, p, s, n):
                    self._release()  # DOWNLOAD line (AT+HTTPDATA)
                    return
            for t in self._ok:
                if _starts(buf, t, s, n):
                    if self._need and self._lines is None:
                        break  # a late result of an earlier command (resync): unsolicited
                    if self._payload is not None:
                        self._finish(ResponseError("result before prompt"))
                        return
                    self._add(t if n == len(t) else bytes(self._mv[s:e]))
                    self._finish(None)
                    return
            else:  # no success token matched
                if self._final_error(s, e, n):
                    return
                for t in self._abort:
                    if _starts(buf, t, s, n):
                        self._finish(AbortError(bytes(self._mv[s:e])))
                        self._urc(s, e)  # an abort line is often a link event too
                        return
                resp = self._resp
                if resp is not None:
                    for t in resp:
                        if _starts(buf, t, s, n):
                            self._add(bytes(self._mv[s:e]))
                            return
                if self._urc(s, e):
                    return
                if resp is None:
                    self._add(bytes(self._mv[s:e]))
                    return
        elif self._urc(s, e):
            return
        if self.on_event is not None:
            self._unsolicited(self._mv[s:e])

    def _final_error(self, s, e, n):
        buf = self._buf
        if _starts(buf, b"ERROR", s, n):
            line = b"ERROR" if n == _ERROR_LEN else bytes(self._mv[s:e])
            err = CommandError(line, _tail_int(buf, s, e))
        elif _starts(buf, b"+CME ERROR:", s, n) or _starts(buf, b"+CMS ERROR:", s, n):
            err = CMEError(bytes(self._mv[s:e]), _tail_int(buf, s, e))
        else:
            return False
        if not (self._need and self._lines is None):  # else: stale, dropped (resync)
            self._finish(err)
        return True
