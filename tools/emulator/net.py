"""Real networking behind the module: name mapping (``--resolve``), sockets and TLS.

The firmware keeps the real Aliyun host names; ``--resolve`` maps them (wildcards allowed) to local
servers. TLS is not verified unless a CA is given, as on the module without AT+SSLCFG (ref §8);
with ``--ca`` the certificate must match the original host name, which is also sent as SNI.
The ``tls_suites=air724`` dialect offers only what the module offers: TLS 1.2 and its six RSA
key-exchange suites (``AIR724_SUITES``).
"""

import asyncio
import fnmatch
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass


async def in_thread(function, *args):
    """Run a blocking network call in a daemon thread: unlike ``asyncio.to_thread`` a request
    still hanging on a silent server does not hold up the emulator's exit."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error):
        if future.done():  # cancelled (a reboot): do not leak what was opened meanwhile
            if hasattr(result, "close"):
                result.close()
        elif error:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run():
        try:
            result, error = function(*args), None
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, err
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is gone: the emulator stopped

    threading.Thread(target=run, name="air724-net", daemon=True).start()
    return await future


# AT+SSLCFG="ciphersuite" values and the FAQ's list (reference §8): TLS 1.2, RSA key exchange
# only. IANA code → OpenSSL name; an OpenSSL built without RC4 or 3DES (OpenSSL 3) offers the rest.
AIR724_SUITES = {
    0x0035: "AES256-SHA",  # TLS_RSA_WITH_AES_256_CBC_SHA
    0x002F: "AES128-SHA",  # TLS_RSA_WITH_AES_128_CBC_SHA
    0x0005: "RC4-SHA",  # TLS_RSA_WITH_RC4_128_SHA
    0x0004: "RC4-MD5",  # TLS_RSA_WITH_RC4_128_MD5
    0x000A: "DES-CBC3-SHA",  # TLS_RSA_WITH_3DES_EDE_CBC_SHA
    0x003D: "AES256-SHA256",  # TLS_RSA_WITH_AES_256_CBC_SHA256
}
SUITE_SETS = ("host", "air724")


def restrict_to_module(context):
    """Make a client context offer only the Air724's TLS: 1.2, its RSA suites (§8)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(AIR724_SUITES.values()))
    return context


class NetError(Exception):
    """A network step failed; ``kind`` is dns, connect, tls or alert."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ResolveRule:
    pattern: str
    port: int | None
    ip: str
    new_port: int | None

    def matches(self, host, port):
        return fnmatch.fnmatchcase(host.lower(), self.pattern) and self.port in (None, port)


def parse_rule(text):
    """``HOST[:PORT]=IP[:PORT]``; HOST may hold ``*`` wildcards, IP may be ``[::1]``."""
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        raise ValueError(f"--resolve expects HOST[:PORT]=IP[:PORT], got {text!r}")
    pattern, port = _split_port(left)
    ip, new_port = _split_port(right.strip())
    ipaddress.ip_address(ip)  # ValueError for a name: the target must be an address
    return ResolveRule(pattern.lower(), port, ip, new_port)


def _split_port(text):
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, None


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Network:
    """Resolves names through the rules, opens TCP/TLS sockets, builds TLS contexts."""

    def __init__(self, rules=(), strict=False, ca=None, timeout=10.0):
        self.rules = list(rules)
        self.strict = strict
        self.ca = ca
        self.timeout = timeout

    def resolve(self, host, port):
        """(ip, port) for a host name and port; NetError(dns) if it does not resolve."""
        for rule in self.rules:
            if rule.matches(host, port):
                return rule.ip, rule.new_port or port
        if _is_ip(host):
            return host, port
        if self.strict and host.lower() != "localhost":
            raise NetError("dns", f"{host} is not mapped by --resolve (strict)")
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise NetError("dns", f"cannot resolve {host}: {err}") from err
        return info[0][4][0], port

    def tls_context(self, suites="host"):
        """Client TLS context: verifying with ``--ca``, otherwise encrypt-only (ref §8);
        ``suites="air724"`` offers only the module's TLS 1.2 suites."""
        if self.ca:
            context = ssl.create_default_context(cafile=self.ca)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return restrict_to_module(context) if suites == "air724" else context

    def server_hostname(self, host):
        return None if _is_ip(host) else host

    def open(self, host, port, tls, suites="host"):
        """A connected (and, for TLS, handshaken) blocking socket. Runs in a worker thread."""
        ip, real_port = self.resolve(host, port)
        try:
            sock = socket.create_connection((ip, real_port), timeout=self.timeout)
        except OSError as err:
            raise NetError("connect", f"connect {ip}:{real_port}: {err}") from err
        if not tls:
            return sock
        try:
            context = self.tls_context(suites)
            return context.wrap_socket(sock, server_hostname=self.server_hostname(host))
        except ssl.SSLError as err:
            sock.close()
            kind = "alert" if "ALERT" in str(err).upper() else "tls"
            raise NetError(kind, f"TLS with {host}: {err}") from err
        except OSError as err:
            sock.close()
            raise NetError("connect", f"TLS with {host}: {err}") from err
