"""Device configuration: load ``config.json`` and validate it against one table.

Every field has a type, a default (``_REQUIRED`` when it has none) and an optional check. A problem
raises ``ConfigError`` naming the field, e.g. ``config.json: keepalive_s: must be 30..1200``. The
loaded configuration is a plain dict holding every field of the table, defaults filled in.
"""

import json

_REQUIRED = object()
_AUTH_MODES = ("direct", "http", "dynreg")
_SIGN_METHODS = ("hmacmd5", "hmacsha1", "hmacsha256")


class ConfigError(ValueError):
    """A missing or invalid configuration field; ``field`` names it (dotted for nested ones)."""

    def __init__(self, field: str, message: str):
        super().__init__("config.json: " + field + ": " + message)
        self.field = field


def _one_of(choices):
    def check(value):
        return None if value in choices else "must be one of " + ", ".join(choices)

    return check


def _between(low, high):
    def check(value):
        return None if low <= value <= high else "must be %d..%d" % (low, high)

    return check


def _ascii_token(value):
    # Keys and names end up in AT command arguments and HMAC input: printable ASCII, no quotes.
    for ch in value:
        if not " " < ch <= "~" or ch in '"\\':
            return "must be printable ASCII without spaces, quotes or backslashes"
    return None


# field: (type, default, check). Region and endpoint select the MQTT host (reference §1.1).
_FIELDS = {
    "product_key": (str, _REQUIRED, _ascii_token),
    "device_name": (str, "", _ascii_token),  # empty: the module's IMEI
    "device_secret": (str, "", _ascii_token),
    "product_secret": (str, "", _ascii_token),
    "auth": (str, "direct", _one_of(_AUTH_MODES)),
    "region": (str, "cn-shanghai", _ascii_token),
    "endpoint": (str, "", _ascii_token),  # instance endpoint; overrides region
    "port": (int, 1883, _between(1, 65535)),
    "tls": (bool, True, None),
    "signmethod": (str, "hmacsha256", _one_of(_SIGN_METHODS)),
    "keepalive_s": (int, 300, _between(30, 1200)),  # reference §1.5
    "apn": (str, "", None),
    "telemetry_interval_s": (int, 60, _between(5, 86400)),
    "echo_user_get": (bool, True, None),
    "log_level": (str, "info", _one_of(("debug", "info", "warning", "error"))),
    "uart": (dict, {}, None),
    "pins": (dict, {}, None),
}

# Nested sections: board defaults fill what is not given (firmware/boards/*).
_SECTIONS = {
    "uart": {
        "id": (int, None, None),
        "tx": (int, None, None),
        "rx": (int, None, None),
        "baud": (int, 115200, _between(9600, 921600)),
        "url": (str, "", None),  # unix port: tcp://host:port or a pty path
    },
    "pins": {
        "pwrkey": (int, None, None),
        "led": (int, None, None),
    },
}


def _check_field(name, value, spec):
    kind, _default, check = spec
    if value is None and _default is None:
        return  # optional board-dependent value left to the board module
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(name, kind.__name__ + " expected")
    problem = check(value) if check else None
    if problem:
        raise ConfigError(name, problem)


def _fill(table, given, prefix):
    result = {}
    for name in given:
        if name not in table:
            raise ConfigError(prefix + name, "unknown field")
    for name, spec in table.items():
        value = given.get(name, spec[1])
        if value is _REQUIRED:
            raise ConfigError(prefix + name, "required")
        _check_field(prefix + name, value, spec)
        result[name] = value
    return result


def validate(raw) -> dict:
    """Return the complete configuration for ``raw`` (a dict), or raise ``ConfigError``."""
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "a JSON object expected")
    config = _fill(_FIELDS, raw, "")
    for section, table in _SECTIONS.items():
        config[section] = _fill(table, config[section], section + ".")
    mode = config["auth"]
    if mode in ("direct", "http") and not config["device_secret"]:
        raise ConfigError("device_secret", "required for auth " + mode)
    if mode == "dynreg" and not config["product_secret"]:
        raise ConfigError("product_secret", "required for auth dynreg")
    if mode == "http" and not config["tls"]:
        raise ConfigError("tls", "auth http connects over TLS only (reference §2)")
    return config


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
