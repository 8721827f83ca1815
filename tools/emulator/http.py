"""The HTTP command set (reference §6): INIT, PARA, SSL, DATA, ACTION, READ, HEAD, TERM.

One session at a time ("HTTP仅支持单连接"). AT+HTTPACTION answers `OK` at once; the real request
runs in a worker thread and every action ends with one `+HTTPACTION: <m>,<status>,<len>` URC.
`AT+HTTPPARA="BREAK",a` / `"BREAKEND",b` ask for bytes a..b (§6.4; b inclusive, INFERRED from
the 307200-byte chunks of the manual's example): the request carries `Range: bytes=a-b` and the
server's 206 comes through in the URC. Faults (``http_cut``, ``http_corrupt``) act on the bodies
here; ``served`` counts every body byte the module received.
"""

import asyncio
import time
from dataclasses import dataclass, field

from . import httpclient
from .atparse import EXEC, READ, SET, decode_escapes
from .faults import MISCOUNT, claimed
from .net import in_thread
from .results import AtError

_METHODS = {0: "GET", 1: "POST", 2: "HEAD"}
_DATA_MAX = 319488  # AT+HTTPDATA size on Air724 (§6.1, S1 HTTP问题.md #3)
_URL_MAX = 500


@dataclass
class HttpSession:
    cid: int = 1
    url: str = ""
    ua: str = "AM_MODULE"  # default UA (§6.1)
    user_defined: list = field(default_factory=list)
    userdata: list = field(default_factory=list)
    content: str = ""
    timeout: int = 120
    redir: int = 0
    ssl: bool = False
    data: bytes = b""
    busy: bool = False
    result: object = None
    brk: object = None  # BREAK / BREAKEND: the byte range asked for (§6.4)
    brkend: object = None


class HttpService:
    def __init__(self, modem):
        self.m = modem
        self.served = 0  # body bytes received, over every request and reboot
        self.cut_after = None  # http_cut: the link dies once this many more bytes came
        self.cut_pdp = False
        self.corrupt_at = []  # http_corrupt: resource offsets whose byte is flipped once
        self.reset()

    def reset(self):
        self.session = None
        self._inflight = None

    def need(self):
        if self.session is None:
            raise AtError  # no AT+HTTPINIT
        return self.session

    def start(self, method):
        session = self.need()
        if session.busy or not session.url:
            raise AtError
        session.busy = True
        token = object()
        self._inflight = (token, method)
        self.m.spawn(self._action(session, method, token))

    async def _action(self, session, method, token):
        m, started = self.m, time.monotonic()
        code = m.faults.take_http_code() if m.faults else None
        if code is not None:
            result = httpclient.HttpResult(code, error="injected")
        elif not m.bearer.sapbr_open(session.cid):
            result = httpclient.HttpResult(601, error="bearer not open")  # INFERRED
        else:
            request = httpclient.HttpRequest(
                method=_METHODS[method],
                url=session.url,
                headers=_headers(session),
                body=session.data if method == 1 else b"",
                tls=session.ssl,
                suites=m.dialect.tls_suites,
                timeout=session.timeout,
                follow=bool(session.redir),
            )
            m.log(f"HTTP {request.method} {session.url} {_range_text(session)}".rstrip())
            result = self._faults(session, await in_thread(httpclient.perform, m.network, request))
        await asyncio.sleep(max(0.0, m.profile.http - (time.monotonic() - started)))
        if self._inflight is None or self._inflight[0] is not token:
            return  # ended by a link loss, AT+HTTPTERM or a reboot
        m.log(f"HTTP result {result.status} {result.error}".rstrip())
        session.result = result
        length = len(result.body)
        if method == 2:
            length = int(httpclient._header(result.head, "content-length") or 0)
        self._finish(session, method, result.status, length)

    def _faults(self, session, result):
        """Count the body; apply an armed ``http_cut`` or ``http_corrupt``."""
        body = result.body
        if self.cut_after is not None and len(body) > self.cut_after:
            self.served += self.cut_after
            self.m.log(f"fault: link cut after {self.cut_after} B of this response")
            self.cut_after = None
            if self.cut_pdp and self.m.radio.pdp_active:
                self.m.radio.deactivate_pdp()
            return httpclient.HttpResult(601, error="link cut")
        if self.cut_after is not None:
            self.cut_after -= len(body)
        self.served += len(body)
        start = session.brk or 0
        for offset in list(self.corrupt_at):
            if start <= offset < start + len(body):
                flipped = bytearray(body)
                flipped[offset - start] ^= 0xFF
                body = bytes(flipped)
                self.corrupt_at.remove(offset)
                self.m.log(f"fault: byte {offset} flipped")
        result.body = body
        return result

    def _finish(self, session, method, status, length):
        self._inflight = None
        session.busy = False
        for _ in range(self.m.dialect.httpaction_repeat):  # §6.3 manual oddity
            self.m.urc(f"+HTTPACTION: {method},{status},{length}")

    def link_lost(self):
        """The bearer went down: an action in flight ends with 601 (§5.1)."""
        if self._inflight and self.session:
            _, method = self._inflight
            self.session.result = httpclient.HttpResult(601, error="bearer lost")
            self._finish(self.session, method, 601, 0)

    def state(self):
        session = self.session
        state = None if session is None else {"busy": session.busy, "url": session.url}
        return {"http": state, "http_served": self.served}


def _range_text(session):
    if session.brk is None and session.brkend is None:
        return ""
    end = "" if session.brkend is None else session.brkend
    return f"bytes={session.brk or 0}-{end}"


def _headers(session):
    headers = [("User-Agent", session.ua)]
    if _range_text(session):
        headers.append(("Range", _range_text(session)))
    if session.content:
        headers.append(("Content-Type", session.content))
    for line in session.user_defined + session.userdata:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.append((name.strip(), value.strip()))
    return headers


def httpinit(m, c):
    if m.http.session is not None:
        raise AtError  # INFERRED: second INIT without TERM fails (§6.1, S6 retries with TERM)
    m.http.session = HttpSession()


def httpterm(m, c):
    m.http.need()
    m.http.reset()


def httppara_set(m, c):
    session = m.http.need()
    tag_text, sep, rest = c.raw.partition(",")
    if not sep:
        raise AtError
    tag = tag_text.strip().strip('"').upper()
    value = rest.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]  # quotes optional: the Air724 log sends the URL unquoted (§6.1)
    if tag == "URL":
        if len(value) > _URL_MAX:
            raise AtError
        session.url = value
    elif tag == "CID":
        session.cid = _int(value, 1, 3)
    elif tag == "UA":
        session.ua = value
    elif tag == "USER_DEFINED":
        session.user_defined.append(decode_escapes(value))  # accumulates; `\22` for " (§6.1)
    elif tag == "USERDATA":
        session.userdata = [h for h in decode_escapes(value).split("\\r\\n") if h]
    elif tag == "CONTENT":
        session.content = value
    elif tag == "TIMEOUT":
        session.timeout = _int(value, 1, 1000)
    elif tag == "REDIR":
        session.redir = _int(value, 0, 1)
    elif tag == "BREAK":
        session.brk = _int(value, 0, 2**31 - 1)
    elif tag == "BREAKEND":
        session.brkend = _int(value, 0, 2**31 - 1)
    elif tag in ("PROIP", "PROPORT"):
        pass  # accepted; a proxy is not emulated
    else:
        raise AtError


def httppara_read(m, c):
    session = m.http.need()
    m.info("+HTTPPARA: ")
    for line in (
        f"CID: {session.cid}",
        f"URL: {session.url}",
        f"UA: {session.ua}",
        f"TIMEOUT: {session.timeout}",
        f"REDIR: {session.redir}",
    ):
        m.info(line)


def httpssl_set(m, c):
    session = m.http.need()
    session.ssl = bool(c.int_arg(0, lo=0, hi=1))  # TLS without verification (§6.1, §8)


def httpssl_read(m, c):
    session = m.http.need()
    m.info(f"+ HTTPSSL: {int(session.ssl)}")  # sic, with the space (§6.1)


async def httpdata(m, c):
    session = m.http.need()
    size = c.int_arg(0, lo=1, hi=_DATA_MAX)
    window = c.int_arg(1, lo=1000, hi=120000)  # ms (§6.1)
    if session.busy:
        raise AtError
    m.info("DOWNLOAD")
    data = await m.read_data(count=size, timeout=window / 1000)
    if len(data) < size:
        m.log(f"HTTPDATA: {len(data)} of {size} bytes before the window closed")
    session.data = data


def httpaction(m, c):
    method = c.int_arg(0, lo=0, hi=2)
    m.http.start(method)


def _body(m):
    session = m.http.need()
    if session.result is None or session.busy:
        raise AtError
    return session.result


def _sep(m):
    return ": " if m.dialect.httpread_space else ":"  # §6.1, §12.10


def httpread(m, c):
    body = _body(m).body
    if c.kind == SET:
        start = c.int_arg(0, lo=0)
        size = c.int_arg(1, lo=1)
        body = body[start : start + size]
    delta = m.faults.take_httpread_delta() if m.faults else None
    if delta is None:
        delta = MISCOUNT.get(m.dialect.httpread_count, 0)
    m.info(f"+HTTPREAD{_sep(m)}{claimed(len(body), delta)}")
    m.write(body)  # exactly n raw bytes, then `OK` on its own line (§6.2)


def httphead(m, c):
    head = _body(m).head
    m.info(f"+HTTPHEAD{_sep(m)}{len(head)}")
    m.write(head)


def _int(text, lo, hi):
    try:
        value = int(text)
    except ValueError as err:
        raise AtError from err
    if not lo <= value <= hi:
        raise AtError
    return value


COMMANDS = {
    "+HTTPINIT": {EXEC: httpinit},
    "+HTTPTERM": {EXEC: httpterm},
    "+HTTPPARA": {SET: httppara_set, READ: httppara_read},
    "+HTTPSSL": {SET: httpssl_set, READ: httpssl_read},
    "+HTTPDATA": {SET: httpdata},
    "+HTTPACTION": {SET: httpaction},
    "+HTTPREAD": {EXEC: httpread, SET: httpread},
    "+HTTPHEAD": {EXEC: httphead},
}
