"""Module bring-up and identity: autobaud, echo, firmware version, IMEI, ICCID, SIM, network.

Command forms and answers: air724-at.md §2 (serial link) and §4 (module check commands).
"""

from air724.text import after, ints, unquote
from atmodem.errors import ATTimeoutError, CMEError, CommandError, ResponseError

# Registration states of +CREG/+CEREG (air724-at.md §4): 1 home, 5 roaming.
HOME = 1
ROAMING = 5
# Firmware before V907 has no AT+MPUBEX and before V838 no CLOSED on a server close (§1.3).
_OLD = (1, 907)


class FirmwareVersion:
    """``AirM2M_<model>_V<number>_LTE_AT`` parsed; compare with ``key()``, not ``number``.

    Numbers restart per baseline (V409..V1628 = V1.2, V3xxxxx = V1.3, V4xxxxx = V1.3 after
    2022, air724-at.md §1.1), so the order is (baseline, number). Unknown text keeps ``raw``
    with ``model`` "" and ``number`` -1.
    """

    def __init__(self, raw: str):
        self.raw = raw
        self.model = ""
        self.number = -1
        i = raw.find("AirM2M_")
        if i < 0:
            return
        rest = raw[i + 7 :]
        j = rest.find("_V")
        while j >= 0:
            k = j + 2
            while k < len(rest) and "0" <= rest[k] <= "9":
                k += 1
            if k > j + 2:
                self.model = rest[:j]
                self.number = int(rest[j + 2 : k])
                return
            j = rest.find("_V", j + 1)

    @property
    def baseline(self) -> int:
        """1 for the V1.2 line (numbers below 100000), else the leading digit (3, 4)."""
        n = self.number
        return 1 if n < 100000 else n // 100000

    def key(self) -> tuple:
        return (self.baseline, self.number)

    def older_than(self, other: "FirmwareVersion") -> bool:
        return self.key() < other.key()

    @property
    def old(self) -> bool:
        """Unknown or before V907 (no MPUBEX; before V838 no CLOSED): worth a warning."""
        return self.number < 0 or self.key() < _OLD

    def __repr__(self):
        return "FirmwareVersion(%r)" % self.raw


def _days(y, m, d):
    """Days from 1970-01-01 to the given civil date (proleptic Gregorian)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + 9 if m <= 2 else m - 3) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_cclk(text: bytes) -> int:
    """``"yy/MM/dd,hh:mm:ss±zz"`` (zz in quarter hours, §4) as UTC epoch seconds."""
    t = unquote(text)
    try:
        sign = 1
        tz = t.find(b"+", 9)
        if tz < 0:
            tz = t.find(b"-", 9)
            sign = -1
        if tz < 0:
            tz, zone = len(t), 0
        else:
            zone = sign * int(t[tz + 1 :])
        date, clock = t[:tz].split(b",")
        yy, mo, dd = date.split(b"/")
        hh, mi, ss = clock.split(b":")
        days = _days(2000 + int(yy), int(mo), int(dd))
        local = days * 86400 + int(hh) * 3600 + int(mi) * 60 + int(ss)
    except ValueError:
        raise ResponseError("bad clock " + t.decode()) from None
    return local - zone * 900


class Module:
    """The module as a device: identity, SIM and network state, clock."""

    def __init__(self, channel):
        self.ch = channel

    async def sync(self, timeout_ms: int = 30000, try_ms: int = 500) -> int:
        """Autobaud: send upper-case ``AT`` until ``OK`` (§2; "aT"/"At" do not train).

        Returns the number of attempts; ``ATTimeoutError`` if no OK within ``timeout_ms``.
        """
        tries = 0
        left = timeout_ms
        while left > 0:
            tries += 1
            try:
                await self.ch.command(b"AT", min(try_ms, left), resync=False)
                return tries
            except ATTimeoutError:
                left -= try_ms
            except CommandError:  # a half-trained rate may read garbage: go on
                left -= try_ms
        raise ATTimeoutError(b"AT")

    async def echo_off(self, timeout_ms: int = 2000) -> None:
        await self.ch.command(b"ATE0", timeout_ms)

    async def version(self, timeout_ms: int = 2000) -> "FirmwareVersion":
        """``AT+CGMR``: ``+CGMR: "AirM2M_..."`` (real), ``Revision: ...`` (manual) or a bare
        line (seed) are all accepted (§4, §12.1)."""
        lines = await self.ch.command(b"AT+CGMR", timeout_ms, resp=None)
        for line in lines[:-1]:
            for prefix in (b"+CGMR:", b"Revision:"):
                if line.startswith(prefix):
                    line = line[len(prefix) :]
            line = unquote(line)
            if line:
                return FirmwareVersion(line.decode())
        raise ResponseError("no version", lines)

    async def imei(self, timeout_ms: int = 2000) -> str:
        """``AT+CGSN``: a bare 15-digit line on the Air724 (``+CGSN:`` also accepted)."""
        lines = await self.ch.command(b"AT+CGSN", timeout_ms, resp=None)
        for line in lines[:-1]:
            if line.startswith(b"+CGSN:"):
                line = line[6:]
            line = unquote(line)
            if 14 <= len(line) <= 17 and line.isdigit():
                return line.decode()
        raise ResponseError("no IMEI", lines)

    async def iccid(self, timeout_ms: int = 2000) -> str:
        """``AT+ICCID`` -> ``+ICCID: <id>``; asked twice, as the first query after boot may
        answer ERROR on firmware before V301833 (§4)."""
        try:
            lines = await self.ch.command(b"AT+ICCID", timeout_ms, resp=b"+ICCID:")
        except CommandError:
            lines = await self.ch.command(b"AT+ICCID", timeout_ms, resp=b"+ICCID:")
        return unquote(after(lines, b"+ICCID:")).decode()

    async def csq(self, timeout_ms: int = 2000) -> tuple:
        """``AT+CSQ`` -> ``(rssi, ber)``; 99 means unknown."""
        lines = await self.ch.command(b"AT+CSQ", timeout_ms, resp=b"+CSQ:")
        v = ints(after(lines, b"+CSQ:"), lines)
        if len(v) < 2:
            raise ResponseError("bad +CSQ", lines)
        return v[0], v[1]

    async def signal_dbm(self, timeout_ms: int = 2000) -> "int | None":
        """Signal in dBm (2*rssi - 113, §4), or None when unknown (rssi 99)."""
        rssi = (await self.csq(timeout_ms))[0]
        if 0 <= rssi <= 31:
            return 2 * rssi - 113
        return None

    async def sim_state(self, timeout_ms: int = 5000) -> str:
        """``AT+CPIN?`` state: ``READY``, ``SIM PIN``, ``NOT INSERTED``, ``SIM REMOVED``...

        ``+CME ERROR: 10`` (SIM not inserted, §9) is reported as ``NOT INSERTED``.
        """
        try:
            lines = await self.ch.command(b"AT+CPIN?", timeout_ms, resp=b"+CPIN:")
        except CMEError as exc:
            if exc.code == 10:
                return "NOT INSERTED"
            raise
        return after(lines, b"+CPIN:").decode()

    async def _reg(self, cmd, prefix, timeout_ms):
        lines = await self.ch.command(cmd, timeout_ms, resp=prefix)
        v = ints(after(lines, prefix), lines)
        # Read form "<n>,<stat>[,...]"; the URC form has the state alone.
        if len(v) >= 2:
            return v[1]
        if v:
            return v[0]
        raise ResponseError("bad registration", lines)

    async def registration(self, timeout_ms: int = 2000) -> int:
        """Network registration state: ``AT+CEREG?`` (LTE), else ``AT+CREG?`` (§4).

        1 home, 5 roaming, 2 searching, 3 denied, 0 not searching.
        """
        try:
            stat = await self._reg(b"AT+CEREG?", b"+CEREG:", timeout_ms)
        except CommandError:
            stat = None  # no CEREG on this firmware: CREG alone decides
        if stat == HOME or stat == ROAMING:
            return stat
        creg = await self._reg(b"AT+CREG?", b"+CREG:", timeout_ms)
        return creg if stat is None or creg == HOME or creg == ROAMING else stat

    async def attached(self, timeout_ms: int = 2000) -> bool:
        """``AT+CGATT?`` -> ``+CGATT: 1``; since V1066 0 until the default bearer is up."""
        lines = await self.ch.command(b"AT+CGATT?", timeout_ms, resp=b"+CGATT:")
        return ints(after(lines, b"+CGATT:"), lines)[:1] == [1]

    async def set_functionality(self, fun: int, timeout_ms: int = 15000) -> None:
        """``AT+CFUN=<fun>``: 0 minimum, 1 full, 4 flight mode (§3.3). A 0/4 then 1 cycle is
        the documented recovery when the network will not come (S3)."""
        await self.ch.command(b"AT+CFUN=%d" % fun, timeout_ms)

    async def functionality(self, timeout_ms: int = 2000) -> int:
        lines = await self.ch.command(b"AT+CFUN?", timeout_ms, resp=b"+CFUN:")
        return ints(after(lines, b"+CFUN:"), lines)[0]

    async def reset(self, timeout_ms: int = 5000) -> None:
        """``AT+RESET``: ``OK``, then the module reboots and prints ``RDY`` (§3.3): echo is on
        again and nothing set before survives; sync and set up anew."""
        await self.ch.command(b"AT+RESET", timeout_ms)

    async def clock(self, timeout_ms: int = 2000) -> int:
        """``AT+CCLK?`` as UTC epoch seconds (1970). Unset clocks read as old dates."""
        lines = await self.ch.command(b"AT+CCLK?", timeout_ms, resp=b"+CCLK:")
        return parse_cclk(after(lines, b"+CCLK:"))
