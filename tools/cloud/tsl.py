"""The thing model (TSL, 物模型) of a product, as the Aliyun console exports it, and the checks
the platform makes against it.

A TSL document (console: 产品 → 功能定义 → 物模型 TSL → 导出)::

    {"schema": "…", "profile": {"productKey": "…", "version": "1.0"},
     "properties": [{"identifier", "name", "accessMode": "rw"|"r", "required",
                     "dataType": {"type": …, "specs": …}}],
     "events": [{"identifier", "name", "type": "info"|"alert"|"error", "method",
                 "outputData": [{"identifier", "name", "dataType"}]}],
     "services": [{"identifier", "name", "callType": "async"|"sync", "method",
                   "inputData": […], "outputData": […]}]}

``dataType.type`` and its ``specs`` (numbers are strings in the export):

* ``int`` / ``float`` / ``double``: ``{"min", "max", "step", "unit", "unitName"}``;
* ``enum``: ``{"0": "name", "1": "name", …}`` (the keys are the values);
* ``bool``: ``{"0": "off", "1": "on"}`` (values 0 and 1);
* ``text``: ``{"length": "255"}`` (at most 10240);
* ``date``: ``{}`` (UTC milliseconds as a string);
* ``struct``: ``[{"identifier", "name", "dataType"}, …]``;
* ``array``: ``{"size": "10", "item": {"type": int|float|double|text|struct, "specs"}}``.

Value rules (reference §4.2 and the Alink doc): float and double values carry a decimal point
(``10.0``); bool is 0 or 1; ``step`` and ``unit`` describe the value and are not checked (the
console shows them). The console's own entries for property set/get and the property post event
(``set``, ``get``, ``post``) are recognised and skipped.
"""

import json

CODE_PARAM_ERROR = 460  # §4.4: empty, invalid or too many parameters
TYPES = ("int", "float", "double", "enum", "bool", "text", "date", "struct", "array")
ITEM_TYPES = ("int", "float", "double", "text", "struct")
TEXT_MAX = 10240
ARRAY_MAX = 512
_BUILTIN_SERVICES = ("set", "get")
_BUILTIN_EVENTS = ("post",)
INT32 = (-(2**31), 2**31 - 1)


class TslError(ValueError):
    """A TSL document that cannot be stored (import), or a value that breaks it (``code``)."""

    def __init__(self, message, code=CODE_PARAM_ERROR):
        super().__init__(message)
        self.code = code


# -- the document ------------------------------------------------------------------------------


def _identifier(item, where):
    ident = item.get("identifier") if isinstance(item, dict) else None
    if not isinstance(ident, str) or not ident or len(ident) > 50:
        raise TslError("%s: identifier missing or longer than 50" % where)
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in ident):
        raise TslError("%s: identifier %r: letters, digits and _" % (where, ident))
    return ident


def _number(specs, key, where, kind):
    raw = specs.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw) if kind == "int" else float(raw)
    except (TypeError, ValueError):
        raise TslError("%s: %s %r is no number" % (where, key, raw)) from None


def check_type(data_type, where, item=False) -> dict:
    """Check one ``dataType`` of the document; return it normalised (numbers as numbers)."""
    if not isinstance(data_type, dict):
        raise TslError("%s: dataType must be an object" % where)
    kind = data_type.get("type")
    allowed = ITEM_TYPES if item else TYPES
    if kind not in allowed:
        raise TslError("%s: type %r is not one of %s" % (where, kind, ", ".join(allowed)))
    specs = data_type.get("specs", {} if kind != "struct" else [])
    out = {"type": kind}
    if kind in ("int", "float", "double"):
        if not isinstance(specs, dict):
            raise TslError("%s: specs must be an object" % where)
        low, high = _number(specs, "min", where, kind), _number(specs, "max", where, kind)
        if low is not None and high is not None and low > high:
            raise TslError("%s: min %s > max %s" % (where, low, high))
        out.update(min=low, max=high, step=_number(specs, "step", where, kind))
        out["unit"] = specs.get("unit") or ""
    elif kind in ("enum", "bool"):
        if not isinstance(specs, dict) or not specs:
            raise TslError("%s: %s specs list the values" % (where, kind))
        try:
            values = sorted(int(k) for k in specs)
        except ValueError:
            raise TslError("%s: %s values must be integers" % (where, kind)) from None
        if kind == "bool" and not set(values) <= {0, 1}:
            raise TslError("%s: bool values are 0 and 1" % where)
        out["values"] = values
    elif kind == "text":
        length = _number(specs if isinstance(specs, dict) else {}, "length", where, "int")
        if length is None or not 0 < length <= TEXT_MAX:
            raise TslError("%s: text length must be 1..%d" % (where, TEXT_MAX))
        out["length"] = length
    elif kind == "struct":
        if not isinstance(specs, list) or not specs:
            raise TslError("%s: struct specs list its members" % where)
        members = {}
        for member in specs:
            name = _identifier(member, where + " member")
            path = where + "." + name
            members[name] = check_type(member.get("dataType"), path)
            if members[name]["type"] in ("struct", "array"):
                raise TslError("%s: a struct member is not a struct or array" % path)
        out["members"] = members
    elif kind == "array":
        size = _number(specs if isinstance(specs, dict) else {}, "size", where, "int")
        if size is None or not 0 < size <= ARRAY_MAX:
            raise TslError("%s: array size must be 1..%d" % (where, ARRAY_MAX))
        out["size"] = size
        out["item"] = check_type(specs.get("item"), where + "[]", item=True)
    return out


def _params(items, where) -> dict:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise TslError("%s: a list of parameters is expected" % where)
    out = {}
    for item in items:
        name = _identifier(item, where)
        out[name] = check_type(item.get("dataType"), "%s %s" % (where, name))
    return out


def compile_tsl(doc) -> dict:
    """Check a TSL document; return the model the checks use::

    {"properties": {id: {"type", …, "access": "rw"|"r"}},
     "services": {id: {"callType", "input": {…}, "output": {…}}},
     "events": {id: {"type", "output": {…}}}}
    """
    if not isinstance(doc, dict):
        raise TslError("a TSL document is a JSON object")
    model = {"properties": {}, "services": {}, "events": {}}
    for prop in doc.get("properties") or []:
        ident = _identifier(prop, "property")
        spec = check_type(prop.get("dataType"), "property " + ident)
        access = prop.get("accessMode", "rw")
        if access not in ("rw", "r"):
            raise TslError("property %s: accessMode must be rw or r" % ident)
        spec["access"] = access
        model["properties"][ident] = spec
    for service in doc.get("services") or []:
        ident = _identifier(service, "service")
        if ident in _BUILTIN_SERVICES:
            continue
        call = service.get("callType", "async")
        if call not in ("async", "sync"):
            raise TslError("service %s: callType must be async or sync" % ident)
        model["services"][ident] = {
            "callType": call,
            "input": _params(service.get("inputData"), "service %s input" % ident),
            "output": _params(service.get("outputData"), "service %s output" % ident),
        }
    for event in doc.get("events") or []:
        ident = _identifier(event, "event")
        if ident in _BUILTIN_EVENTS:
            continue
        model["events"][ident] = {
            "type": event.get("type", "info"),
            "output": _params(event.get("outputData"), "event %s output" % ident),
        }
    return model


def load(text) -> tuple:
    """``(document, model)`` of a TSL file's text; ``TslError`` if it is no valid TSL."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TslError("not JSON: %s" % exc) from None
    return doc, compile_tsl(doc)


# -- values ------------------------------------------------------------------------------------


def _fail(path, rule):
    raise TslError("%s: %s" % (path, rule))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_value(spec, value, path) -> None:
    """Check one value against its compiled ``spec``; ``TslError`` naming ``path`` and the rule."""
    kind = spec["type"]
    if kind == "int":
        if not _is_int(value):
            _fail(path, "int expected")
        _range(spec, value, path, INT32)
    elif kind in ("float", "double"):
        if not isinstance(value, float):
            _fail(path, "%s expected (with a decimal point, e.g. 10.0)" % kind)
        _range(spec, value, path, None)
    elif kind in ("enum", "bool"):
        if not _is_int(value) or value not in spec["values"]:
            _fail(path, "%s value must be one of %s" % (kind, spec["values"]))
    elif kind == "text":
        if not isinstance(value, str):
            _fail(path, "text expected")
        if len(value) > spec["length"]:
            _fail(path, "text longer than %d" % spec["length"])
    elif kind == "date":
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            _fail(path, "date expected (UTC milliseconds as a string)")
    elif kind == "struct":
        if not isinstance(value, dict):
            _fail(path, "struct (an object) expected")
        for name, member in value.items():
            if name not in spec["members"]:
                _fail(path, "struct has no member %s" % name)
            check_value(spec["members"][name], member, path + "." + name)
    elif kind == "array":
        if not isinstance(value, list):
            _fail(path, "array expected")
        if len(value) > spec["size"]:
            _fail(path, "array longer than %d" % spec["size"])
        for i, item in enumerate(value):
            check_value(spec["item"], item, "%s[%d]" % (path, i))


def _range(spec, value, path, limits):
    low, high = spec.get("min"), spec.get("max")
    if limits and low is None:
        low = limits[0]
    if limits and high is None:
        high = limits[1]
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(path, "out of range %s..%s" % (_show(low), _show(high)))


def _show(number):
    return "" if number is None else repr(number)


def check_params(specs: dict, params, what: str, require_all=False) -> None:
    """Check ``params`` (an object) against ``specs`` ``{identifier: spec}``."""
    if not isinstance(params, dict):
        raise TslError("%s: params must be an object" % what)
    for name, value in params.items():
        if name not in specs:
            raise TslError("%s: %s is not in the thing model" % (what, name))
        check_value(specs[name], value, name)
    if require_all:
        missing = [name for name in specs if name not in params]
        if missing:
            raise TslError("%s: missing %s" % (what, ", ".join(missing)))


def check_post(model, params: dict) -> None:
    """A property post: ``{"P": v}`` or ``{"P": {"value": v, "time": ms}}``."""
    values = {
        k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in params.items()
    }
    check_params(model["properties"], values, "property post")


def check_set(model, params: dict) -> None:
    """A property set: known, writable properties with valid values."""
    check_params(model["properties"], params, "property set")
    for name in params:
        if model["properties"][name]["access"] != "rw":
            raise TslError("property set: %s is read-only" % name)


def check_event(model, identifier: str, params) -> None:
    """An event post: ``params = {"value": {…}, "time": ms}`` (or the values directly)."""
    event = model["events"].get(identifier)
    if event is None:
        raise TslError("event %s is not in the thing model" % identifier)
    values = params.get("value", params) if isinstance(params, dict) else params
    check_params(event["output"], values, "event " + identifier)


def service(model, identifier: str) -> dict:
    found = model["services"].get(identifier)
    if found is None:
        raise TslError("service %s is not in the thing model" % identifier)
    return found


def check_service_input(model, identifier: str, params) -> dict:
    found = service(model, identifier)
    check_params(found["input"], params, "service " + identifier)
    return found


def units(model) -> dict:
    """``{property: unit}`` of the numeric properties that have one (the console's charts)."""
    return {k: v["unit"] for k, v in model["properties"].items() if v.get("unit")}
