"""OTA of the local cloud (reference §4.6): packages, jobs, the download route, device reports.

* ``build_package``: the application's file set (``.mpy`` of lib/ and firmware/ in a build) as
  one package file, the format ``lib/aliyun/otapkg.py`` reads: a header line
  ``AOTA1 <version> <count>``, per file ``F <size> <sha256> <path>`` and the bytes, or, for a
  file the same as in the ``base`` build, ``C <size> <sha256> <path>`` (the device copies its
  own), then ``E``. main.py and boot.py are the boot code and never part of a package.
* ``OtaStore``: packages (``ota add``) and jobs (``ota deploy``) in ``ota.sqlite3`` of the state
  dir, next to the registry; the package files are copied into ``<state dir>/ota/``.
* ``OtaService``: the running server's side: ``GET /ota/package?id=…`` on the HTTPS listener
  (``Range: bytes=a-b`` answered 206 with ``Content-Range``; every byte sent is counted per job),
  the push on ``/ota/device/upgrade/pk/dn``, the answer to ``thing/ota/firmware/get`` (the
  pending job, or ``{}``), and the job's state from ``/ota/device/progress`` (1..100 downloading,
  negative: failed with its ``desc``) and ``/ota/device/inform`` (the job's version: upgraded).
"""

import hashlib
import re
import secrets
import shutil
import sqlite3
import time
from pathlib import Path

MAGIC = "AOTA1"
DB_NAME = "ota.sqlite3"
BOOT_CODE = {"firmware/main.mpy", "firmware/boot.mpy"}
SIGN_METHODS = {"md5": "Md5", "sha256": "SHA256"}  # as a push spells them (§4.6)
_VERSION = re.compile(r"^[0-9A-Za-z._-]{1,32}$")
URL_HOST = "iot-auth.%s.aliyuncs.com"  # the HTTPS listener the module reaches (sim parts)
STEP_TEXT = {-1: "upgrade failed", -2: "download failed", -3: "verification failed"}
STEP_TEXT[-4] = "burn failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS packages (
    id TEXT PRIMARY KEY, product_key TEXT NOT NULL, module TEXT NOT NULL,
    version TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL,
    sign TEXT NOT NULL, sign_method TEXT NOT NULL, md5 TEXT NOT NULL, created_ms INTEGER,
    UNIQUE (product_key, module, version)
);
CREATE TABLE IF NOT EXISTS jobs (
    product_key TEXT NOT NULL, device_name TEXT NOT NULL, module TEXT NOT NULL,
    version TEXT NOT NULL, package TEXT NOT NULL, state TEXT NOT NULL,
    step INTEGER, desc TEXT, served INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER,
    PRIMARY KEY (product_key, device_name, module)
);
CREATE TABLE IF NOT EXISTS versions (
    product_key TEXT NOT NULL, device_name TEXT NOT NULL, module TEXT NOT NULL,
    version TEXT NOT NULL, PRIMARY KEY (product_key, device_name, module)
);
"""


class OtaError(ValueError):
    pass


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise OtaError("version: 1-32 of letters, digits and . _ -")
    return version


# package -------------------------------------------------------------------------------------


def file_set(build) -> dict:
    """``{path: bytes}`` of the .mpy files of lib/ and firmware/ in ``build`` (boot code out)."""
    build = Path(build)
    files = {}
    for top in ("lib", "firmware"):
        for path in sorted((build / top).rglob("*.mpy")):
            rel = path.relative_to(build).as_posix()
            if rel not in BOOT_CODE:
                files[rel] = path.read_bytes()
    if not files:
        raise OtaError("no .mpy files under %s/lib or %s/firmware (run make mpy)" % (build, build))
    return files


def build_package(src, version: str, out, base=None) -> dict:
    """Write the package of build ``src`` to ``out``; return its manifest."""
    check_version(version)
    files = file_set(src)
    old = file_set(base) if base else {}
    parts = [("%s %s %d\n" % (MAGIC, version, len(files))).encode()]
    entries = []
    for path, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        kind = "C" if old.get(path) == data else "F"
        parts.append(("%s %d %s %s\n" % (kind, len(data), digest, path)).encode())
        if kind == "F":
            parts.append(data)
        entries.append({"path": path, "size": len(data), "sha256": digest, "sent": kind == "F"})
    parts.append(b"E\n")
    blob = b"".join(parts)
    Path(out).write_bytes(blob)
    return {
        "version": version,
        "size": len(blob),
        "files": entries,
        "changed": sum(1 for e in entries if e["sent"]),
        "md5": hashlib.md5(blob).hexdigest(),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }


def read_header(data: bytes) -> str:
    """The version a package file declares (a quick check before it is added)."""
    line = data[:64].split(b"\n", 1)[0].decode("ascii", "replace").split()
    if len(line) != 3 or line[0] != MAGIC:
        raise OtaError("not an OTA package (no %s header)" % MAGIC)
    return line[1]


# store ---------------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


class OtaStore:
    def __init__(self, state_dir):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.dir / DB_NAME, timeout=10, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self):
        self.db.close()

    def add(self, pk, file, version, module="app", sign_method="Md5") -> dict:
        data = Path(file).read_bytes()
        check_version(version)
        declared = read_header(data)
        if module == "app" and declared != version:
            raise OtaError("the package holds version %s, not %s" % (declared, version))
        method = SIGN_METHODS.get(sign_method.lower())
        if method is None:
            raise OtaError("sign method: Md5 or SHA256")
        hasher = hashlib.md5 if method == "Md5" else hashlib.sha256
        pkg_id = secrets.token_hex(8)
        stored = self.dir / "ota" / ("%s-%s-%s.bin" % (pk, module, version))
        stored.parent.mkdir(exist_ok=True)
        shutil.copyfile(file, stored)
        row = (pkg_id, pk, module, version, str(stored), len(data), hasher(data).hexdigest())
        try:
            with self.db:
                self.db.execute(
                    "INSERT INTO packages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row + (method, hashlib.md5(data).hexdigest(), now_ms()),
                )
        except sqlite3.IntegrityError:
            raise OtaError("%s %s of %s exists already" % (module, version, pk)) from None
        return self.package(pk, version, module)

    def package(self, pk, version, module="app"):
        row = self.db.execute(
            "SELECT * FROM packages WHERE product_key=? AND version=? AND module=?",
            (pk, version, module),
        ).fetchone()
        return dict(row) if row else None

    def package_by_id(self, pkg_id):
        row = self.db.execute("SELECT * FROM packages WHERE id=?", (pkg_id,)).fetchone()
        return dict(row) if row else None

    def set_job(self, pk, dn, package, state="pushed"):
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, NULL, '', 0, ?)",
                (pk, dn, package["module"], package["version"], package["id"], state, now_ms()),
            )

    def job(self, pk, dn, module="app"):
        row = self.db.execute(
            "SELECT * FROM jobs WHERE product_key=? AND device_name=? AND module=?",
            (pk, dn, module),
        ).fetchone()
        return dict(row) if row else None

    def update_job(self, pk, dn, module, **fields):
        sets = ", ".join("%s=?" % key for key in fields)
        with self.db:
            self.db.execute(
                "UPDATE jobs SET %s, updated_ms=? WHERE product_key=? AND device_name=? "
                "AND module=?" % sets,
                (*fields.values(), now_ms(), pk, dn, module),
            )

    def count_served(self, pkg_id, pk, dn, count):
        with self.db:
            self.db.execute(
                "UPDATE jobs SET served = served + ? WHERE package=? AND product_key=? "
                "AND device_name=?",
                (count, pkg_id, pk, dn),
            )

    def set_version(self, pk, dn, module, version):
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?)", (pk, dn, module, version)
            )

    def status(self, pk=None) -> list:
        """Per device and module: the job's state and the versions the device reported."""
        query = "SELECT * FROM jobs" + (" WHERE product_key=?" if pk else "")
        rows = [dict(r) for r in self.db.execute(query, (pk,) if pk else ())]
        for row in rows:
            versions = self.db.execute(
                "SELECT module, version FROM versions WHERE product_key=? AND device_name=?",
                (row["product_key"], row["device_name"]),
            )
            row["versions"] = {r["module"]: r["version"] for r in versions}
            package = self.package_by_id(row["package"])
            row["size"] = package["size"] if package else None
        return rows
