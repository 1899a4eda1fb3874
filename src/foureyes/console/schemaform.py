"""Form inputs from an action's parameter schema (JSON Schema), and the form back to params.

Supported: an object schema whose properties are strings (with `enum`, `format: email`,
`maxLength`, `minLength`, `pattern`), integers, numbers and booleans. The connector's schema is
checked again when the request is submitted (`submit._check_params`), so this only turns text
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
    kind: str  # text | email | number | checkbox | select
    required: bool
    value: str
    description: str = ""
    options: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    step: str = "any"


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
        typ = spec.get("type")
        if "enum" in spec:
            kind, options = "select", tuple(str(v) for v in spec["enum"])
        elif typ == "boolean":
            kind = "checkbox"
        elif typ in ("integer", "number"):
            kind, step = "number", "1" if typ == "integer" else "any"
        elif spec.get("format") == "email":
            kind = "email"
        text = "" if given is None else ("on" if given is True else str(given))
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
        typ = spec.get("type")
        if typ == "boolean":
            params[prop] = raw in ("on", "true", "1")
            continue
        if raw is None or raw.strip() == "":
            continue
        raw = raw.strip()
        if typ == "integer":
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
