"""Test CA and server certificate of the local cloud (generated once, kept in the state dir).

The server certificate is valid for the host names firmware uses on the real platform
(reference §1.1, §2): ``*.iot-as-mqtt.<region>.aliyuncs.com``, ``iot-auth.<region>.aliyuncs.com``,
``*.mqtt.iothub.aliyuncs.com``, plus localhost, 127.0.0.1 and ::1. Clients trust ``ca.pem``.
Server contexts also accept the RSA key-exchange suites of the Air724 (``MODULE_SUITES``).
"""

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from tools.emulator.net import AIR724_SUITES

# Regions hard-coded in the C SDK (reference §1.1); the configured region is added to them.
REGIONS = ("cn-shanghai", "ap-southeast-1", "ap-northeast-1", "us-west-1", "eu-central-1")
CA_FILE, CA_KEY_FILE = "ca.pem", "ca-key.pem"
CERT_FILE, KEY_FILE, NAMES_FILE = "server.pem", "server-key.pem", "server-names.json"


# The Air724's cipher suites (TLS 1.2, RSA key exchange only: reference air724-at §8), kept with
# the emulator, which offers exactly these in its ``tls_suites=air724`` dialect.
MODULE_SUITES = AIR724_SUITES
# The server's TLS 1.2 suites: forward-secret ones first (every other client), then the module's.
# An OpenSSL built without RC4 or 3DES (OpenSSL 3 by default) skips those names; the module
# offers the AES suites too, so it still gets one.
SERVER_CIPHERS = (
    "ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:"
    + ":".join(MODULE_SUITES.values())
    + ":!aNULL:!eNULL:!aDSS:!AESCCM"
)


def accept_module_suites(context: ssl.SSLContext) -> ssl.SSLContext:
    """Let a server context also negotiate the Air724's RSA suites (Aliyun accepts them)."""
    context.set_ciphers(SERVER_CIPHERS)
    return context


def server_context(paths) -> ssl.SSLContext:
    """Server TLS context with the local cloud's certificate and the module's suites."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.cert, paths.key)
    return accept_module_suites(context)


@dataclass
class CertPaths:
    ca: Path
    cert: Path
    key: Path
    names: list


def host_names(region: str = "cn-shanghai") -> list:
    regions = list(REGIONS) + ([region] if region not in REGIONS else [])
    names = ["localhost", "127.0.0.1", "::1", "*.mqtt.iothub.aliyuncs.com"]
    for r in regions:
        names += ["*.iot-as-mqtt.%s.aliyuncs.com" % r, "iot-auth.%s.aliyuncs.com" % r]
    return names


def _write_private(path: Path, data: bytes):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _is_rsa(key_pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return isinstance(load_pem_private_key(key_pem, password=None), rsa.RSAPrivateKey)


def ensure(state_dir, region: str = "cn-shanghai") -> CertPaths:
    """Create the CA on first use, and the server certificate whenever its names change.

    Keys are RSA: the module's suites use RSA key exchange, which needs an RSA server key (and
    the platform's roots are RSA). A state dir from before, with ECDSA keys, gets new ones."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key = state / CA_FILE, state / CA_KEY_FILE
    if ca_path.exists() and ca_key.exists() and _is_rsa(ca_key.read_bytes()):
        ca = trustme.CA.from_pem(ca_path.read_bytes(), ca_key.read_bytes())
        fresh_ca = False
    else:
        ca = trustme.CA(organization_name="aliyun-local test CA", key_type=trustme.KeyType.RSA)
        _write_private(ca_key, ca.private_key_pem.bytes())
        ca.cert_pem.write_to_path(str(ca_path))
        fresh_ca = True
    names = host_names(region)
    cert, key, names_file = state / CERT_FILE, state / KEY_FILE, state / NAMES_FILE
    current = json.loads(names_file.read_text()) if names_file.exists() else None
    if fresh_ca or current != names or not cert.exists() or not key.exists():
        leaf = ca.issue_cert(*names, common_name="aliyun-local", key_type=trustme.KeyType.RSA)
        _write_private(key, leaf.private_key_pem.bytes())
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        names_file.write_text(json.dumps(names))
    return CertPaths(ca_path, cert, key, names)
