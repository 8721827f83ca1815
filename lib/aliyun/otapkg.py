"""OTA package: check its sign, then install its file set into a slot, file by file.

The package (built by ``aliyun-local ota package build``) is a text header line, then one
entry per file of the new version, then an end line:

    AOTA1 <version> <count>\\n
    F <size> <sha256 hex> <path>\\n<size bytes>     the file's new content
    C <size> <sha256 hex> <path>\\n                  unchanged: copied from the running set
    E\\n

``path`` is ``lib/...`` or ``firmware/...`` (.mpy or .py). Everything is streamed in small
pieces: nothing holds more than one piece (``_PIECE`` bytes) of a file in RAM. Every file of the
new set, copied or new, is checked against its SHA-256 before anything is switched. Faults raise
``PackageError`` with the ``/ota/device/progress`` step it reports: -3 verification failed, -4
no room to install.
"""

import binascii
import hashlib
import os

from micropython import const

_PIECE = const(512)
_MAX_FILES = const(256)
_MAX_FILE = const(1048576)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
MAGIC = "AOTA1"


class PackageError(Exception):
    """The package is refused: ``step`` (-3 or -4) and ``desc`` for the progress report."""

    def __init__(self, step: int, desc: str):
        super().__init__(desc)
        self.step = step
        self.desc = desc


def new_hash(method: str):
    """A hash object for a push's ``signMethod`` (MD5 or SHA256, any case)."""
    name = method.lower()
    if name == "md5":
        if hasattr(hashlib, "md5"):
            return hashlib.md5()
        from aliyun.md5 import MD5  # ports whose hashlib lacks md5 (RP2040)

        return MD5()
    if name == "sha256":
        return hashlib.sha256()
    raise PackageError(-3, "unknown signMethod " + method)


def file_hex(path: str, method: str = "sha256", start: int = 0, size: int = -1) -> str:
    """Hex digest of ``size`` bytes of ``path`` from ``start`` (-1: to the end)."""
    h = new_hash(method)
    with open(path, "rb") as f:
        f.seek(start)
        while size:
            piece = f.read(_PIECE if size < 0 else min(_PIECE, size))
            if not piece:
                break
            h.update(piece)
            size -= len(piece) if size > 0 else 0
    return binascii.hexlify(h.digest()).decode()


def check_sign(path: str, method: str, sign: str) -> None:
    """The whole package against the push's ``sign`` (hex, compared case-insensitively)."""
    if file_hex(path, method) != sign.lower():
        raise PackageError(-3, "sign mismatch")


def _fail(what: str):
    return PackageError(-3, "bad package: " + what)


def parse_header(line: bytes, version: str) -> int:
    """The file count of header ``line``, checked against the expected ``version``."""
    parts = line.decode().split()
    if len(parts) != 3 or parts[0] != MAGIC or not parts[2].isdigit():
        raise _fail("header")
    if parts[1] != version:
        raise PackageError(-3, "package holds version " + parts[1])
    count = int(parts[2])
    if not 0 < count <= _MAX_FILES:
        raise _fail("file count")
    return count


def parse_entry(line: bytes) -> tuple:
    """``(kind, size, sha256 hex, path)`` of an entry line; a path that could leave the
    slot (absolute, ``..``, odd characters) or is not code is refused."""
    try:
        kind, size, digest, path = line.decode().split()
        size = int(size)
    except (ValueError, UnicodeError):
        raise _fail("entry") from None
    ok = kind in ("F", "C") and 0 <= size <= _MAX_FILE and len(digest) == 64
    ok = ok and (path.startswith("lib/") or path.startswith("firmware/"))
    ok = ok and (path.endswith(".mpy") or path.endswith(".py")) and len(path) <= 96
    ok = ok and ".." not in path and "//" not in path
    for ch in path:
        ok = ok and ch in _NAME_CHARS
    for ch in digest:
        ok = ok and ch in "0123456789abcdef"
    if not ok:
        raise _fail("entry " + path[:40])
    return kind, size, digest, path


def placed(base, path: str) -> str:
    """Where ``path`` lives in a set: ``lib/x`` -> ``base/lib/x``, ``firmware/x`` -> ``base/x``
    (``base`` None: the factory set, the board's own ``/lib`` and root)."""
    rel = path if path.startswith("lib/") else path[9:]
    return rel if base is None else base + "/" + rel


def install(pkg: str, version: str, slot: str, current) -> int:
    """Write the new set of ``pkg`` into directory ``slot`` (emptied first), copying ``C``
    entries from the running set ``current`` (a slot directory, None for factory); return the
    number of files. Every file's digest is checked."""
    remove_tree(slot)
    count = 0
    with open(pkg, "rb") as f:
        total = parse_header(f.readline(64), version)
        for _ in range(total):
            kind, size, digest, path = parse_entry(f.readline(200))
            dest = placed(slot, path)
            make_dirs(dest)
            if kind == "F":
                got = _copy(f, dest, size)
            else:
                try:
                    src = open(placed(current, path), "rb")
                except OSError:
                    raise PackageError(-3, "not in the running set: " + path) from None
                with src:
                    got = _copy(src, dest, size)
            if got != digest:
                raise PackageError(-3, "digest mismatch: " + path)
            count += 1
        if f.readline(8) != b"E\n":
            raise _fail("end")
    return count


def _copy(src, dest: str, size: int) -> str:
    """Copy ``size`` bytes of stream ``src`` to file ``dest``; the SHA-256 hex of what came."""
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        while size > 0:
            piece = src.read(min(_PIECE, size))
            if not piece:
                raise _fail("truncated")
            h.update(piece)
            try:
                out.write(piece)
            except OSError:
                raise PackageError(-4, "filesystem full") from None
            size -= len(piece)
    return binascii.hexlify(h.digest()).decode()


def make_dirs(path: str) -> None:
    """Create the parent directories of file ``path``."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        try:
            os.mkdir("/".join(parts[:i]))
        except OSError:
            pass  # exists


def remove_tree(path: str) -> None:
    """Delete directory ``path`` and everything in it (missing: nothing to do)."""
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        full = path + "/" + name
        if os.stat(full)[0] & 0x4000:  # S_IFDIR
            remove_tree(full)
        else:
            os.remove(full)
    os.rmdir(path)
