"""A small JSON Schema (2020-12 subset) validator for request bodies and parameters.

The schemas that validate requests are the very ones published in the OpenAPI document, so
documentation and behaviour cannot drift. Only the keywords in `ENFORCED` are checked;
`check_supported` refuses a schema that uses any other validation keyword, so the document
never promises a rule the gateway does not apply.

The first problem found is reported, with the dotted path of the field at fault. Objects
are checked field by field in the order their properties are declared, which makes the
field named in an error stable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.api.errors import ApiError, invalid

Schema = Mapping[str, Any]

ENFORCED = frozenset({
    "type", "properties", "required", "additionalProperties", "enum", "minimum", "maximum",
    "exclusiveMinimum", "pattern", "minLength", "maxLength", "items", "maxItems",
    "minProperties",
})
ANNOTATIONS = frozenset({"description", "title", "example", "examples", "default", "format",
                         "readOnly", "deprecated"})
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})


def check_supported(schema: Schema, where: str = "schema") -> None:
    """Raise ValueError if `schema` uses a keyword this validator would silently ignore."""
    unknown = set(schema) - ENFORCED - ANNOTATIONS
    if unknown:
        raise ValueError(f"{where}: unsupported JSON Schema keyword(s) {sorted(unknown)}")
    for name in _type_list(schema):
        if name not in _TYPES:
            raise ValueError(f"{where}: unknown type {name!r}")
    for key, sub in schema.get("properties", {}).items():
        check_supported(sub, f"{where}.{key}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        check_supported(extra, f"{where}.*")
    if "items" in schema:
        check_supported(schema["items"], f"{where}[]")
    if "pattern" in schema:
        re.compile(schema["pattern"])


def validate(schema: Schema, value: Any, path: str = "") -> None:
    """Raise a 422 ApiError naming the first field of `value` that `schema` rejects."""
    types = _type_list(schema)
    if types and not any(_is_type(value, t) for t in types):
        raise invalid("field_type", f"{_name(path)} must be {_type_words(types)}, "
                      f"got {_json_type(value)}", path or None)
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        raise invalid("field_not_allowed", f"{_name(path)} must be one of {allowed}, "
                      f"got {value!r}", path or None)
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        _check_number(schema, value, path)
    elif isinstance(value, str):
        _check_string(schema, value, path)
    elif isinstance(value, dict):
        _check_object(schema, value, path)
    elif isinstance(value, list):
        _check_array(schema, value, path)


def _check_number(schema: Schema, value: float, path: str) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        raise invalid("field_out_of_range", f"{_name(path)} must be at least {low}, "
                      f"got {value}", path or None)
    if high is not None and value > high:
        raise invalid("field_out_of_range", f"{_name(path)} must be at most {high}, "
                      f"got {value}", path or None)
    above = schema.get("exclusiveMinimum")
    if above is not None and not value > above:
        raise invalid("field_out_of_range", f"{_name(path)} must be greater than {above}, "
                      f"got {value}", path or None)


def _check_string(schema: Schema, value: str, path: str) -> None:
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if shortest is not None and len(value) < shortest:
        raise invalid("field_format", f"{_name(path)} must have at least {shortest} "
                      "character(s)", path or None)
    if longest is not None and len(value) > longest:
        raise invalid("field_format", f"{_name(path)} must have at most {longest} "
                      "characters", path or None)
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, value):
        hint = schema.get("description", f"match {pattern}")
        raise invalid("field_format", f"{_name(path)} {value[:80]!r} is not valid: {hint}",
                      path or None)


def _check_object(schema: Schema, value: dict[str, Any], path: str) -> None:
    props: Mapping[str, Schema] = schema.get("properties", {})
    for key in value:
        if not isinstance(key, str):  # pragma: no cover - JSON keys are strings
            raise invalid("field_type", "object keys must be strings", path or None)
    for key in schema.get("required", ()):
        if key not in value:
            raise invalid("field_required", f"{_name(_join(path, key))} is required",
                          _join(path, key))
    extra = schema.get("additionalProperties", True)
    for key in value:
        if key not in props and extra is False:
            known = ", ".join(props) or "none"
            raise invalid("field_unknown", f"{_name(_join(path, key))} is not a known field "
                          f"(known: {known})", _join(path, key))
    least = schema.get("minProperties")
    if least is not None and len(value) < least:
        raise invalid("field_required", f"{_name(path)} must name at least {least} field(s)",
                      path or None)
    for key, sub in props.items():
        if key in value:
            validate(sub, value[key], _join(path, key))
    if isinstance(extra, Mapping):
        for key in value:
            if key not in props:
                validate(extra, value[key], _join(path, key))


def _check_array(schema: Schema, value: list[Any], path: str) -> None:
    most = schema.get("maxItems")
    if most is not None and len(value) > most:
        raise invalid("field_out_of_range", f"{_name(path)} may hold at most {most} items",
                      path or None)
    items = schema.get("items")
    if items is not None:
        for i, item in enumerate(value):
            validate(items, item, f"{path}[{i}]")


def coerce_param(schema: Schema, raw: str, name: str) -> Any:
    """A path or query parameter's text as the type its schema declares, then validated."""
    types = _type_list(schema)
    value: Any = raw
    if "integer" in types and "string" not in types:
        try:
            value = int(raw)
        except ValueError:
            raise invalid("field_type", f"{name} must be a whole number, got {raw[:40]!r}",
                          name) from None
    elif "boolean" in types and "string" not in types:
        if raw not in ("true", "false"):
            raise invalid("field_type", f"{name} must be true or false", name)
        value = raw == "true"
    try:
        validate(schema, value, name)
    except ApiError as exc:
        exc.field = name
        raise
    return value


def _type_list(schema: Schema) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    return False


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "object", "array"):
        if _is_type(value, name):
            return "null" if name == "null" else f"{'an' if name[0] in 'aeio' else 'a'} {name}"
    return type(value).__name__


def _type_words(types: list[str]) -> str:
    words = {"null": "null", "object": "an object", "array": "a list", "string": "a string",
             "integer": "a whole number", "number": "a number", "boolean": "true or false"}
    return " or ".join(words[t] for t in types)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(path: str) -> str:
    return f"field {path!r}" if path else "the request body"
