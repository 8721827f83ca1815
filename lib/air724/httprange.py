"""Ranged HTTP(S) GET into a sink, for downloads larger than RAM (air724-at.md §6.4).

``RangeClient(channel, cid).fetch(url, start, end, sink)`` asks for bytes ``start..end-1`` with
``AT+HTTPPARA="BREAK",start`` / ``"BREAKEND",end-1`` (the module answers ``+HTTPACTION:
0,206,<len>``) and hands the body to ``sink`` in ``_PIECE``-byte ``AT+HTTPREAD=<start>,<size>``
reads, never holding it whole. A subclass of ``air724.http.HTTPClient`` (same URC and lock),
imported only by the OTA download so the login's HTTP client stays as small as it was.
"""

from micropython import const

from air724.http import GET, HTTPClient, HTTPError
from air724.text import quote
from atmodem import wait_ms
from atmodem.errors import ATError, CommandError, ResponseError

_PIECE = const(256)  # small reads: a download runs beside the MQTT session


class RangeClient(HTTPClient):
    async def fetch(self, url: str, start: int, end: int, sink, timeout_ms: int = 120000) -> int:
        """GET bytes ``start`` to ``end`` (exclusive) of ``url`` into ``sink``; the status."""
        cmds = [b'AT+HTTPPARA="CID",%d' % self.cid, b'AT+HTTPPARA="URL",' + quote(url, "URL", 500)]
        cmds.append(b'AT+HTTPPARA="BREAK",%d' % start)
        cmds.append(b'AT+HTTPPARA="BREAKEND",%d' % (end - 1))
        if url.startswith("https:"):
            cmds.append(b"AT+HTTPSSL=1")
        ch = self.ch
        async with self._lock:
            try:
                await ch.command(b"AT+HTTPINIT", 2000)
            except CommandError:  # a session left open: terminate it and start again (§6.1)
                await _quietly(ch.command(b"AT+HTTPTERM", 2000))
                await ch.command(b"AT+HTTPINIT", 2000)
            try:
                for cmd in cmds:
                    await ch.command(cmd, 2000)
                return await self._read(timeout_ms, sink)
            finally:
                if not ch.closed:
                    await _quietly(ch.command(b"AT+HTTPTERM", 2000))

    async def _read(self, timeout_ms: int, sink) -> int:
        ch = self.ch
        self._ev.clear()
        self._result = None
        try:
            # OK only means accepted; the outcome is the +HTTPACTION URC (§6.1, §11).
            await ch.command(b"AT+HTTPACTION=%d" % GET, 5000)
            if self._result is None:
                await wait_ms(self._ev.wait(), timeout_ms, b"+HTTPACTION")
            status, length = self._result or (600, 0)  # the URC sets it before the event
        finally:
            self._result = False
        if 600 <= status <= 606:
            raise HTTPError(status)
        got = 0
        while got < length:
            cmd = b"AT+HTTPREAD=%d,%d" % (got, min(_PIECE, length - got))
            lines = await self.ch.command(cmd, 10000, counted=b"+HTTPREAD:")
            if len(lines) < 3:
                raise ResponseError("no +HTTPREAD", lines)
            if not lines[1]:
                break
            sink(lines[1])
            got += len(lines[1])
        return status


async def _quietly(aw) -> None:
    try:
        await aw
    except ATError:  # cleanup: any answer will do (§6.1)
        pass
