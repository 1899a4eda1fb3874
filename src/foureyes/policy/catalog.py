"""What a policy is compiled against: the actions that exist and the attributes conditions see.

The catalog comes from the connectors (each declares its actions and the attributes of its
accounts) plus foureyes' own actions. The variable types built here are the *only* variables and
attributes a condition may name; anything else is refused when the policy loads.

Each account attribute is declared with its sensitivity too (`Attribute`): `public` values are
shown to every member of staff, `private` ones (personal data) only redacted, wherever foureyes
shows or records them (`foureyes.core.redaction`). An attribute declared without one is
private: a connector that forgets to say fails closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
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
    parse_type,
)
from foureyes.policy.directory import MAX_SHOWN, MAX_STAFF_ID, STAFF_ID_PATTERN

# Changing who may do what is itself an action (DESIGN, decision semantics item 9). These act on
# pseudo-accounts of the `foureyes` platform: `foureyes:policy`, `foureyes:staff/ID`, and the
# account being pinned for `foureyes.account.pin`.
FOUREYES_PLATFORM = "foureyes"
# The most groups `foureyes.staff.update` gives a person (each is on every card of theirs).
MAX_GROUPS = 100
# What a param holds, when it holds a value of a domain foureyes checks (a JSON Schema
# annotation: validators ignore it). A connector may declare its params' meanings the same way.
MEANING = "x-foureyes"
ACCOUNT_REF, STAFF_ID, GROUP, PIN = "account-ref", "staff-id", "group", "pin"
# Each param holding an account ref, a staff id, a group or a pin says so (`MEANING`): a
# literal a policy compares with it is checked as that field's are (`param_domains`).
_SELF_GOVERNING_PARAMS: Mapping[str, dict[str, Any]] = {
    "foureyes.policy.update": {
        "type": "object",
        # A document (`contentMediaType`): lines broken by LF or CRLF, each held to the
        # free-text check; every other string param is short text (workflow.typed_params).
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1_000_000,
                "contentMediaType": "application/yaml",
            }
        },
        "required": ["text"],
        "additionalProperties": False,
    },
    "foureyes.account.pin": {
        "type": "object",
        "properties": {
            "account": {"type": "string", "pattern": "^[^:]+:.+$", MEANING: ACCOUNT_REF},
            "pin": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,49}$", MEANING: PIN},
            "present": {"type": "boolean"},
        },
        "required": ["account", "pin", "present"],
        "additionalProperties": False,
    },
    # The fields it writes are held to the HR import's rules of them at submission and again
    # at execution (`directory.groups_problem`, GovernanceConnector.check_staff_update); the
    # schema bounds them first.
    "foureyes.staff.update": {
        "type": "object",
        "properties": {
            "staff": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_STAFF_ID,
                "pattern": STAFF_ID_PATTERN,
                MEANING: STAFF_ID,
            },
            "status": {"enum": ["active", "suspended", "terminated"]},
            "groups": {
                "type": "array",
                "maxItems": MAX_GROUPS,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_SHOWN, MEANING: GROUP},
            },
            "ends": {
                "type": ["string", "null"],
                "format": "date",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            },
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
            "staff": {"type": "string", "minLength": 1, "maxLength": 64, MEANING: STAFF_ID},
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

# --- attributes and their sensitivity ----------------------------------------------------------

MASK = "***"


class Sensitivity(StrEnum):
    """Who may see an attribute's value."""

    PUBLIC = "public"
    """Any member of staff: account pages, previews, the audit log, notifications."""
    PRIVATE = "private"
    """Personal data: shown to people and recorded only redacted. In the clear only through
    an action that reveals private data (`account.view_private`), to its requester, once."""


class RedactedAs(StrEnum):
    """How a private value is shown: enough to recognise, not to use."""

    HIDDEN = "hidden"  # `***`, whatever the value
    EMAIL = "email"  # `k***@mail.example` (a value that is no address: `***`)
    PHONE = "phone"  # `***42`: the last two digits


def redact_email(address: str) -> str:
    """`kim@mail.example` → `k***@mail.example`: enough to recognise, not to use."""
    local, at, domain = address.rpartition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def redact_phone(number: str) -> str:
    """`+1 555 0100 42` → `***42`."""
    digits = [c for c in number if c.isdigit()]
    return MASK + "".join(digits[-2:]) if digits else ""


@dataclass(frozen=True)
class Attribute:
    """One account attribute as a connector declares it: its type (what conditions may do with
    it) and its sensitivity (who may see its value). Declared without a sensitivity it is
    private, and a private value is shown `redacted_as` says."""

    type: CelType
    sensitivity: Sensitivity = Sensitivity.PRIVATE
    redacted_as: RedactedAs = RedactedAs.HIDDEN

    @property
    def private(self) -> bool:
        return self.sensitivity is not Sensitivity.PUBLIC

    def shown(self, value: Any) -> Any:
        """`value` as people are shown it: as it is when public, else `redacted`."""
        return self.redacted(value) if self.private else value

    def redacted(self, value: Any) -> Any:
        """`value` redacted, whatever the sensitivity (for a value held for another purpose,
        such as what an undo restores): None stays None, a list is redacted item by item, an
        email or phone as `redacted_as` says, anything else wholly (`***`)."""
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return [self.redacted(item) for item in value]
        if isinstance(value, str) and self.redacted_as is RedactedAs.EMAIL:
            return redact_email(value)
        if isinstance(value, str) and self.redacted_as is RedactedAs.PHONE:
            return redact_phone(value)
        return MASK


def public(kind: CelType) -> Attribute:
    """A declaration of an attribute any member of staff may see."""
    return Attribute(kind, Sensitivity.PUBLIC)


def private(kind: CelType, redacted_as: RedactedAs = RedactedAs.HIDDEN) -> Attribute:
    """A declaration of an attribute whose values are personal data."""
    return Attribute(kind, Sensitivity.PRIVATE, redacted_as)


UNDECLARED = private(DYN)
"""What foureyes assumes of an attribute no connector declared: private, shown as `***`."""


def declared(entry: Attribute | CelType) -> Attribute:
    """`entry` as a declaration: a bare type (as connectors wrote them before sensitivity was
    declared) is a private attribute of that type."""
    return entry if isinstance(entry, Attribute) else private(entry)


def attribute_types(entries: Mapping[str, Attribute | CelType]) -> dict[str, CelType]:
    """The types of declared attributes (what the policy compiler sees)."""
    return {name: declared(entry).type for name, entry in entries.items()}


def parse_attribute(spec: Any) -> Attribute:
    """An attribute declaration as written in a configuration file: a type name alone
    (`"int"`: private, since nothing says otherwise) or a table `{type = "string",
    sensitivity = "public" | "private", redacted_as = "hidden" | "email" | "phone"}`.
    Raises ValueError naming what is wrong."""
    if isinstance(spec, str):
        return private(parse_type(spec))
    if not isinstance(spec, Mapping):
        raise ValueError("each attribute is a type name or a table {type, sensitivity}")
    unknown = sorted(set(spec) - {"type", "sensitivity", "redacted_as"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: type, sensitivity, redacted_as)")
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise ValueError('an attribute table needs a type, e.g. type = "string"')
    try:
        sensitivity = Sensitivity(spec.get("sensitivity", Sensitivity.PRIVATE.value))
        shown_as = RedactedAs(spec.get("redacted_as", RedactedAs.HIDDEN.value))
    except ValueError:
        raise ValueError(
            "sensitivity is public or private; redacted_as is hidden, email or phone"
        ) from None
    if sensitivity is Sensitivity.PUBLIC and "redacted_as" in spec:
        raise ValueError("redacted_as applies to private attributes only")
    return Attribute(parse_type(kind), sensitivity, shown_as)


@dataclass(frozen=True)
class Catalog:
    """Actions by name, and the types of the account attributes connectors report."""

    actions: Mapping[str, ActionSpec]
    account_attributes: Mapping[str, CelType] = field(default_factory=dict)
    # The attributes connectors declared `public`; every other one is private (fails closed).
    public_attributes: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        actions: Iterable[ActionSpec],
        account_attributes: Mapping[str, Attribute | CelType] | None = None,
    ) -> Catalog:
        """A catalog of these actions plus foureyes' own self-governing actions, and the types
        of these attributes (declarations or bare types: a policy sees types only)."""
        by_name = {spec.name: spec for spec in SELF_GOVERNING_ACTIONS}
        for spec in actions:
            if spec.name in by_name and by_name[spec.name] != spec:
                raise ValueError(f"action {spec.name!r} is declared twice, differently")
            by_name[spec.name] = spec
        entries = account_attributes or {}
        return cls(
            actions=by_name,
            account_attributes=attribute_types(entries),
            public_attributes=frozenset(
                name for name, entry in entries.items() if not declared(entry).private
            ),
        )

    def merged(self, other: Catalog) -> Catalog:
        """Both catalogs' actions and attributes; a name declared twice must agree."""
        for name, kind in other.account_attributes.items():
            mine = self.account_attributes.get(name)
            if mine is not None and mine != kind:
                raise ValueError(f"account attribute {name!r} has two types: {mine} and {kind}")
        merged = Catalog.of(
            list(self.actions.values()) + list(other.actions.values()),
            {**self.account_attributes, **other.account_attributes},
        )
        # Public only where every catalog declaring it says so.
        public = (self.public_attributes | other.public_attributes) - (
            (set(self.account_attributes) - self.public_attributes)
            | (set(other.account_attributes) - other.public_attributes)
        )
        return replace(merged, public_attributes=frozenset(public))


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
    def batch_when(self) -> Mapping[str, CelType]:
        """What a batch rule's `when` sees: a rule's variables but the account (a batch has
        many; each item's own rules read its account)."""
        return {key: value for key, value in self.rule.items() if key != "account"}

    @property
    def batch_approvers(self) -> Mapping[str, CelType]:
        """What a batch rule's `approvers` sees: `approvers`' variables but the account."""
        return {key: value for key, value in self.approvers.items() if key != "account"}

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
