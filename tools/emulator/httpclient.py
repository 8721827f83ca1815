"""The real HTTP(S) request behind AT+HTTPACTION, run in a worker thread.

Failures map to the module's status codes (reference §6.3): 600 not an HTTP answer, 601 network
error, 603 DNS error, 605 TLS handshake failed (whatever the reason: no common suite, a
handshake_failure alert, a certificate not verified), 606 a TLS alert after the handshake.
"""

import http.client
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .net import NetError

BUFFER = 319488  # Air724 HTTP response buffer (§6.4); the rest is dropped (INFERRED)
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class HttpRequest:
    method: str
    url: str
    headers: list = field(default_factory=list)
    body: bytes = b""
    tls: bool = False
    suites: str = "host"  # dialect tls_suites
    timeout: float = 120.0
    follow: bool = False


@dataclass
class HttpResult:
    status: int
    head: bytes = b""
    body: bytes = b""
    error: str = ""


def split_url(url, force_tls):
    """(tls, host, port, path) of a module URL; the scheme is optional (§6.1)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "https" or force_tls
    port = parts.port or (443 if tls else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return tls, parts.hostname or "", port, path


def perform(network, request):
    """Run the request (following redirects when asked); never raises."""
    url, method, body = request.url, request.method, request.body
    for _ in range(6):
        result = _once(network, request, url, method, body)
        location = _header(result.head, "location")
        if not (request.follow and result.status in _REDIRECTS and location):
            return result
        url = urljoin(url if "://" in url else "http://" + url, location)
        if result.status == 303:
            method, body = "GET", b""
    return result


def _once(network, request, url, method, body):
    tls, host, port, path = split_url(url, request.tls)
    try:
        ip, real_port = network.resolve(host, port)
    except NetError as err:
        return HttpResult(603, error=str(err))
    if tls:
        conn = http.client.HTTPSConnection(
            host, port, timeout=request.timeout, context=network.tls_context(request.suites)
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=request.timeout)
    # connect to the mapped address; Host header and SNI keep the original name
    conn._create_connection = lambda _addr, timeout, source: socket.create_connection(
        (ip, real_port), timeout, source
    )
    try:
        conn.connect()  # TCP, then the TLS handshake: any TLS failure here is 605
    except ssl.SSLError as err:
        conn.close()
        return HttpResult(605, error=f"TLS handshake: {err}")
    except OSError as err:
        conn.close()
        return HttpResult(601, error=str(err))
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in request.headers:
            conn.putheader(name, value)
        if method == "POST" or body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read() if method != "HEAD" else b""
        version = "1.1" if response.version == 11 else "1.0"
        head = f"HTTP/{version} {response.status} {response.reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in response.getheaders()) + "\r\n"
        return HttpResult(response.status, head.encode("latin-1", "replace"), data[:BUFFER])
    except ssl.SSLError as err:
        return HttpResult(606 if "ALERT" in str(err).upper() else 605, error=str(err))
    except http.client.RemoteDisconnected as err:
        return HttpResult(601, error=str(err))
    except http.client.HTTPException as err:
        return HttpResult(600, error=f"not HTTP: {err!r}")
    except OSError as err:
        return HttpResult(601, error=str(err))
    finally:
        conn.close()


def _header(head, name):
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None
