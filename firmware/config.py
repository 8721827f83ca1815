"""Device configuration: load ``config.json`` and validate it against one table.

Every field has a type, a default (``...`` when it has none: required) and an optional check. A
problem raises ``ConfigError`` naming the field, e.g. ``config.json: keepalive_s: must be
30..1200``. The loaded configuration is a plain dict holding every field of the table, defaults
filled in.
"""

import json


class ConfigError(ValueError):
    """A missing or invalid configuration field; ``field`` names it (dotted for nested ones)."""

    def __init__(self, field: str, message: str):
        super().__init__("config.json: " + field + ": " + message)
        self.field = field


def _fill(table: dict, given, prefix: str) -> dict:
    """``given`` checked against ``table``, defaults filled in; ``prefix`` names a section.

    A check is ``(low, high)`` for an int, the allowed values (a tuple) or True (a printable
    ASCII token) for a str, the table of a nested section for a dict.
    """
    for name in given:
        if name not in table:
            raise ConfigError(prefix + name, "unknown field")
    result = {}
    for name in table:
        kind, default, check = table[name]
        field = prefix + name
        value = given.get(name, default)
        problem = None
        if value is ...:
            problem = "required"
        elif value is None and default is None:
            pass  # an optional board-dependent value left to the board module
        elif kind is int and isinstance(value, bool) or not isinstance(value, kind):
            problem = kind.__name__ + " expected"
        elif kind is dict:
            value = _fill(check, value, field + ".")
        elif check is True:
            # Keys and names end up in AT command arguments and HMAC input.
            for ch in value:  # pyright: ignore[reportOptionalIterable] - a str here
                if not " " < ch <= "~" or ch in '"\\':
                    problem = "must be printable ASCII without spaces, quotes or backslashes"
        elif kind is int and check and not check[0] <= value <= check[1]:
            problem = "must be %d..%d" % check
        elif kind is str and check and value not in check:
            problem = "must be one of " + ", ".join(check)
        if problem:
            raise ConfigError(field, problem)
        result[name] = value
    return result


def _table() -> dict:
    # field: (type, default, check). Region and endpoint select the MQTT host (reference §1.1).
    # The uart and pins sections: board defaults fill what is not given (firmware/boards/*).
    return {
        "product_key": (str, ..., True),
        "device_name": (str, "", True),  # empty: the module's IMEI
        "device_secret": (str, "", True),
        "product_secret": (str, "", True),
        "auth": (str, "direct", ("direct", "http", "dynreg")),
        "region": (str, "cn-shanghai", True),
        "endpoint": (str, "", True),  # instance endpoint; overrides region
        "port": (int, 1883, (1, 65535)),
        "tls": (bool, True, None),
        "signmethod": (str, "hmacsha256", ("hmacmd5", "hmacsha1", "hmacsha256")),
        "keepalive_s": (int, 300, (30, 1200)),  # reference §1.5
        "apn": (str, "", None),
        "telemetry_interval_s": (int, 60, (1, 86400)),  # = ReportInterval in tsl.json
        "echo_user_get": (bool, True, None),
        "log_level": (str, "info", ("debug", "info", "warning", "error")),
        "ota": (bool, False, None),  # updates over the air (README: Updating devices)
        "ota_trial_s": (int, 120, (10, 86400)),  # an update must stay online this long
        "uart": (
            dict,
            {},
            {
                "id": (int, None, None),
                "tx": (int, None, None),
                "rx": (int, None, None),
                "baud": (int, 115200, (9600, 921600)),
                "url": (str, "", None),  # unix port: tcp://host:port or a pty path
            },
        ),
        "pins": (dict, {}, {"pwrkey": (int, None, None), "led": (int, None, None)}),
        # Property posts kept on flash until sent (aliyun.readings): off by default, as its
        # code needs about 16 KB more heap on the unix port (README "Offline storage");
        # max_bytes: 16 littlefs blocks.
        "store": (
            dict,
            {},
            {"enabled": (bool, False, None), "max_bytes": (int, 65536, (8192, 16777216))},
        ),
    }


def validate(raw) -> dict:
    """Return the complete configuration for ``raw`` (a dict), or raise ``ConfigError``."""
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "a JSON object expected")
    config = _fill(_table(), raw, "")
    mode = config["auth"]
    if mode != "dynreg" and not config["device_secret"]:
        raise ConfigError("device_secret", "required for auth " + mode)
    if mode == "dynreg" and not config["product_secret"]:
        raise ConfigError("product_secret", "required for auth dynreg")
    if mode == "http" and not config["tls"]:
        raise ConfigError("tls", "auth http connects over TLS only (reference §2)")
    _carryable(config)
    return config


def _carryable(config: dict) -> None:
    """What validates must go into the module's commands at every bring-up: checked here by
    the driver's own rules (air724.text.quote), so no bring-up refuses it later."""
    import sys

    from air724.text import APN_MAX, HOST_MAX, quote
    from atmodem.errors import ArgumentError

    loaded = "aliyun.sign" in sys.modules
    from aliyun import unload
    from aliyun.sign import mqtt_host

    host = config["endpoint"] or mqtt_host(config["product_key"], config["region"])
    if not loaded:  # the bring-up imports it when it signs; its RAM is the session's now
        unload(("aliyun.sign", "aliyun.digest"))
    field = "region" if not config["endpoint"] else "endpoint"
    for name, value, limit in (("apn", config["apn"], APN_MAX), (field, host, HOST_MAX)):
        try:
            quote(value, "the MQTT host" if name != "apn" else "the APN", limit)
        except ArgumentError as exc:
            raise ConfigError(name, str(exc)) from None


def load(path: str = "config.json") -> dict:
    """Read and validate ``path``; ``ConfigError`` names the field (or the file) at fault."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("(file)", "cannot read " + path) from None
    try:
        raw = json.loads(text)
    except ValueError:
        raise ConfigError("(file)", "not valid JSON") from None
    return validate(raw)
