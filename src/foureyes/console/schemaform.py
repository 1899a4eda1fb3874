"""Form inputs from an action's parameter schema (JSON Schema), and the form back to params.

Supported: an object schema whose properties are strings (with `enum`, `format: email` or
`date`, `maxLength`, `minLength`, `pattern`; long ones as a text area), integers, numbers,
booleans and arrays of strings (comma-separated). The connector's schema is
checked again when the request is decided (`decide.check_payload`), so this only turns text
into the right JSON types; anything it cannot turn is a BadInput naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from foureyes.errors import BadInput

__all__ = ["PREFIX", "Field", "fields", "parse"]

PREFIX = "param."


@dataclass(frozen=True)
class Field:
    """One input: `name` is the form field (PREFIX + property)."""

    name: str
    label: str
    kind: str  # text | email | date | number | checkbox | select | textarea | list
    required: bool
    value: str
    description: str = ""
    options: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    step: str = "any"


LONG_TEXT = 500  # strings that may be longer than this get a text area


def _type(spec: Mapping[str, Any]) -> str | None:
    """The property's JSON type; of a union with null (`["string", "null"]`), the other one."""
    typ = spec.get("type")
    if isinstance(typ, list):
        others = [t for t in typ if t != "null"]
        return str(others[0]) if len(others) == 1 else None
    return None if typ is None else str(typ)


def _properties(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties", {})
    return props if isinstance(props, Mapping) else {}


def fields(schema: Mapping[str, Any], values: Mapping[str, Any] | None = None) -> list[Field]:
    """The inputs for `schema`, filled with `values` (the params given so far)."""
    values = values or {}
    required = set(schema.get("required", []) or [])
    out: list[Field] = []
    for prop, given_spec in _properties(schema).items():
        spec = given_spec if isinstance(given_spec, Mapping) else {}
        given = values.get(prop)
        kind = "text"
        options: tuple[str, ...] = ()
        step = "any"
        typ = _type(spec)
        if "enum" in spec:
            kind, options = "select", tuple(str(v) for v in spec["enum"] if v is not None)
        elif typ == "boolean":
            kind = "checkbox"
        elif typ in ("integer", "number"):
            kind, step = "number", "1" if typ == "integer" else "any"
        elif typ == "array":
            kind = "list"
        elif spec.get("format") in ("email", "date"):
            kind = str(spec["format"])
        elif int(spec.get("maxLength", 0) or 0) > LONG_TEXT:
            kind = "textarea"
        if given is None:
            text = ""
        elif given is True:
            text = "on"
        elif isinstance(given, list | tuple):
            text = ", ".join(str(v) for v in given)
        else:
            text = str(given)
        out.append(
            Field(
                name=PREFIX + prop,
                label=str(spec.get("title") or prop.replace("_", " ")),
                kind=kind,
                required=prop in required,
                value=text,
                description=str(spec.get("description", "")),
                options=options,
                min_length=spec.get("minLength"),
                max_length=spec.get("maxLength"),
                pattern=spec.get("pattern"),
                step=step,
            )
        )
    return out


def parse(schema: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The params from the form's `param.*` fields, typed by `schema`. Empty optional fields
    are left out; unknown `param.*` fields are refused."""
    props = _properties(schema)
    params: dict[str, Any] = {}
    for key in form:
        if key.startswith(PREFIX) and key[len(PREFIX) :] not in props:
            raise BadInput(f"{key[len(PREFIX) :]!r} is not a parameter of this action")
    for prop, given_spec in props.items():
        spec = given_spec if isinstance(given_spec, Mapping) else {}
        raw = form.get(PREFIX + prop)
        typ = _type(spec)
        if typ == "boolean":
            params[prop] = raw in ("on", "true", "1")
            continue
        if raw is None or raw.strip() == "":
            continue
        if "\n" not in raw:  # a text area's lines (a policy) are kept as written
            raw = raw.strip()
        if typ == "array":
            params[prop] = [item.strip() for item in raw.split(",") if item.strip()]
        elif typ == "integer":
            try:
                params[prop] = int(raw)
            except ValueError:
                raise BadInput(f"{prop}: {raw!r} is not a whole number") from None
        elif typ == "number":
            try:
                params[prop] = float(raw)
            except ValueError:
                raise BadInput(f"{prop}: {raw!r} is not a number") from None
        else:
            params[prop] = raw
    return params
