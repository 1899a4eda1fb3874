"""Build staff, accounts and contexts from the short descriptions used in policy tests and the
CLI (`{id: c-1001, groups: [support], days_left: 0}`), filling what is left out with empty values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from foureyes.model import Account, RequestContext, Staff
from foureyes.policy.celtypes import (
    BOOL,
    DOUBLE,
    DURATION,
    INT,
    STRING,
    TIMESTAMP,
    CelType,
    ListType,
    MapType,
    Nullable,
)
from foureyes.policy.compiler import Policy
from foureyes.policy.directory import Directory

_STAFF_FIELDS = {
    "id",
    "name",
    "email",
    "groups",
    "employment",
    "vendor",
    "region",
    "manager",
    "starts",
    "ends",
    "status",
    "identities",
}


def empty_value(kind: CelType) -> object:
    """The value an attribute left out of a test description takes."""
    if isinstance(kind, Nullable):
        return None
    if isinstance(kind, ListType):
        return []
    if isinstance(kind, MapType):
        return {}
    zeros: dict[CelType, object] = {
        STRING: "",
        INT: 0,
        DOUBLE: 0.0,
        BOOL: False,
        TIMESTAMP: datetime(1970, 1, 1, tzinfo=UTC),
        DURATION: timedelta(0),
    }
    return zeros.get(kind, "")


def staff_from(
    description: Mapping[str, Any] | str, today: date, directory: Directory | None = None
) -> Staff:
    """A person from a directory id, or from inline attributes (`days_left` sets `ends`)."""
    if isinstance(description, str):
        if directory is None or description not in directory.staff:
            raise ValueError(f"unknown staff id {description!r}")
        return directory.staff[description]
    fields = dict(description)
    if "id" not in fields:
        raise ValueError("a staff description needs an `id`")
    days_left = fields.pop("days_left", None)
    if days_left is not None:
        if not isinstance(days_left, int) or isinstance(days_left, bool):
            raise ValueError("days_left must be a whole number")
        fields["ends"] = today + timedelta(days=days_left)
    attributes = {k: v for k, v in fields.items() if k not in _STAFF_FIELDS}
    base = {k: v for k, v in fields.items() if k in _STAFF_FIELDS}
    for key in ("groups", "identities"):
        if key in base:
            base[key] = tuple(base[key])
    for key in ("starts", "ends"):
        if isinstance(base.get(key), str):
            base[key] = date.fromisoformat(base[key])
    return Staff(**base, attributes=attributes)


def account_from(policy: Policy, description: Mapping[str, Any], platform: str) -> Account:
    """An account from inline attributes; attributes the policy knows but the test leaves out
    take empty values (0, "", false, [])."""
    fields = dict(description)
    account_id = str(fields.pop("id", "test-account"))
    pins = frozenset(fields.pop("pins", ()))
    platform = str(fields.pop("platform", platform))
    known = policy.types.account_without_tier.fields
    unknown = sorted(set(fields) - set(known))
    if unknown:
        names = ", ".join(sorted(set(known) - {"id", "ref", "platform", "pins"}))
        raise ValueError(
            f"unknown account attribute {unknown[0]!r} (attributes are given flat, e.g. "
            f"`followers: 5`; the policy knows: {names}, and id, platform, pins)"
        )
    attributes = {
        name: fields.get(name, empty_value(kind))
        for name, kind in known.items()
        if name not in {"id", "ref", "platform", "pins"}
    }
    return Account(platform=platform, id=account_id, attributes=attributes, pins=pins)


def context_from(policy: Policy, description: Mapping[str, Any], now: datetime) -> RequestContext:
    fields = dict(description)
    moment = fields.pop("now", now)
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError("context.now must be a timestamp with a time zone")
    client = fields.pop("client", None)
    declared = policy.types.context.fields
    unknown = sorted(set(fields) - set(declared))
    if unknown:
        raise ValueError(f"unknown context attribute {unknown[0]!r}")
    builtin = {"now", "hour", "weekday", "client"}
    extra = {
        name: fields.get(name, empty_value(kind))
        for name, kind in declared.items()
        if name not in builtin
    }
    return RequestContext(now=moment.astimezone(UTC), client=client, extra=extra)
