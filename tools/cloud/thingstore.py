"""What the cloud keeps of the thing model, next to the registry (same SQLite file).

* the product's TSL (as imported: the document is exported unchanged);
* property history: every accepted post, one row per property and time (``property --history``);
* desired properties (期望属性值): ``{identifier: {"value", "version", "time"}}`` per device, the
  version counting up per identifier from 1; a device's ``desired/delete`` removes an entry only
  when the version it names is the current one (a newer desired value survives).
"""

import json

from tools.cloud import tsl

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tsl (
    product_key TEXT PRIMARY KEY REFERENCES products(product_key),
    document TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS property_history (
    product_key TEXT NOT NULL,
    device_name TEXT NOT NULL,
    identifier TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS property_history_device
    ON property_history (product_key, device_name, identifier, time_ms);
CREATE TABLE IF NOT EXISTS desired (
    product_key TEXT NOT NULL,
    device_name TEXT NOT NULL,
    identifier TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (product_key, device_name, identifier)
);
"""
HISTORY_KEEP = 1000  # rows kept per device and property


class ThingStore:
    def __init__(self, registry):
        self.registry = registry
        self.db = registry.db
        self.db.executescript(_SCHEMA)
        self._models = {}  # productKey -> (document text, compiled model)

    # TSL ----------------------------------------------------------------------------------------

    def import_tsl(self, product_key, text, now_ms) -> dict:
        """Check and store a TSL document; returns the compiled model."""
        if self.registry.product(product_key) is None:
            raise tsl.TslError("no product %s" % product_key)
        _doc, model = tsl.load(text)
        self.db.execute(
            "INSERT OR REPLACE INTO tsl (product_key, document, updated_ms) VALUES (?, ?, ?)",
            (product_key, text, now_ms),
        )
        self._models[product_key] = (text, model)
        return model

    def export_tsl(self, product_key):
        row = self.db.execute(
            "SELECT document FROM tsl WHERE product_key = ?", (product_key,)
        ).fetchone()
        return row["document"] if row else None

    def model(self, product_key):
        """The compiled TSL of a product, or None when none was imported."""
        text = self.export_tsl(product_key)
        if text is None:
            return None
        cached = self._models.get(product_key)
        if cached is None or cached[0] != text:
            cached = self._models[product_key] = (text, tsl.load(text)[1])
        return cached[1]

    # property history ---------------------------------------------------------------------------

    def record(self, product_key, device_name, values: dict) -> None:
        """Append ``{identifier: {"value", "time"}}`` to the history."""
        rows = [
            (product_key, device_name, k, int(v["time"]), json.dumps(v["value"]))
            for k, v in values.items()
        ]
        self.db.executemany(
            "INSERT INTO property_history (product_key, device_name, identifier, time_ms, value)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        for identifier in values:
            self.db.execute(
                "DELETE FROM property_history WHERE rowid IN (SELECT rowid FROM property_history"
                " WHERE product_key = ? AND device_name = ? AND identifier = ?"
                " ORDER BY time_ms DESC LIMIT -1 OFFSET ?)",
                (product_key, device_name, identifier, HISTORY_KEEP),
            )

    def history(self, product_key, device_name, identifier=None, limit=100) -> list:
        """Rows ``{"identifier", "time", "value"}``, oldest first (the last ``limit``)."""
        sql = "SELECT * FROM property_history WHERE product_key = ? AND device_name = ?"
        args = [product_key, device_name]
        if identifier:
            sql += " AND identifier = ?"
            args.append(identifier)
        sql += " ORDER BY time_ms DESC, rowid DESC LIMIT ?"
        args.append(limit)
        rows = [
            {"identifier": r["identifier"], "time": r["time_ms"], "value": json.loads(r["value"])}
            for r in self.db.execute(sql, args)
        ]
        rows.reverse()
        return rows

    # desired properties ----------------------------------------------------------------------

    def set_desired(self, product_key, device_name, values: dict, now_ms) -> dict:
        """Store desired values; returns ``{identifier: {"value", "version"}}`` as stored."""
        out = {}
        for identifier, value in values.items():
            row = self.db.execute(
                "SELECT version FROM desired WHERE product_key = ? AND device_name = ?"
                " AND identifier = ?",
                (product_key, device_name, identifier),
            ).fetchone()
            version = (row["version"] if row else 0) + 1
            self.db.execute(
                "INSERT OR REPLACE INTO desired VALUES (?, ?, ?, ?, ?, ?)",
                (product_key, device_name, identifier, json.dumps(value), version, now_ms),
            )
            out[identifier] = {"value": value, "version": version}
        return out

    def desired(self, product_key, device_name, identifiers=None) -> dict:
        rows = self.db.execute(
            "SELECT * FROM desired WHERE product_key = ? AND device_name = ?",
            (product_key, device_name),
        )
        return {
            r["identifier"]: {"value": json.loads(r["value"]), "version": r["version"]}
            for r in rows
            if not identifiers or r["identifier"] in identifiers
        }

    def delete_desired(self, product_key, device_name, versions: dict) -> list:
        """Delete ``{identifier: {"version": n}}`` where n is current; returns what went."""
        gone = []
        for identifier, item in versions.items():
            version = item.get("version") if isinstance(item, dict) else None
            sql = "DELETE FROM desired WHERE product_key = ? AND device_name = ?"
            sql += " AND identifier = ?"
            args = [product_key, device_name, identifier]
            if version is not None:
                sql += " AND version = ?"
                args.append(version)
            if self.db.execute(sql, args).rowcount:
                gone.append(identifier)
        return gone
