"""Value types shared by every part of foureyes: staff, accounts, actions, decisions, states.

All are frozen dataclasses: a value handed to the engine cannot change under it. The policy engine
sees these and nothing else (no database rows, no HTTP objects). They are plain values and carry no
cache: what the engine derives from a Staff or an Account is remembered by the compiled policy
(`foureyes.policy.cache`), which relies on these values never changing once made. So `Staff` and
`Account` keep their own copy of the `attributes` mapping they are given; the values inside it
(lists, say) are shared with the caller and must not be changed either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

# `staff.days_left` for someone with no end date: far enough away that no `days_left <= N` rule
# ever fires, yet an ordinary int, so conditions over it never error for permanent staff.
NO_END_DAYS_LEFT = 100_000


# The largest id or sequence number the store holds (64-bit signed integers): a larger one in a
# path or query is refused as bad input instead of overflowing the database driver.
MAX_SQL_INT = 2**63 - 1


class Employment(StrEnum):
    EMPLOYEE = "employee"
    CONTRACTOR = "contractor"


class StaffStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class ActionKind(StrEnum):
    READ = "read"
    WRITE = "write"


class Outcome(StrEnum):
    DENIED = "denied"
    ALLOWED = "allowed"
    PENDING = "pending"


class Effect(StrEnum):
    DENY = "deny"
    ALLOW = "allow"
    REQUIRE = "require"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class RequestState(StrEnum):
    """The request lifecycle (DESIGN "Request lifecycle")."""

    PENDING = "pending"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REVERTED = "reverted"

    @property
    def final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {
        RequestState.EXECUTED,
        RequestState.FAILED,
        RequestState.DENIED,
        RequestState.EXPIRED,
        RequestState.CANCELLED,
        RequestState.REVERTED,
    }
)


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0, 0), tzinfo=UTC)


@dataclass(frozen=True)
class Staff:
    """A person who works on the platform. Approvals are counted per `id` (the person)."""

    id: str
    name: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    employment: str = Employment.EMPLOYEE.value
    vendor: str | None = None
    region: str | None = None
    manager: str | None = None
    starts: date | None = None
    ends: date | None = None
    status: str = StaffStatus.ACTIVE.value
    identities: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Its own copy: a caller that changes the mapping it passed cannot change this value.
        object.__setattr__(self, "attributes", dict(self.attributes))

    def days_left(self, today: date) -> int:
        """Whole days from `today` to the last day (`ends`): 0 on the last day, negative after."""
        if self.ends is None:
            return NO_END_DAYS_LEFT
        return (self.ends - today).days

    def floor_problem(self, today: date) -> str | None:
        """Why this person may not act or approve at all today, or None when they may."""
        if self.status != StaffStatus.ACTIVE:
            return f"staff {self.id} is {self.status}"
        if self.starts is not None and today < self.starts:
            return f"staff {self.id} starts on {self.starts.isoformat()}"
        if self.ends is not None and today > self.ends:
            return f"staff {self.id} ended on {self.ends.isoformat()}"
        return None

    def cel(self, today: date) -> dict[str, Any]:
        """The condition view of this person on `today`: a new dict (and new lists) each call."""
        # The record's own attributes first: one named like a built-in (`groups`) must not
        # replace it with a value of another type than the policy analysis assumes.
        view: dict[str, Any] = dict(self.attributes)
        view |= {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "groups": list(self.groups),
            "employment": self.employment,
            "vendor": self.vendor,
            "region": self.region,
            "manager": self.manager,
            "starts": _midnight(self.starts),
            "ends": _midnight(self.ends),
            "status": self.status,
            "identities": list(self.identities),
            "days_left": self.days_left(today),
        }
        return view


@dataclass(frozen=True)
class Account:
    """An end-user account on a connected platform, as its connector reported it.

    A value, like the others here: an account whose attributes changed is a new Account
    (`dataclasses.replace`).
    """

    platform: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    pins: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Its own copy: a caller that changes the mapping it passed cannot change this value.
        object.__setattr__(self, "attributes", dict(self.attributes))

    @property
    def ref(self) -> str:
        return f"{self.platform}:{self.id}"

    @staticmethod
    def split_ref(ref: str) -> tuple[str, str]:
        """`chirp:president` → (`chirp`, `president`); the id may itself contain colons."""
        platform, sep, account_id = ref.partition(":")
        if not sep or not platform or not account_id:
            raise ValueError(f"account reference {ref!r} is not of the form platform:id")
        return platform, account_id


@dataclass(frozen=True)
class ActionSpec:
    """An admin operation a connector offers."""

    name: str
    kind: ActionKind = ActionKind.WRITE
    reversible_by: str | None = None
    irreversible: bool = False
    reveals_private: bool = False
    params_schema: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False}
    )
    description: str = ""

    @property
    def for_requester_only(self) -> bool:
        """Whether the answer is for the requester alone: a read, or any action that reveals
        private data (such as `account.login_as`, whose answer is a session on the account).
        Such an action is carried out only when its requester asks (never by the worker, nor
        for anyone else, approver or oversight), and its answer is handed to them once and
        never stored; approved and never asked for, it expires."""
        return self.kind is ActionKind.READ or self.reveals_private

    @property
    def cel(self) -> dict[str, Any]:
        """The condition view of this action (`action.*`): a new dict each time."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "reversible": self.reversible_by is not None,
            "irreversible": self.irreversible,
            "reveals_private": self.reveals_private,
        }


@dataclass(frozen=True)
class RequestContext:
    """Facts about the moment and place of a request: time, client address, deployment extras."""

    now: datetime
    client: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def cel(self) -> dict[str, Any]:
        """The condition view of the moment (`context.*`): a new dict each call, the extras
        after the built-ins."""
        now = self.now
        return {
            "now": now,
            "hour": now.hour,
            "weekday": WEEKDAYS[now.weekday()],
            "client": self.client or "",
            **self.extra,
        }


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DecisionRequest:
    """What the engine decides on: one exact action on one account by one person."""

    staff: Staff
    action: str
    account: Account | None
    context: RequestContext
    params: Mapping[str, Any] = field(default_factory=dict)
    justification: str | None = None
    break_glass: bool = False


@dataclass(frozen=True)
class Review:
    """One approve or deny by one person (through one of their identities)."""

    reviewer: Staff
    decision: ReviewDecision
    identity: str | None = None
    comment: str = ""
    at: datetime | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `10m`, `4h`, `2d`, `1h30m` into a positive timedelta (ValueError otherwise)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0
    number = ""
    if not text:
        raise ValueError("empty duration")
    for char in text.strip():
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise ValueError(f"bad duration {text!r}: use e.g. 30s, 10m, 4h, 2d or 1h30m")
    if number or total <= 0:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 10m, 4h, 2d or 1h30m")
    return timedelta(seconds=total)
