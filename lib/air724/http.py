"""HTTP(S) over the module's AT HTTP client (air724-at.md §6).

One call runs the whole exchange: ``AT+HTTPINIT``, ``AT+HTTPPARA`` (CID, URL, one header per
``USER_DEFINED``), ``AT+HTTPSSL=1`` for https, ``AT+HTTPDATA`` with the body's exact length,
``AT+HTTPACTION`` and its ``+HTTPACTION:`` URC, a counted ``AT+HTTPREAD``, and ``AT+HTTPTERM``
always, even on failure. The module has one HTTP session (§6), so calls are serialized.
"""

import asyncio

from micropython import const

from air724.text import header_arg, quote
from atmodem import wait_ms
from atmodem.errors import ATError, CommandError, DataError, ResponseError

GET = 0
POST = 1
HEAD = 2
_READ_CHUNK = const(2048)  # larger bodies are read with AT+HTTPREAD=<start>,<size>


class HTTPError(ATError):
    """The module could not run the request: ``status`` 600-606 from ``+HTTPACTION``."""

    def __init__(self, status: int):
        # Module status codes, not HTTP statuses (air724-at.md §6.3).
        what = "not HTTP,network,no memory,DNS,stack busy,SSL handshake,SSL alert".split(",")
        super().__init__(status, what[status - 600] if 600 <= status <= 606 else "module")
        self.status = status


class HTTPClient:
    """HTTP requests through the module on SAPBR bearer ``cid`` (open it first, bearer.py)."""

    def __init__(self, channel, cid: int = 1, max_body: int = 8192):
        self.ch = channel
        self.cid = cid
        self.max_body = max_body
        self._lock = asyncio.Lock()
        self._ev = asyncio.Event()
        # (status, length) of +HTTPACTION; None while a request waits for it, False otherwise.
        self._result = False
        channel.add_urc(b"+HTTPACTION:", self._on_action)

    def _on_action(self, line):
        # "+HTTPACTION: <method>,<status>,<len>". The manual's example prints it several times
        # (§6.3): only the first one while a request waits counts.
        if self._result is None:
            try:
                f = bytes(line[12:]).split(b",")
                self._result = (int(f[1]), int(f[2]))
            except (IndexError, ValueError):
                self._result = (600, 0)
            self._ev.set()

    def post(self, url: str, body: "bytes | str", headers: tuple = (), timeout_ms: int = 60000):
        """POST ``body`` (bytes or str) to ``url``; awaits to ``(status, body bytes)``."""
        return self.request(POST, url, body, headers, timeout_ms)

    def get(self, url: str, headers: tuple = (), timeout_ms: int = 60000):
        return self.request(GET, url, None, headers, timeout_ms)

    async def request(
        self,
        method: int,
        url: str,
        body: "bytes | str | None" = None,
        headers: tuple = (),
        timeout_ms: int = 60000,
        data_ms: int = 20000,
    ) -> tuple:
        """Run one request; returns ``(status, body)``, status being the HTTP status.

        ``headers``: ``"Name: value"`` strings, one ``USER_DEFINED`` each ("Content-Type:"
        needs its space, §6.1). ``data_ms``: the module's body input window (1000-120000).
        Raises ``HTTPError`` for module codes 600-606, ``ArgumentError`` for a URL or header
        that cannot be quoted, and the channel's errors.
        """
        if type(body) is str:
            body = body.encode()
        # Every argument is quoted before the first command: nothing half-sent on bad input.
        cmds = [b'AT+HTTPPARA="CID",%d' % self.cid, b'AT+HTTPPARA="URL",' + quote(url, "URL", 500)]
        for h in headers:  # one header per command; they accumulate (§6.1)
            cmds.append(b'AT+HTTPPARA="USER_DEFINED",' + header_arg(h))
        if url.startswith("https:"):
            cmds.append(b"AT+HTTPSSL=1")
        return await self.exchange(cmds, method, timeout_ms, self._body, body, data_ms)

    async def exchange(self, cmds, method, timeout_ms, read, body=None, data_ms=20000):
        """One session of the module's HTTP client under the lock: ``AT+HTTPINIT``, ``cmds``,
        the body, ``AT+HTTPACTION``, ``await read(method, status, length)`` (its result is the
        call's), and ``AT+HTTPTERM`` always."""
        ch = self.ch
        async with self._lock:
            try:
                await ch.command(b"AT+HTTPINIT", 2000)
            except CommandError:
                # A session left open (no HTTPTERM before): terminate it and start again (§6.1).
                await _quietly(ch.command(b"AT+HTTPTERM", 2000))
                await ch.command(b"AT+HTTPINIT", 2000)
            try:
                for cmd in cmds:
                    await ch.command(cmd, 2000)
                if body:
                    # Exactly len(body) bytes after DOWNLOAD, then OK (§6.1, seed errata BRIEF §6).
                    cmd = b"AT+HTTPDATA=%d,%d" % (len(body), data_ms)
                    await ch.command(cmd, data_ms + 2000, prompt=b"DOWNLOAD", payload=body)
                status, length = await self._action(method, timeout_ms)
                return await read(method, status, length)
            finally:
                if not ch.closed:
                    await _quietly(ch.command(b"AT+HTTPTERM", 2000))

    async def _action(self, method, timeout_ms):
        """``AT+HTTPACTION``: OK only means accepted; the outcome is the ``+HTTPACTION`` URC
        (§6.1, §11): ``(status, length)``, or ``HTTPError`` for the module's codes 600-606."""
        self._ev.clear()
        self._result = None
        try:
            await self.ch.command(b"AT+HTTPACTION=%d" % method, 5000)
            if self._result is None:
                await wait_ms(self._ev.wait(), timeout_ms, b"+HTTPACTION")
            status, length = self._result or (600, 0)  # the URC sets it before the event
        finally:
            self._result = False
        if 600 <= status <= 606:
            raise HTTPError(status)
        return status, length

    async def _body(self, method, status, length):
        if length <= 0 or method == HEAD:
            return status, b""
        if length > self.max_body:
            raise DataError("HTTP body of %d bytes" % length)
        whole = length <= _READ_CHUNK  # one plain AT+HTTPREAD, else <start>,<size> chunks
        parts = []
        got = 0
        while got < length:
            cmd = b"AT+HTTPREAD"
            if not whole:
                cmd += b"=%d,%d" % (got, min(_READ_CHUNK, length - got))
            lines = await self.ch.command(cmd, 10000, counted=b"+HTTPREAD:")
            # [b"+HTTPREAD: n", <n raw bytes>, b"OK"] (atmodem counted read)
            if len(lines) < 3:
                raise ResponseError("no +HTTPREAD", lines)
            if whole:
                return status, lines[1]
            if not lines[1]:
                break
            parts.append(lines[1])
            got += len(lines[1])
        return status, b"".join(parts)


async def _quietly(aw) -> None:
    try:
        await aw
    except ATError:  # cleanup: any answer will do (§6.1)
        pass
