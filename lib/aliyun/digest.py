"""HMAC (RFC 2104) over hashlib, for MicroPython which has no ``hmac`` module.

Algorithms: ``"md5"``, ``"sha1"``, ``"sha256"`` (all 64-byte blocks). When the port's hashlib
lacks md5 the pure-Python aliyun.md5 is imported on first use; a missing sha1/sha256 raises
``ValueError``.
"""

import binascii
import hashlib

ALGORITHMS = ("md5", "sha1", "sha256")
_BLOCK = 64


def new(algorithm: str, data: bytes = b""):
    """A fresh hash object of ``algorithm`` fed with ``data``."""
    ctor = getattr(hashlib, algorithm, None) if algorithm in ALGORITHMS else None
    if ctor is None:
        if algorithm != "md5":
            raise ValueError("hash not available: " + str(algorithm))
        from aliyun.md5 import MD5

        ctor = MD5
    return ctor(data)


def hmac_digest(algorithm: str, key: bytes, msg: bytes) -> bytes:
    """Raw HMAC of ``msg`` under ``key``."""
    if len(key) > _BLOCK:
        key = new(algorithm, key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    inner = new(algorithm, bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = new(algorithm, bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hmac_hex(algorithm: str, key: bytes, msg: bytes) -> str:
    """Lower-case hex HMAC of ``msg`` under ``key``."""
    return binascii.hexlify(hmac_digest(algorithm, key, msg)).decode()
