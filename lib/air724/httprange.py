"""Ranged HTTP(S) GET into a sink, for downloads larger than RAM (air724-at.md §6.4).

``RangeClient(channel, cid).fetch(url, start, end, sink)`` asks for bytes ``start..end-1`` with
``AT+HTTPPARA="BREAK",start`` / ``"BREAKEND",end-1`` (the module answers ``+HTTPACTION:
0,206,<len>``) and hands the body to ``sink`` in ``_PIECE``-byte ``AT+HTTPREAD=<start>,<size>``
reads, never holding it whole. A subclass of ``air724.http.HTTPClient`` (same URC and lock),
imported only by the OTA download so the login's HTTP client stays as small as it was.
"""

from micropython import const

from air724.http import GET, HTTPClient
from air724.text import quote
from atmodem.errors import ResponseError

_PIECE = const(256)  # small reads: a download runs beside the MQTT session


class RangeClient(HTTPClient):
    async def fetch(self, url: str, start: int, end: int, sink, timeout_ms: int = 120000) -> int:
        """GET bytes ``start`` to ``end`` (exclusive) of ``url`` into ``sink``; the status."""
        cmds = [b'AT+HTTPPARA="CID",%d' % self.cid, b'AT+HTTPPARA="URL",' + quote(url, "URL", 500)]
        cmds.append(b'AT+HTTPPARA="BREAK",%d' % start)
        cmds.append(b'AT+HTTPPARA="BREAKEND",%d' % (end - 1))
        if url.startswith("https:"):
            cmds.append(b"AT+HTTPSSL=1")

        def read(_method, status, length):
            return self._into(sink, status, length)

        return await self.exchange(cmds, GET, timeout_ms, read)

    async def _into(self, sink, status: int, length: int) -> int:
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
