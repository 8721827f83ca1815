"""Test CA and server certificate of the local cloud (generated once, kept in the state dir).

The server certificate is valid for the host names firmware uses on the real platform
(reference §1.1, §2): ``*.iot-as-mqtt.<region>.aliyuncs.com``, ``iot-auth.<region>.aliyuncs.com``,
``*.mqtt.iothub.aliyuncs.com``, plus localhost, 127.0.0.1 and ::1. Clients trust ``ca.pem``.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import trustme

# Regions hard-coded in the C SDK (reference §1.1); the configured region is added to them.
REGIONS = ("cn-shanghai", "ap-southeast-1", "ap-northeast-1", "us-west-1", "eu-central-1")
CA_FILE, CA_KEY_FILE = "ca.pem", "ca-key.pem"
CERT_FILE, KEY_FILE, NAMES_FILE = "server.pem", "server-key.pem", "server-names.json"


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


def ensure(state_dir, region: str = "cn-shanghai") -> CertPaths:
    """Create the CA on first use, and the server certificate whenever its names change."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key = state / CA_FILE, state / CA_KEY_FILE
    if ca_path.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_path.read_bytes(), ca_key.read_bytes())
        fresh_ca = False
    else:
        ca = trustme.CA(organization_name="aliyun-local test CA")
        _write_private(ca_key, ca.private_key_pem.bytes())
        ca.cert_pem.write_to_path(str(ca_path))
        fresh_ca = True
    names = host_names(region)
    cert, key, names_file = state / CERT_FILE, state / KEY_FILE, state / NAMES_FILE
    current = json.loads(names_file.read_text()) if names_file.exists() else None
    if fresh_ca or current != names or not cert.exists() or not key.exists():
        leaf = ca.issue_cert(*names, common_name="aliyun-local")
        _write_private(key, leaf.private_key_pem.bytes())
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        names_file.write_text(json.dumps(names))
    return CertPaths(ca_path, cert, key, names)
