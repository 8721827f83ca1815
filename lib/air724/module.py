"""Module bring-up and identity: autobaud, echo, firmware version, IMEI, ICCID, SIM, network.

Command forms and answers: air724-at.md §2 (serial link) and §4 (module check commands).
"""

from time import ticks_ms

from air724.text import after, ints, unquote
from atmodem.errors import ATTimeoutError, CMEError, CommandError, ResponseError


class FirmwareVersion:
    """``AirM2M_<model>_V<number>_LTE_AT`` parsed into ``raw``, ``model``, ``number``, ``old``.

    Numbers restart per baseline (V409..V1628 = V1.2, V3xxxxx = V1.3, V4xxxxx = V1.3 after
    2022, air724-at.md §1.1), but each baseline's numbers are larger than the last one's, so
    ``number`` orders versions. Unknown text keeps ``raw`` with ``model`` "" and ``number`` -1.
    ``old``: unknown or before V907 (no AT+MPUBEX; before V838 no CLOSED on a server close,
    §1.3), worth a warning.
    """

    def __init__(self, raw: str):
        import re

        self.raw = raw
        m = re.search(r"AirM2M_(.*?)_V(\d+)", raw)
        self.model = m.group(1) if m else ""
        self.number = int(m.group(2)) if m else -1
        self.old = self.number < 907


def parse_cclk(text: bytes) -> int:
    """``"yy/MM/dd,hh:mm:ss±zz"`` (20yy; zz in quarter hours, §4) as UTC epoch seconds."""
    t = unquote(text)
    try:  # two-digit fields at fixed places; the zone may be missing
        yy, mo, dd = int(t[:2]), int(t[3:5]), int(t[6:8])
        secs = int(t[9:11]) * 3600 + int(t[12:14]) * 60 + int(t[15:17]) - int(t[17:] or 0) * 900
    except ValueError:
        raise ResponseError("bad clock " + t.decode()) from None
    # Days counted from 2000-03-01 (day 11017 of 1970): January and February belong to the
    # year before, so a leap day ends its year. From 2000 to 2099 every 4th year is a leap year.
    yy -= mo < 3
    return (11017 + yy * 365 + yy // 4 + (153 * ((mo + 9) % 12) + 2) // 5 + dd - 1) * 86400 + secs


class Module:
    """The module as a device: identity, SIM and network state, clock.

    Queries wait 2 s for their answer (the SIM state 5 s, AT+CFUN 15 s, AT+RESET 5 s).
    """

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
            except (ATTimeoutError, CommandError):  # a half-trained rate may read garbage
                left -= try_ms
        raise ATTimeoutError(b"AT")

    async def echo_off(self) -> None:
        await self.ch.command(b"ATE0", 2000)

    async def numbered_errors(self) -> None:
        """``AT+CMEE=1``: errors as ``+CME ERROR: <n>`` (767: nothing to close...) rather than
        a bare ``ERROR``; lost on every (re)boot like echo (§3.2, §9)."""
        await self.ch.command(b"AT+CMEE=1", 2000)

    async def _query(self, cmd: bytes, timeout_ms: int = 2000) -> bytes:
        """``AT+X`` or ``AT+X?`` -> the text after ``+X:`` in its answer, stripped."""
        prefix = (cmd[2:-1] if cmd[-1] == 63 else cmd[2:]) + b":"  # without a trailing "?" (63)
        return after(await self.ch.command(cmd, timeout_ms, resp=prefix), prefix)

    async def _bare(self, cmd: bytes, digits: bool) -> str:
        """The value of ``AT+X`` answered as a bare line, ``+X: <value>`` or ``Revision:
        <value>`` (§4, §12.1), unquoted; with ``digits`` only 14 to 17 digits (an IMEI)."""
        lines = await self.ch.command(cmd, 2000, resp=None)
        for line in lines[:-1]:
            line = unquote(line[line.find(b":") + 1 :])  # after a label, if any
            if (line and not digits) or (14 <= len(line) <= 17 and line.isdigit()):
                return line.decode()
        raise ResponseError("no answer", lines)

    async def version(self) -> FirmwareVersion:
        """``AT+CGMR``: ``+CGMR: "AirM2M_..."`` (real), ``Revision: ...`` (manual) or a bare
        line (seed) are all accepted (§4, §12.1)."""
        return FirmwareVersion(await self._bare(b"AT+CGMR", False))

    async def imei(self) -> str:
        """``AT+CGSN``: a bare 15-digit line on the Air724 (``+CGSN:`` also accepted)."""
        return await self._bare(b"AT+CGSN", True)

    async def iccid(self) -> str:
        """``AT+ICCID`` -> ``+ICCID: <id>``; asked twice, as the first query after boot may
        answer ERROR on firmware before V301833 (§4)."""
        try:
            text = await self._query(b"AT+ICCID")
        except CommandError:
            text = await self._query(b"AT+ICCID")
        return unquote(text).decode()

    async def signal_dbm(self) -> "int | None":
        """``AT+CSQ`` -> ``+CSQ: <rssi>,<ber>`` as dBm (2*rssi - 113, §4), or None when
        unknown (rssi 99)."""
        rssi = ints(await self._query(b"AT+CSQ"))[0]
        return 2 * rssi - 113 if 0 <= rssi <= 31 else None

    async def sim_state(self) -> str:
        """``AT+CPIN?`` state: ``READY``, ``SIM PIN``, ``NOT INSERTED``, ``SIM REMOVED``...

        ``+CME ERROR: 10`` (SIM not inserted, §9) is reported as ``NOT INSERTED``.
        """
        try:
            return (await self._query(b"AT+CPIN?", 5000)).decode()
        except CMEError as exc:
            if exc.code == 10:
                return "NOT INSERTED"
            if exc.code == 14:  # SIM busy: still starting (§9), a normal state at boot
                return "BUSY"
            raise

    async def registration(self) -> int:
        """Network registration state: ``AT+CEREG?`` (LTE), else ``AT+CREG?`` (§4).

        1 home, 5 roaming, 2 searching, 3 denied, 0 not searching.
        """
        # Read form "<n>,<stat>[,...]" (the URC form has the state alone): [:2][-1] is <stat>.
        try:
            stat = ints(await self._query(b"AT+CEREG?"))[:2][-1]
        except CommandError:
            stat = None  # no CEREG on this firmware: CREG alone decides
        if stat == 1 or stat == 5:
            return stat
        creg = ints(await self._query(b"AT+CREG?"))[:2][-1]
        return creg if stat is None or creg == 1 or creg == 5 else stat

    async def attached(self) -> bool:
        """``AT+CGATT?`` -> ``+CGATT: 1``; since V1066 0 until the default bearer is up."""
        return ints(await self._query(b"AT+CGATT?"))[:1] == [1]

    async def set_functionality(self, fun: int) -> None:
        """``AT+CFUN=<fun>``: 0 minimum, 1 full, 4 flight mode (§3.3). A 0/4 then 1 cycle is
        the documented recovery when the network will not come (S3)."""
        await self.ch.command(b"AT+CFUN=%d" % fun, 15000)

    async def functionality(self) -> int:
        return ints(await self._query(b"AT+CFUN?"))[0]

    async def reset(self) -> None:
        """``AT+RESET``: ``OK``, then the module reboots and prints ``RDY`` (§3.3): echo is on
        again and nothing set before survives; sync and set up anew."""
        await self.ch.command(b"AT+RESET", 5000)

    async def clock(self) -> int:
        """``AT+CCLK?`` as UTC epoch seconds (1970). Unset clocks read as old dates."""
        return parse_cclk(await self._query(b"AT+CCLK?"))

    async def network_clock(self):
        """``(epoch ms, ticks_ms())`` from ``AT+CCLK?`` when the clock is set (NITZ), else
        None: unset, it reads as a date before 2020; no answer is no fault either."""
        try:
            seconds = await self.clock()
        except Exception:
            return None
        return (seconds * 1000, ticks_ms()) if seconds > 1577836800 else None
