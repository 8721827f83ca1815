"""Device registry and message log of the local cloud, in one SQLite file.

Products (productKey, productSecret, dynamic registration on/off), devices (the triple, status,
latest properties), custom topic classes, HTTPS-auth tokens, and a message log shaped like the
console's 日志服务 (time, messageId, device, type, topic, content, status).

The server and the CLI open the same file; WAL mode lets the CLI read and add records while the
server runs. Secrets live here (it is the platform's side) and nowhere else: the log never holds
one (see ``redact``).
"""

import itertools
import json
import os
import re
import secrets
import sqlite3
import time
from pathlib import Path

from tools import aliyun_sign as _sign

DB_NAME = "registry.sqlite3"

# Log types, as the console names them (日志服务: 设备到云消息, 云到设备消息, API调用, 设备行为).
UP, DOWN, API, STATUS = "up", "down", "api", "status"
LOG_TYPES = {
    UP: "device→cloud",
    DOWN: "cloud→device",
    API: "API",
    STATUS: "device status",
}

STATE_INACTIVE, STATE_ONLINE, STATE_OFFLINE = "inactive", "online", "offline"
STATUS_DISABLED = "disabled"

PERMS = ("pub", "sub", "all")  # custom topic class permissions: 发布, 订阅, 发布和订阅

# DeviceName rule of the console: 4-32 characters of letters, digits and - _ @ . :
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9_\-@.:]{4,32}$")
_PRODUCT_KEY = re.compile(r"^[A-Za-z0-9]{1,32}$")
# A custom topic class below /${pk}/${deviceName}/user/: levels of letters, digits and _, with
# + or # allowed (only subscribe classes may use them, reference §4.1).
_TOPIC_LEVEL = re.compile(r"^([A-Za-z0-9_]+|\+|#)$")

# Generated secrets avoid look-alike characters (I l 1 O 0): the seed's own example secret was
# mistyped exactly that way (BRIEF §6).
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

TOKEN_TTL_S = 7 * 24 * 3600  # iotToken is valid 7 days (reference §2)
LOG_KEEP = 100_000  # rows kept in the message log; older ones are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    product_secret TEXT NOT NULL,
    dynamic_register INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    product_key TEXT NOT NULL REFERENCES products(product_key),
    device_name TEXT NOT NULL,
    device_secret TEXT,
    iot_id TEXT NOT NULL UNIQUE,
    enabled INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'inactive',
    properties TEXT NOT NULL DEFAULT '{}',
    firmware_version TEXT,
    client_id TEXT,
    ip TEXT,
    nwl_client_id TEXT,
    device_token TEXT,
    created_ms INTEGER NOT NULL,
    activated_ms INTEGER,
    last_online_ms INTEGER,
    PRIMARY KEY (product_key, device_name)
);
CREATE TABLE IF NOT EXISTS topic_classes (
    product_key TEXT NOT NULL REFERENCES products(product_key),
    name TEXT NOT NULL,
    perm TEXT NOT NULL,
    PRIMARY KEY (product_key, name)
);
CREATE TABLE IF NOT EXISTS tokens (
    iot_token TEXT PRIMARY KEY,
    iot_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    product_key TEXT,
    device_name TEXT,
    type TEXT NOT NULL,
    topic TEXT,
    content TEXT,
    status TEXT
);
CREATE INDEX IF NOT EXISTS messages_device ON messages (product_key, device_name, seq);
"""


class RegistryError(ValueError):
    """A registry request that cannot be served (unknown record, bad name, duplicate)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def random_text(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def redact(payload: dict, keys=("deviceSecret", "deviceToken", "iotToken", "sign", "password")):
    """A copy of ``payload`` with secret values replaced by ``***`` (for the log)."""
    return {k: ("***" if k in keys and v else v) for k, v in payload.items()}


_id_counter = itertools.count()


def message_id() -> str:
    """A 19-digit decimal message id, like the console's MessageID (time-ordered)."""
    return str((now_ms() << 20) | (next(_id_counter) & 0xFFFFF))


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not _DEVICE_NAME.match(name):
        raise RegistryError(
            "deviceName %r: use 4-32 letters, digits or - _ @ . : (console rule)" % (name,)
        )
    return name


def check_topic_class(name: str) -> str:
    """Validate a custom topic class name (the part after ``/${pk}/${deviceName}/user/``)."""
    levels = name.split("/") if isinstance(name, str) else [""]
    if not all(_TOPIC_LEVEL.match(level) for level in levels):
        raise RegistryError("topic class %r: levels of letters, digits, _, + or #" % (name,))
    if "#" in levels[:-1]:
        raise RegistryError("topic class %r: # only as the last level" % (name,))
    return name


class Registry:
    """The SQLite registry; one instance per thread (sqlite3 connections are not shared)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL-safe; no fsync per log row
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        try:
            os.chmod(self.path, 0o600)  # it holds secrets
        except OSError:
            pass
        self.listeners = []  # callables given each new log row (the server's live log)
        self._inserted = 0

    def close(self):
        self.db.close()

    # products ---------------------------------------------------------------------------------

    def add_product(self, name, product_key=None, product_secret=None, dynamic_register=False):
        pk = product_key or "a1" + random_text(9)
        if not _PRODUCT_KEY.match(pk):
            raise RegistryError("productKey %r: use 1-32 letters or digits" % (pk,))
        ps = product_secret or random_text(16)
        _sign.check_text("productSecret", ps)
        try:
            self.db.execute(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
                (pk, name or pk, ps, int(bool(dynamic_register)), now_ms()),
            )
        except sqlite3.IntegrityError:
            raise RegistryError("product %s exists" % pk) from None
        return self.product(pk)

    def product(self, product_key):
        row = self.db.execute(
            "SELECT * FROM products WHERE product_key = ?", (product_key,)
        ).fetchone()
        return _product(row) if row else None

    def products(self):
        rows = self.db.execute("SELECT * FROM products ORDER BY created_ms, product_key")
        return [_product(row) for row in rows]

    def set_dynamic_register(self, product_key, enabled: bool):
        self._require_product(product_key)
        self.db.execute(
            "UPDATE products SET dynamic_register = ? WHERE product_key = ?",
            (int(enabled), product_key),
        )
        return self.product(product_key)

    def _require_product(self, product_key):
        product = self.product(product_key)
        if product is None:
            raise RegistryError("no product %s" % product_key)
        return product

    # devices ----------------------------------------------------------------------------------

    def add_device(self, product_key, device_name=None, device_secret=None, with_secret=True):
        """Create a device (设备创建) and return its record, secret included."""
        self._require_product(product_key)
        dn = check_device_name(device_name or random_text(20))
        ds = (device_secret or random_text(32)) if with_secret else None
        if ds is not None:
            _sign.check_text("deviceSecret", ds)
        try:
            self.db.execute(
                "INSERT INTO devices (product_key, device_name, device_secret, iot_id, created_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (product_key, dn, ds, random_text(20) + "000" + random_text(7), now_ms()),
            )
        except sqlite3.IntegrityError:
            raise RegistryError("device %s/%s exists" % (product_key, dn)) from None
        return self.device(product_key, dn)

    def device(self, product_key, device_name):
        row = self.db.execute(
            "SELECT * FROM devices WHERE product_key = ? AND device_name = ?",
            (product_key, device_name),
        ).fetchone()
        return _device(row) if row else None

    def device_by_iot_id(self, iot_id):
        row = self.db.execute("SELECT * FROM devices WHERE iot_id = ?", (iot_id,)).fetchone()
        return _device(row) if row else None

    def devices(self, product_key=None, device_name=None):
        sql, args = "SELECT * FROM devices WHERE 1", []
        if product_key:
            sql += " AND product_key = ?"
            args.append(product_key)
        if device_name:
            sql += " AND device_name = ?"
            args.append(device_name)
        rows = self.db.execute(sql + " ORDER BY created_ms, product_key, device_name", args)
        return [_device(row) for row in rows]

    def resolve(self, spec, product_key=None):
        """Find one device from ``DN`` or ``PK/DN`` (plus an optional product key)."""
        if "/" in spec:
            product_key, spec = spec.split("/", 1)
        found = self.devices(product_key, spec)
        if not found:
            raise RegistryError("no device %s" % spec)
        if len(found) > 1:
            raise RegistryError("device name %s is in several products: give PK/DN" % spec)
        return found[0]

    def set_enabled(self, product_key, device_name, enabled: bool):
        if self.device(product_key, device_name) is None:
            raise RegistryError("no device %s/%s" % (product_key, device_name))
        self.db.execute(
            "UPDATE devices SET enabled = ? WHERE product_key = ? AND device_name = ?",
            (int(enabled), product_key, device_name),
        )
        return self.device(product_key, device_name)

    def delete_device(self, product_key, device_name):
        """设备删除: the device and its HTTPS-auth tokens go; its log rows stay (history)."""
        device = self.device(product_key, device_name)
        if device is None:
            raise RegistryError("no device %s/%s" % (product_key, device_name))
        self.db.execute("DELETE FROM tokens WHERE iot_id = ?", (device["iotId"],))
        self.db.execute(
            "DELETE FROM devices WHERE product_key = ? AND device_name = ?",
            (product_key, device_name),
        )
        return device

    def set_online(self, product_key, device_name, client_id, ip):
        t = now_ms()
        self.db.execute(
            "UPDATE devices SET state = 'online', client_id = ?, ip = ?, last_online_ms = ?,"
            " activated_ms = COALESCE(activated_ms, ?) WHERE product_key = ? AND device_name = ?",
            (client_id, ip, t, t, product_key, device_name),
        )

    def set_offline(self, product_key, device_name):
        self.db.execute(
            "UPDATE devices SET state = 'offline' WHERE product_key = ? AND device_name = ?"
            " AND state = 'online'",
            (product_key, device_name),
        )

    def reset_online(self):
        """At server start nobody is connected: online devices become offline."""
        self.db.execute("UPDATE devices SET state = 'offline' WHERE state = 'online'")

    def merge_properties(self, product_key, device_name, values: dict):
        """Store the latest property values: ``{identifier: {"value": v, "time": ms}}``."""
        device = self.device(product_key, device_name)
        if device is None:
            return None
        props = device["properties"]
        props.update(values)
        self.db.execute(
            "UPDATE devices SET properties = ? WHERE product_key = ? AND device_name = ?",
            (json.dumps(props, ensure_ascii=False), product_key, device_name),
        )
        return props

    def set_firmware_version(self, product_key, device_name, version):
        self.db.execute(
            "UPDATE devices SET firmware_version = ? WHERE product_key = ? AND device_name = ?",
            (version, product_key, device_name),
        )

    # pre-registration-free dynamic registration (reference §3.2) --------------------------------

    def issue_device_token(self, product_key, device_name):
        """Create the device if needed and give it a deviceToken and clientId (regnwl)."""
        if self.device(product_key, device_name) is None:
            self.add_device(product_key, device_name, with_secret=False)
        client_id = "%s.%s" % (product_key, device_name)
        token = secrets.token_hex(16)
        self.db.execute(
            "UPDATE devices SET device_token = ?, nwl_client_id = ?"
            " WHERE product_key = ? AND device_name = ?",
            (token, client_id, product_key, device_name),
        )
        return client_id, token

    # custom topic classes ---------------------------------------------------------------------

    def add_topic_class(self, product_key, name, perm):
        self._require_product(product_key)
        check_topic_class(name)
        if perm not in PERMS:
            raise RegistryError("permission must be one of %s" % ", ".join(PERMS))
        if perm != "sub" and ("+" in name or "#" in name):
            raise RegistryError("wildcards are allowed only in subscribe classes (§4.1)")
        self.db.execute(
            "INSERT OR REPLACE INTO topic_classes VALUES (?, ?, ?)", (product_key, name, perm)
        )
        return {"productKey": product_key, "topic": _class_topic(product_key, name), "perm": perm}

    def topic_classes(self, product_key):
        rows = self.db.execute(
            "SELECT name, perm FROM topic_classes WHERE product_key = ? ORDER BY name",
            (product_key,),
        )
        return [(row["name"], row["perm"]) for row in rows]

    # HTTPS-auth tokens (reference §2) ---------------------------------------------------------

    def issue_token(self, product_key, device_name, ttl_s=TOKEN_TTL_S):
        device = self.device(product_key, device_name)
        token = secrets.token_hex(16)
        t = now_ms()
        self.db.execute("DELETE FROM tokens WHERE expires_ms < ?", (t,))
        self.db.execute(
            "INSERT INTO tokens VALUES (?, ?, ?)", (token, device["iotId"], t + ttl_s * 1000)
        )
        return device["iotId"], token

    def token_device(self, iot_id, iot_token):
        """The device of a valid (unexpired) iotId/iotToken pair, else None."""
        row = self.db.execute(
            "SELECT expires_ms FROM tokens WHERE iot_token = ? AND iot_id = ?",
            (iot_token, iot_id),
        ).fetchone()
        if row is None or row["expires_ms"] < now_ms():
            return None
        return self.device_by_iot_id(iot_id)

    # message log ------------------------------------------------------------------------------

    def log(self, kind, product_key, device_name, topic, content, status, msg_id=None):
        """Append one log row and hand it to the live listeners; returns the row."""
        if isinstance(content, (dict, list)):
            content = json.dumps(content, ensure_ascii=False)
        row = {
            "time": now_ms(),
            "messageId": msg_id or message_id(),
            "productKey": product_key,
            "deviceName": device_name,
            "type": kind,
            "topic": topic,
            "content": content,
            "status": str(status),
        }
        cur = self.db.execute(
            "INSERT INTO messages (time_ms, message_id, product_key, device_name, type, topic,"
            " content, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["time"],
                row["messageId"],
                product_key,
                device_name,
                kind,
                topic,
                content,
                row["status"],
            ),
        )
        row["seq"] = cur.lastrowid
        self._inserted += 1
        if self._inserted % 1000 == 0:
            self.db.execute("DELETE FROM messages WHERE seq <= ?", (row["seq"] - LOG_KEEP,))
        for listener in list(self.listeners):
            try:
                listener(row)
            except Exception:  # a broken log viewer must not break message handling
                self.listeners.remove(listener)
        return row

    def messages(self, product_key=None, device_name=None, limit=100, after_seq=0):
        """The last ``limit`` log rows (oldest first), optionally of one device."""
        sql, args = "SELECT * FROM messages WHERE seq > ?", [after_seq]
        if product_key:
            sql += " AND product_key = ?"
            args.append(product_key)
        if device_name:
            sql += " AND device_name = ?"
            args.append(device_name)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        rows = [_message(row) for row in self.db.execute(sql, args)]
        rows.reverse()
        return rows

    def search_messages(self, filters: dict, limit=100):
        """The last ``limit`` log rows (oldest first) that ``message_matches(row, filters)``."""
        sql, args = "SELECT * FROM messages WHERE 1", []
        for key, value in filters.items():
            if value in (None, ""):
                continue
            if key not in _FILTER_SQL:
                raise RegistryError("unknown log filter %r" % key)
            sql += " AND " + _FILTER_SQL[key]
            args += [value] * _FILTER_SQL[key].count("?")
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        rows = [_message(row) for row in self.db.execute(sql, args)]
        rows.reverse()
        return rows

    @property
    def things(self):
        """The thing-model store (TSL, property history, desired values) on this connection."""
        store = self.__dict__.get("_thing_store")
        if store is None:
            from tools.cloud.thingstore import ThingStore

            store = self.__dict__["_thing_store"] = ThingStore(self)
        return store


# Filters of the log search (日志服务): the SQL condition of each and, in ``message_matches``,
# the same test on a live row. ``text`` is a case-sensitive substring of the topic or content.
_FILTER_SQL = {
    "productKey": "product_key = ?",
    "deviceName": "device_name = ?",
    "type": "type = ?",
    "status": "status = ?",
    "messageId": "message_id = ?",
    "topic": "topic = ?",
    "since": "time_ms >= ?",
    "until": "time_ms <= ?",
    "text": "(instr(COALESCE(topic, ''), ?) > 0 OR instr(COALESCE(content, ''), ?) > 0)",
}


def message_matches(row: dict, filters: dict) -> bool:
    """True if the log ``row`` passes ``filters`` (as ``Registry.search_messages`` does)."""
    for key, value in filters.items():
        if value in (None, ""):
            continue
        if key == "since":
            ok = row["time"] >= int(value)
        elif key == "until":
            ok = row["time"] <= int(value)
        elif key == "text":
            ok = value in (row["topic"] or "") or value in (row["content"] or "")
        elif key in _FILTER_SQL:
            ok = row[key] == str(value)
        else:
            raise RegistryError("unknown log filter %r" % key)
        if not ok:
            return False
    return True


def _class_topic(product_key, name):
    return "/%s/${deviceName}/user/%s" % (product_key, name)


def _product(row):
    return {
        "productKey": row["product_key"],
        "name": row["name"],
        "productSecret": row["product_secret"],
        "dynamicRegister": bool(row["dynamic_register"]),
        "created": row["created_ms"],
    }


def device_status(device) -> str:
    """The console status: disabled, or inactive / online / offline."""
    return STATUS_DISABLED if not device["enabled"] else device["state"]


def _device(row):
    return {
        "productKey": row["product_key"],
        "deviceName": row["device_name"],
        "deviceSecret": row["device_secret"],
        "iotId": row["iot_id"],
        "enabled": bool(row["enabled"]),
        "state": row["state"],
        "properties": json.loads(row["properties"]),
        "firmwareVersion": row["firmware_version"],
        "clientId": row["client_id"],
        "ip": row["ip"],
        "nwlClientId": row["nwl_client_id"],
        "deviceToken": row["device_token"],
        "created": row["created_ms"],
        "activated": row["activated_ms"],
        "lastOnline": row["last_online_ms"],
    }


def public_device(device) -> dict:
    """A device record without secrets, with its console status (for list/JSON output)."""
    return {
        "productKey": device["productKey"],
        "deviceName": device["deviceName"],
        "status": device_status(device),
        "properties": device["properties"],
        "firmwareVersion": device["firmwareVersion"],
        "clientId": device["clientId"],
        "ip": device["ip"],
        "created": device["created"],
        "activated": device["activated"],
        "lastOnline": device["lastOnline"],
    }


def _message(row):
    return {
        "seq": row["seq"],
        "time": row["time_ms"],
        "messageId": row["message_id"],
        "productKey": row["product_key"],
        "deviceName": row["device_name"],
        "type": row["type"],
        "topic": row["topic"],
        "content": row["content"],
        "status": row["status"],
    }
