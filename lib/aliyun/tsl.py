"""Thing-model checks on the device, from the table ``tools.tsl_table`` generates from the TSL.

``Model(table)`` takes the generated module (or any object with its ``P``, ``RO``, ``S``, ``E``):
properties, read-only properties, services ``(sync, inputs, outputs)`` and events. A value spec
is a tuple led by its kind (``i`` int, ``f`` float/double, ``e`` enum, ``b`` bool, ``t`` text,
``d`` date, ``s`` struct, ``a`` array; see ``tools/tsl_table.py``).

Every check raises ``AlinkError`` 460 whose message names the field and the rule (``Temp: out of
range -40.0..120.0``), so a downlink is refused before the application sees it and an uplink
before it leaves. An int given for a float is taken as that float (JSON then carries ``.0``, as
the platform wants).
"""

from aliyun.alink import CODE_PARAM_ERROR, AlinkError

_INT_MIN = -2147483648
_INT_MAX = 2147483647


def _error(path, rule) -> AlinkError:
    return AlinkError(CODE_PARAM_ERROR, path + ": " + rule)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(value, low, high, path):
    if (low is not None and value < low) or (high is not None and value > high):
        raise _error(path, "out of range %s..%s" % (_bound(low), _bound(high)))


def _bound(number) -> str:
    return "" if number is None else str(number)


def check(spec: tuple, value, path: str):
    """Check ``value`` against ``spec``; return it (an int for a float spec becomes a float)."""
    kind = spec[0]
    if kind == "i":
        if not _is_int(value):
            raise _error(path, "int expected")
        low, high = spec[1], spec[2]
        _range(value, _INT_MIN if low is None else low, _INT_MAX if high is None else high, path)
    elif kind == "f":
        if _is_int(value):
            value = float(value)
        if not isinstance(value, float):
            raise _error(path, "float expected")
        _range(value, spec[1], spec[2], path)
    elif kind == "e" or kind == "b":
        allowed = spec[1] if kind == "e" else (0, 1)
        if not _is_int(value) or value not in allowed:
            raise _error(path, "value must be one of " + ", ".join(str(v) for v in allowed))
    elif kind == "t":
        if not isinstance(value, str):
            raise _error(path, "text expected")
        if len(value) > spec[1]:
            raise _error(path, "text longer than %d" % spec[1])
    elif kind == "d":
        if not isinstance(value, str) or not value or not value.isdigit():
            raise _error(path, "date expected (UTC ms as a string)")
    elif kind == "s":
        return _struct(spec[1], value, path)
    elif kind == "a":
        if not isinstance(value, list):
            raise _error(path, "array expected")
        if len(value) > spec[1]:
            raise _error(path, "array longer than %d" % spec[1])
        return [check(spec[2], item, "%s[%d]" % (path, i)) for i, item in enumerate(value)]
    else:
        raise _error(path, "unknown kind " + str(kind))
    return value


def _struct(members: dict, value, path: str) -> dict:
    if not isinstance(value, dict):
        raise _error(path, "struct expected")
    out = {}
    for name in value:
        spec = members.get(name)
        if spec is None:
            raise _error(path, "struct has no member " + name)
        out[name] = check(spec, value[name], path + "." + name)
    return out


def check_params(specs: dict, params, what: str) -> dict:
    """Check an object of named values against ``specs``; return the checked copy."""
    if not isinstance(params, dict):
        raise _error(what, "params must be an object")
    out = {}
    for name in params:
        spec = specs.get(name)
        if spec is None:
            raise _error(name, "not in the thing model (" + what + ")")
        out[name] = check(spec, params[name], name)
    return out


class Model:
    """The checks of one product's thing model (``table``: the generated module)."""

    def __init__(self, table):
        self.properties = table.P
        self.read_only = table.RO
        self.services = table.S
        self.events = table.E

    def check_set(self, params) -> dict:
        """A property set: known, writable properties with valid values."""
        accepted = check_params(self.properties, params, "property set")
        for name in accepted:
            if name in self.read_only:
                raise _error(name, "read-only")
        return accepted

    def check_post(self, params) -> dict:
        """A property post, ``{"P": v}`` or ``{"P": {"value": v, "time": ms}}`` items."""
        if not isinstance(params, dict):
            raise _error("property post", "params must be an object")
        out = {}
        for name in params:
            item = params[name]
            spec = self.properties.get(name)
            if spec is None:
                raise _error(name, "not in the thing model (property post)")
            if isinstance(item, dict) and "value" in item and spec[0] != "s":
                out[name] = dict(item, value=check(spec, item["value"], name))
            else:
                out[name] = check(spec, item, name)
        return out

    def service(self, identifier: str) -> tuple:
        """``(sync, inputs, outputs)`` of a service; ``AlinkError`` if the model has none."""
        found = self.services.get(identifier)
        if found is None:
            raise _error(identifier, "no such service in the thing model")
        return found

    def check_input(self, identifier: str, params) -> dict:
        return check_params(self.service(identifier)[1], params, "service " + identifier)

    def check_output(self, identifier: str, data) -> dict:
        return check_params(self.service(identifier)[2], data or {}, identifier + " output")

    def check_event(self, identifier: str, values) -> dict:
        specs = self.events.get(identifier)
        if specs is None:
            raise _error(identifier, "no such event in the thing model")
        return check_params(specs, values, "event " + identifier)
