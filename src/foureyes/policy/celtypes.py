"""The types that policy conditions are checked against.

Every variable a condition may use (`staff`, `account`, `action`, `params`, `context`, `approver`,
`requester`) has a declared type, so that a condition naming an attribute that does not exist, or
comparing a number with a string, is refused when the policy loads rather than in production.
Each type also knows a sample value, used to evaluate every condition once at load time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class CelType:
    """Base of the condition type system. Instances are immutable and compare by value."""

    name: str = "dyn"

    def sample(self) -> object:
        """A representative value of this type (never null), for load-time evaluation."""
        raise NotImplementedError


@dataclass(frozen=True)
class Primitive(CelType):
    # `field()`: without it the inherited class attribute `name = "dyn"` would become this
    # field's default, and `_sample` (no default) could not follow it.
    name: str = field()
    _sample: object = field(compare=False, repr=False)

    def sample(self) -> object:
        return self._sample

    def __str__(self) -> str:
        return self.name


STRING = Primitive("string", "sample")
INT = Primitive("int", 1)
DOUBLE = Primitive("double", 1.5)
BOOL = Primitive("bool", True)
TIMESTAMP = Primitive("timestamp", datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
DURATION = Primitive("duration", timedelta(hours=1))
NULL = Primitive("null_type", None)
# `dyn`: anything; conditions over it are checked only at run time (used for `params`, whose
# shape differs per action).
DYN = Primitive("dyn", "sample")

PRIMITIVES: Mapping[str, Primitive] = {
    t.name: t for t in (STRING, INT, DOUBLE, BOOL, TIMESTAMP, DURATION, DYN)
}


@dataclass(frozen=True)
class ListType(CelType):
    elem: CelType
    name: str = "list"

    def sample(self) -> object:
        return [self.elem.sample()]

    def __str__(self) -> str:
        return f"list({self.elem})"


@dataclass(frozen=True)
class MapType(CelType):
    key: CelType
    value: CelType
    name: str = "map"

    def sample(self) -> object:
        return {self.key.sample(): self.value.sample()}

    def __str__(self) -> str:
        return f"map({self.key}, {self.value})"


@dataclass(frozen=True)
class Nullable(CelType):
    """A value that may be null (an unset end date, a missing vendor)."""

    inner: CelType
    name: str = "nullable"

    def sample(self) -> object:
        return self.inner.sample()

    def __str__(self) -> str:
        return f"{self.inner}?"


@dataclass(frozen=True)
class ObjectType(CelType):
    """A record with a closed set of named fields (at run time: a dict with those keys)."""

    fields: Mapping[str, CelType]
    name: str = "object"

    def sample(self) -> dict[str, object]:
        return {key: value.sample() for key, value in self.fields.items()}

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.fields.items())))

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in self.fields.items()) + "}"


def parse_type(spec: str) -> CelType:
    """Parse a type name as written in a policy: `string`, `int`, `list(string)`, `timestamp?`.

    Raises ValueError with a short reason on anything else.
    """
    text = spec.strip()
    if text.endswith("?"):
        return Nullable(parse_type(text[:-1]))
    if text.startswith("list(") and text.endswith(")"):
        return ListType(parse_type(text[5:-1]))
    if text.startswith("map(") and text.endswith(")"):
        key, sep, value = text[4:-1].partition(",")
        if not sep:
            raise ValueError(f"map type needs a key and a value type: {spec!r}")
        return MapType(parse_type(key), parse_type(value))
    if text in PRIMITIVES:
        return PRIMITIVES[text]
    known = ", ".join(sorted(PRIMITIVES))
    raise ValueError(f"unknown type {spec!r} (known: {known}, list(T), map(K, V), T?)")
