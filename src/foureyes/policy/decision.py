"""The results the engine produces: decisions, factors, and the status of a request's reviews."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from foureyes.model import Effect, Outcome
from foureyes.policy.compiler import CompiledRule

_T = TypeVar("_T")


class _Factory:
    """The default of a parameter whose field has a default factory (shown as dataclass does)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _one_write_init(cls: type[_T]) -> type[_T]:
    """Give a frozen dataclass an `__init__` that stores all its fields with one write of the
    instance's `__dict__`.

    The `__init__` that `dataclass(frozen=True)` writes sets each field with its own
    `object.__setattr__` call, which makes a Decision (15 fields) slow to build. This one takes the
    same parameters (names, order, defaults, default factories) and leaves the same instance; it
    is generated from the fields like the dataclass's own. Only for plain frozen dataclasses: no
    `__post_init__` (nor so `InitVar`), no keyword-only or `init=False` field.
    """
    assert not hasattr(cls, "__post_init__")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    params: list[str] = []
    items: list[str] = []
    namespace: dict[str, Any] = {
        "__name__": cls.__module__,
        "_set": object.__setattr__,
        "_FACTORY": _FACTORY,
    }
    for f in fields:
        assert f.init, f"{cls.__name__}.{f.name}"
        assert not f.kw_only, f"{cls.__name__}.{f.name}"
        name = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            params.append(f"{name}=_default_{name}")
            items.append(f"{name!r}: {name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            params.append(f"{name}=_FACTORY")
            items.append(f"{name!r}: _factory_{name}() if {name} is _FACTORY else {name}")
        else:
            params.append(name)
            items.append(f"{name!r}: {name}")
    source = (
        f"def __init__(self, {', '.join(params)}):\n"
        f"    _set(self, '__dict__', {{{', '.join(items)}}})\n"
    )
    exec(source, namespace)  # noqa: S102 - generated from the class's own fields, as dataclass does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {f.name: f.type for f in fields} | {"return": None}
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@_one_write_init
@dataclass(frozen=True)
class RuleMatch:
    rule: str
    effect: Effect


@dataclass(frozen=True)
class ConditionFailure:
    """A condition that errored at run time, and what the engine did about it (fail closed)."""

    where: str
    error: str
    consequence: str


@_one_write_init
@dataclass(frozen=True)
class Factor:
    """One approval requirement: `approvals` distinct people satisfying `approvers`."""

    rule: str
    approvals: int
    approvers: str
    deny_veto: bool
    # The rule's `exclude`, and its `escalate` as (after seconds, to, remind_every seconds).
    exclude: str | None = None
    escalate: tuple[int, str, int | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "approvals": self.approvals,
            "approvers": self.approvers,
            "deny_veto": self.deny_veto,
        }
        # Only when used: a decision without them reads (and is stored) as before.
        if self.exclude is not None:
            out["exclude"] = self.exclude
        if self.escalate is not None:
            after, to, remind = self.escalate
            out["escalate"] = {"after_seconds": after, "to": to, "remind_every_seconds": remind}
        return out


@dataclass(frozen=True)
class BreakGlassTerms:
    """The post-review owed by a break-glass execution."""

    reviewers: int
    within: timedelta


@_one_write_init
@dataclass(frozen=True)
class Options:
    """Rule options combined over all matching rules, strictest first (DESIGN item 8)."""

    justification_required: bool = False
    justification_patterns: tuple[str, ...] = ()
    expires: timedelta = timedelta(hours=24)
    # Ticket systems whose ticket the justification must name (`justification.ticket`).
    justification_tickets: tuple[str, ...] = ()
    delay: timedelta = timedelta(0)
    step_up: bool = False
    notify: tuple[str, ...] = ()
    break_glass: BreakGlassTerms | None = None

    def to_dict(self) -> dict[str, Any]:
        tickets = (
            # Only when used: a decision without them reads (and is stored) as before.
            {"justification_tickets": list(self.justification_tickets)}
            if self.justification_tickets
            else {}
        )
        return {
            **tickets,
            "justification_required": self.justification_required,
            "justification_patterns": list(self.justification_patterns),
            "expires_seconds": int(self.expires.total_seconds()),
            "delay_seconds": int(self.delay.total_seconds()),
            "step_up": self.step_up,
            "notify": list(self.notify),
            "break_glass": None
            if self.break_glass is None
            else {
                "reviewers": self.break_glass.reviewers,
                "within_seconds": int(self.break_glass.within.total_seconds()),
            },
        }


@_one_write_init
@dataclass(frozen=True)
class Decision:
    """What the policy says about one request, and why. Pure data; JSON via `to_dict`."""

    outcome: Outcome
    policy_version: str
    requester: str
    action: str
    account: str | None
    tier: str | None
    matched: tuple[RuleMatch, ...]
    factors: tuple[Factor, ...]
    options: Options
    reasons: tuple[str, ...]
    errors: tuple[ConditionFailure, ...] = ()
    break_glass: bool = False
    decided_at: datetime | None = None
    # The condition view of requester, account and action, for evaluating `approvers`; and the
    # compiled rules behind `factors`, in the same order. Not part of equality or of the JSON.
    subject: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    factor_rules: tuple[CompiledRule, ...] = field(default=(), compare=False, repr=False)

    @property
    def min_people(self) -> int | None:
        """People it takes to carry this out: the requester plus every approval; None if denied."""
        if self.outcome == Outcome.DENIED:
            return None
        return 1 + sum(factor.approvals for factor in self.factors)

    @property
    def matched_ids(self) -> tuple[str, ...]:
        return tuple(match.rule for match in self.matched)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "policy_version": self.policy_version,
            "requester": self.requester,
            "action": self.action,
            "account": self.account,
            "tier": self.tier,
            "rules": [{"id": m.rule, "effect": m.effect.value} for m in self.matched],
            "factors": [factor.to_dict() for factor in self.factors],
            "min_people": self.min_people,
            "options": self.options.to_dict(),
            "break_glass": self.break_glass,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "reasons": list(self.reasons),
            "errors": [
                {"where": e.where, "error": e.error, "consequence": e.consequence}
                for e in self.errors
            ],
        }


@dataclass(frozen=True)
class FactorProgress:
    """How far one factor is: who counts for it, how many are missing, who could still help."""

    rule: str
    approvals: int
    approved_by: tuple[str, ...]
    missing: int
    candidates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "approvals": self.approvals,
            "approved_by": list(self.approved_by),
            "missing": self.missing,
            "candidates": list(self.candidates),
        }


@dataclass(frozen=True)
class FactorStatus:
    """Whether the reviews so far satisfy every factor of a decision, and why (not)."""

    satisfied: bool
    vetoed_by: tuple[str, ...]
    factors: tuple[FactorProgress, ...]
    ignored: tuple[tuple[str, str], ...]
    reasons: tuple[str, ...]

    @property
    def vetoed(self) -> bool:
        return bool(self.vetoed_by)

    @property
    def missing(self) -> int:
        return sum(progress.missing for progress in self.factors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "vetoed_by": list(self.vetoed_by),
            "factors": [progress.to_dict() for progress in self.factors],
            "ignored": [{"staff": who, "reason": why} for who, why in self.ignored],
            "reasons": list(self.reasons),
        }
