"""HTTP(S) over the module's AT HTTP client (air724-at.md §6).

One call runs the whole exchange: ``AT+HTTPINIT``, ``AT+HTTPPARA`` (CID, URL, one header per
``USER_DEFINED``), ``AT+HTTPSSL=1`` for https, ``AT+HTTPDATA`` with the body's exact length,
``AT+HTTPACTION`` and its ``+HTTPACTION:`` URC, a counted ``AT+HTTPREAD``, and ``AT+HTTPTERM``
always, even on failure. The module has one HTTP session (§6), so calls are serialized.
"""

import asyncio

from air724.text import quote
from atmodem.errors import ATError, ATTimeoutError, CommandError, DataError, ResponseError

GET = 0
POST = 1
HEAD = 2

# Module status codes in +HTTPACTION (not HTTP statuses), air724-at.md §6.3.
_MODULE_CODES = {
    600: "not an HTTP PDU",
    601: "network error",
    602: "no memory",
    603: "DNS error",
    604: "stack busy",
    605: "SSL handshake failed",
    606: "SSL alert",
}
_READ_CHUNK = 2048  # larger bodies are read with AT+HTTPREAD=<start>,<size>


class HTTPError(ATError):
    """The module could not run the request: ``status`` 600-606 from ``+HTTPACTION``."""

    def __init__(self, status: int):
        super().__init__(status, _MODULE_CODES.get(status, "module error"))
        self.status = status


if hasattr(asyncio, "wait_for_ms"):
    _wait_ms = asyncio.wait_for_ms
else:  # CPython

    def _wait_ms(aw, timeout: int):
        return asyncio.wait_for(aw, timeout / 1000)


class HTTPClient:
    """HTTP requests through the module on SAPBR bearer ``cid`` (open it first, bearer.py)."""

    def __init__(self, channel, cid: int = 1, max_body: int = 8192):
        self.ch = channel
        self.cid = cid
        self.max_body = max_body
        self._lock = asyncio.Lock()
        self._ev = asyncio.Event()
        self._waiting = False
        self._result = None
        channel.add_urc(b"+HTTPACTION:", self._on_action)

    def _on_action(self, line):
        # "+HTTPACTION: <method>,<status>,<len>". The manual's example prints it several times
        # (§6.3): only the first one while a request waits counts.
        if not self._waiting or self._result is not None:
            return
        try:
            f = bytes(line[12:]).split(b",")
            self._result = (int(f[0]), int(f[1]), int(f[2]))
        except (IndexError, ValueError):
            self._result = (-1, 600, 0)
        self._ev.set()

    async def post(
        self, url: str, body: "bytes | str", headers: tuple = (), timeout_ms: int = 60000
    ) -> tuple:
        """POST ``body`` (bytes or str) to ``url``; returns ``(status, body bytes)``."""
        return await self.request(POST, url, body, headers, timeout_ms)

    async def get(self, url: str, headers: tuple = (), timeout_ms: int = 60000) -> tuple:
        return await self.request(GET, url, None, headers, timeout_ms)

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
        # Check every argument before the first command: nothing half-sent on bad input.
        args = [quote(h, "header", 500) for h in headers]
        qurl = quote(url, "URL", 500)
        async with self._lock:
            await self._init()
            try:
                return await self._run(method, url, qurl, args, body, timeout_ms, data_ms)
            finally:
                if not self.ch.closed:
                    try:
                        await self.ch.command(b"AT+HTTPTERM", 2000)
                    except ATError:  # cleanup: any answer will do (§6.1)
                        pass

    async def _init(self):
        try:
            await self.ch.command(b"AT+HTTPINIT", 2000)
        except CommandError:
            # A session left open (no HTTPTERM before): terminate it and start again (§6.1).
            try:
                await self.ch.command(b"AT+HTTPTERM", 2000)
            except CommandError:
                pass
            await self.ch.command(b"AT+HTTPINIT", 2000)

    async def _run(self, method, url, qurl, args, body, timeout_ms, data_ms):
        ch = self.ch
        await ch.command(b'AT+HTTPPARA="CID",%d' % self.cid, 2000)
        await ch.command(b'AT+HTTPPARA="URL",' + qurl, 2000)
        for arg in args:  # one header per command; they accumulate (§6.1)
            await ch.command(b'AT+HTTPPARA="USER_DEFINED",' + arg, 2000)
        if url.startswith("https:"):
            await ch.command(b"AT+HTTPSSL=1", 2000)
        if body:
            # Exactly len(body) bytes after DOWNLOAD, then OK (§6.1, seed errata BRIEF §6).
            cmd = b"AT+HTTPDATA=%d,%d" % (len(body), data_ms)
            await ch.command(cmd, data_ms + 2000, prompt=b"DOWNLOAD", payload=body)
        self._result = None
        self._ev.clear()
        self._waiting = True
        try:
            # OK only means accepted; the outcome is the +HTTPACTION URC (§6.1, §11).
            await ch.command(b"AT+HTTPACTION=%d" % method, 5000)
            if self._result is None:
                try:
                    await _wait_ms(self._ev.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    raise ATTimeoutError(b"+HTTPACTION") from None
        finally:
            self._waiting = False
        result = self._result
        if result is None:  # not reached: the URC sets the result before the event
            raise ResponseError("no +HTTPACTION")
        status, length = result[1], result[2]
        if 600 <= status <= 606:
            raise HTTPError(status)
        if length <= 0 or method == HEAD:
            return status, b""
        if length > self.max_body:
            raise DataError("HTTP body of %d bytes" % length)
        return status, await self._read(length)

    async def _read(self, length):
        ch = self.ch
        if length <= _READ_CHUNK:
            return _body(await ch.command(b"AT+HTTPREAD", 10000, counted=b"+HTTPREAD:"))
        parts = []
        got = 0
        while got < length:
            size = min(_READ_CHUNK, length - got)
            cmd = b"AT+HTTPREAD=%d,%d" % (got, size)
            part = _body(await ch.command(cmd, 10000, counted=b"+HTTPREAD:"))
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)


def _body(lines):
    # [b"+HTTPREAD: n", <n raw bytes>, b"OK"] (atmodem counted read)
    if len(lines) < 3:
        raise ResponseError("no +HTTPREAD", lines)
    return lines[1]
