"""What a policy is compiled against: the actions that exist and the attributes conditions see.

The catalog comes from the connectors (each declares its actions and the attributes of its
accounts) plus foureyes' own actions. The variable types built here are the *only* variables and
attributes a condition may name; anything else is refused when the policy loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from foureyes.model import ActionKind, ActionSpec
from foureyes.policy.celtypes import (
    BOOL,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    CelType,
    ListType,
    MapType,
    Nullable,
    ObjectType,
)

# Changing who may do what is itself an action (DESIGN, decision semantics item 9). These act on
# pseudo-accounts of the `foureyes` platform: `foureyes:policy`, `foureyes:staff/ID`, and the
# account being pinned for `foureyes.account.pin`.
FOUREYES_PLATFORM = "foureyes"
_SELF_GOVERNING_PARAMS: Mapping[str, dict[str, Any]] = {
    "foureyes.policy.update": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 1_000_000}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "foureyes.account.pin": {
        "type": "object",
        "properties": {
            "account": {"type": "string", "pattern": "^[^:]+:.+$"},
            "pin": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,49}$"},
            "present": {"type": "boolean"},
        },
        "required": ["account", "pin", "present"],
        "additionalProperties": False,
    },
    "foureyes.staff.update": {
        "type": "object",
        "properties": {
            "staff": {"type": "string"},
            "status": {"enum": ["active", "suspended", "terminated"]},
            "groups": {"type": "array", "items": {"type": "string"}},
            "ends": {"type": ["string", "null"], "format": "date"},
        },
        "required": ["staff"],
        "additionalProperties": False,
    },
    # A step-up credential (public material only) for one person: the console's security keys
    # and the CLI's device keys when no credential of theirs vouches for it
    # (foureyes.workflow.enrolment).
    "foureyes.staff.enrol_credential": {
        "type": "object",
        "properties": {
            "staff": {"type": "string", "minLength": 1, "maxLength": 64},
            "kind": {"enum": ["webauthn", "device-key"]},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "public_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,4096}$"},
            "credential_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,1400}$"},
            "transports": {
                "type": "array",
                "items": {"type": "string", "maxLength": 32},
                "maxItems": 10,
            },
            "aaguid": {"type": "string", "maxLength": 36},
            "sign_count": {"type": "integer", "minimum": 0, "maximum": 4294967295},
        },
        "required": ["staff", "kind", "name", "public_key"],
        "additionalProperties": False,
    },
}
SELF_GOVERNING_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        name="foureyes.policy.update",
        kind=ActionKind.WRITE,
        params_schema=_SELF_GOVERNING_PARAMS["foureyes.policy.update"],
        reversible_by="foureyes.policy.update",
        description="Replace the policy in force with a new version.",
    ),
    ActionSpec(
        name="foureyes.staff.update",
        kind=ActionKind.WRITE,
        params_schema=_SELF_GOVERNING_PARAMS["foureyes.staff.update"],
        reversible_by="foureyes.staff.update",
        description="Change a staff member's record outside the HR import.",
    ),
    ActionSpec(
        name="foureyes.staff.enrol_credential",
        kind=ActionKind.WRITE,
        params_schema=_SELF_GOVERNING_PARAMS["foureyes.staff.enrol_credential"],
        description="Add a step-up credential (security key, device key) for a person.",
    ),
    ActionSpec(
        name="foureyes.account.pin",
        kind=ActionKind.WRITE,
        params_schema=_SELF_GOVERNING_PARAMS["foureyes.account.pin"],
        reversible_by="foureyes.account.pin",
        description="Set or clear an account's pins (watchlist, protected).",
    ),
)
SELF_GOVERNING_NAMES = frozenset(spec.name for spec in SELF_GOVERNING_ACTIONS)

STAFF_BUILTIN_TYPES: Mapping[str, CelType] = {
    "id": STRING,
    "name": STRING,
    "email": STRING,
    "groups": ListType(STRING),
    "employment": STRING,
    "vendor": Nullable(STRING),
    "region": Nullable(STRING),
    "manager": Nullable(STRING),
    "starts": Nullable(TIMESTAMP),
    "ends": Nullable(TIMESTAMP),
    "status": STRING,
    "identities": ListType(STRING),
    "days_left": INT,
}
ACCOUNT_BUILTIN_TYPES: Mapping[str, CelType] = {
    "id": STRING,
    "ref": STRING,
    "platform": STRING,
    "pins": ListType(STRING),
}
ACTION_TYPE = ObjectType(
    {
        "name": STRING,
        "kind": STRING,
        "reversible": BOOL,
        "irreversible": BOOL,
        "reveals_private": BOOL,
    }
)
CONTEXT_BUILTIN_TYPES: Mapping[str, CelType] = {
    "now": TIMESTAMP,
    "hour": INT,
    "weekday": STRING,
    "client": STRING,
}
PARAMS_TYPE = MapType(STRING, DYN)


@dataclass(frozen=True)
class Catalog:
    """Actions by name, and the types of the account attributes connectors report."""

    actions: Mapping[str, ActionSpec]
    account_attributes: Mapping[str, CelType] = field(default_factory=dict)

    @classmethod
    def of(
        cls, actions: Iterable[ActionSpec], account_attributes: Mapping[str, CelType] | None = None
    ) -> Catalog:
        """A catalog of these actions plus foureyes' own self-governing actions."""
        by_name = {spec.name: spec for spec in SELF_GOVERNING_ACTIONS}
        for spec in actions:
            if spec.name in by_name and by_name[spec.name] != spec:
                raise ValueError(f"action {spec.name!r} is declared twice, differently")
            by_name[spec.name] = spec
        return cls(actions=by_name, account_attributes=dict(account_attributes or {}))

    def merged(self, other: Catalog) -> Catalog:
        """Both catalogs' actions and attributes; a name declared twice must agree."""
        for name, kind in other.account_attributes.items():
            mine = self.account_attributes.get(name)
            if mine is not None and mine != kind:
                raise ValueError(f"account attribute {name!r} has two types: {mine} and {kind}")
        return Catalog.of(
            list(self.actions.values()) + list(other.actions.values()),
            {**self.account_attributes, **other.account_attributes},
        )


@dataclass(frozen=True)
class VariableTypes:
    """The declared type of every variable, per kind of condition."""

    staff: ObjectType
    account_without_tier: ObjectType
    account: ObjectType
    context: ObjectType

    @property
    def rule(self) -> Mapping[str, CelType]:
        """What a rule's `when` (and break-glass `allowed_when`) sees."""
        return {
            "staff": self.staff,
            "account": self.account,
            "action": ACTION_TYPE,
            "params": PARAMS_TYPE,
            "context": self.context,
        }

    @property
    def approvers(self) -> Mapping[str, CelType]:
        """What a require rule's `approvers` sees."""
        return {
            "approver": self.staff,
            "requester": self.staff,
            "account": self.account,
            "action": ACTION_TYPE,
        }

    @property
    def tier(self) -> Mapping[str, CelType]:
        """What a tier's `when` sees: the account, before it has a tier."""
        return {"account": self.account_without_tier}

    @property
    def invariant_staff(self) -> Mapping[str, CelType]:
        return {"staff": self.staff}


def variable_types(
    catalog: Catalog,
    staff_extra: Mapping[str, CelType],
    account_extra: Mapping[str, CelType],
    context_extra: Mapping[str, CelType],
) -> VariableTypes:
    """Build the variable types; a declared attribute may not shadow a built-in one."""
    for where, extra, builtin in (
        ("staff", staff_extra, STAFF_BUILTIN_TYPES),
        ("account", account_extra, {**ACCOUNT_BUILTIN_TYPES, "tier": STRING}),
        ("context", context_extra, CONTEXT_BUILTIN_TYPES),
    ):
        clash = sorted(set(extra) & set(builtin))
        if clash:
            raise ValueError(f"{where} attribute {clash[0]!r} is built in and cannot be declared")
    account_fields = {**catalog.account_attributes, **account_extra, **ACCOUNT_BUILTIN_TYPES}
    return VariableTypes(
        staff=ObjectType({**STAFF_BUILTIN_TYPES, **staff_extra}),
        account_without_tier=ObjectType(account_fields),
        account=ObjectType({**account_fields, "tier": STRING}),
        context=ObjectType({**CONTEXT_BUILTIN_TYPES, **context_extra}),
    )
