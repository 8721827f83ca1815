"""HMAC (RFC 2104) over hashlib, for MicroPython which has no ``hmac`` module.

Algorithms: ``"md5"``, ``"sha1"``, ``"sha256"`` (all 64-byte blocks). When the port's hashlib
lacks md5 the pure-Python aliyun.md5 is imported on first use; another missing algorithm raises
``ValueError``.
"""

import binascii
import hashlib


def hmac_hex(algorithm: str, key: bytes, msg: bytes) -> str:
    """Lower-case hex HMAC of ``msg`` under ``key``."""
    new = getattr(hashlib, algorithm, None)
    if new is None:
        if algorithm != "md5":
            raise ValueError("hash not available: " + algorithm)
        from aliyun.md5 import MD5

        new = MD5
    if len(key) > 64:  # longer keys are hashed first
        key = new(key).digest()
    key += bytes(64 - len(key))
    inner = new(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = new(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return binascii.hexlify(outer.digest()).decode()
