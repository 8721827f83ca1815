"""The SAPBR data bearer used by HTTP (air724-at.md §5.1).

MQTT runs on the module's default PDP context instead (§5); this bearer only matters for
``AT+HTTP*`` (``AT+HTTPPARA="CID",<cid>``).
"""

from air724.text import APN_MAX, after, quote
from atmodem.errors import CMEError, ResponseError


class Bearer:
    """``AT+SAPBR`` for bearer ``cid`` (1-3)."""

    def __init__(self, channel, cid: int = 1):
        self.ch = channel
        self.cid = cid

    async def configure(
        self, apn: str = "", user: str = "", password: str = "", timeout_ms: int = 2000
    ) -> None:
        """CONTYPE and APN (empty APN: the one the network gave, §5.1; 50 chars at most)."""
        # All values checked before the first command: nothing half-configured on bad input.
        args = [(b"APN", quote(apn, "APN", APN_MAX))]
        if user:
            args.append((b"USER", quote(user, "user", APN_MAX)))
        if password:
            args.append((b"PWD", quote(password, "password", APN_MAX)))
        # "GPRS" is only the 2G-era spelling; it does not force a 2G network (§5.1).
        args.insert(0, (b"CONTYPE", b'"GPRS"'))
        for tag, value in args:
            await self.ch.command(b'AT+SAPBR=3,%d,"%s",%s' % (self.cid, tag, value), timeout_ms)

    async def _switch(self, op: int, timeout_ms: int) -> bool:
        # AT+SAPBR=1 (open) / =0 (close); +CME ERROR: 3 means already so: no error, False.
        try:
            await self.ch.command(b"AT+SAPBR=%d,%d" % (op, self.cid), timeout_ms)
        except CMEError as exc:
            if exc.code != 3:
                raise
            return False
        return True

    def open(self, timeout_ms: int = 30000):
        """Open the bearer; awaits to False if it was already open."""
        return self._switch(1, timeout_ms)

    def close(self, timeout_ms: int = 10000):
        """Close the bearer; closing a closed one is no error (awaits to False)."""
        return self._switch(0, timeout_ms)

    async def query(self, timeout_ms: int = 2000) -> tuple:
        """``(status, ip)``: status 0 connecting, 1 connected, 2 closing, 3 closed."""
        lines = await self.ch.command(b"AT+SAPBR=2,%d" % self.cid, timeout_ms, resp=b"+SAPBR:")
        fields = after(lines, b"+SAPBR:").split(b",")
        try:
            status = int(fields[1])
        except (IndexError, ValueError):
            raise ResponseError("bad +SAPBR", lines) from None
        ip = fields[2].strip().strip(b'"') if len(fields) > 2 else b""
        # Quoted or bare, zero-padded or not: "10.159.1.145", 010.169.179.213 (§5.1).
        try:
            ip = ".".join(str(int(p)) for p in ip.split(b"."))
        except ValueError:
            ip = ip.decode()
        return status, ip

    async def ensure(self, apn: str = "", timeout_ms: int = 30000) -> str:
        """Open the bearer unless it is connected (the S6 peer pattern, §5.1); return the IP."""
        status, ip = await self.query()
        if status != 1:
            await self.configure(apn)
            await self.open(timeout_ms)
            status, ip = await self.query()
            if status != 1:
                raise ResponseError("bearer status %d" % status)
        return ip
