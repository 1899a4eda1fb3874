"""Prove invariants and compare policies by enumerating every case the policy distinguishes.

The conditions say which attribute values matter (`Condition.mentions`: `"support" in
staff.groups`, `account.followers >= 1000000`, ...). Enumerating every combination of those
values (with boundary values on each side of a numeric comparison, and one value no condition
names) covers every way the policy's conditions can come out, so an invariant that holds over the
enumeration holds for every request. Real people from the staff directory are checked as well.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from foureyes.directory import Directory
from foureyes.errors import BadInput
from foureyes.model import (
    NO_END_DAYS_LEFT,
    WEEKDAYS,
    Account,
    DecisionRequest,
    Outcome,
    RequestContext,
    Staff,
)
from foureyes.policy.celtypes import BOOL, CelType, ListType, Nullable
from foureyes.policy.compiler import CompiledInvariant, Policy
from foureyes.policy.decision import Decision
from foureyes.policy.engine import decide, tier_of
from foureyes.policy.subjects import empty_value

MAX_CASES = 2_000_000
_OTHER = "<other>"  # a value no condition names
_POWERSET_LIMIT = 10  # beyond this many list values, take subsets of size <= 2 (and all of them)


@dataclass(frozen=True)
class Violation:
    invariant: str
    staff: str
    action: str
    account: str
    tier: str | None
    break_glass: bool
    outcome: Outcome
    min_people: int | None
    rules: tuple[str, ...]

    def describe(self) -> str:
        how = "with break-glass " if self.break_glass else ""
        people = "" if self.min_people is None else f" by {self.min_people} people"
        rules = ", ".join(self.rules) or "no rule"
        return (
            f"invariant {self.invariant} violated: {self.staff} can {self.action} {how}"
            f"a {self.tier} account ({self.account}): {self.outcome.value}{people} "
            f"(rules: {rules})"
        )


@dataclass(frozen=True)
class Difference:
    staff: str
    action: str
    tier: str
    before: str
    after: str
    cases: int


def _mentions(policy: Policy) -> dict[tuple[str, ...], set[Any]]:
    """Every literal each attribute is compared with, across all conditions, keyed by
    (variable kind, attribute) with `requester`/`approver` folded into `staff`."""
    found: dict[tuple[str, ...], set[Any]] = {}
    conditions = [tier.condition for tier in policy.tiers]
    for rule in policy.rules:
        conditions.append(rule.condition)
        if rule.approvers is not None:
            conditions.append(rule.approvers)
        if rule.break_glass is not None:
            conditions.append(rule.break_glass.allowed_when)
    conditions += [inv.staff for inv in policy.invariants if inv.staff is not None]
    for condition in conditions:
        for path in condition.paths:
            found.setdefault(_fold(path), set())
        for path, values in condition.mentions.items():
            found.setdefault(_fold(path), set()).update(values)
    return found


def _fold(path: tuple[str, ...]) -> tuple[str, ...]:
    head = "staff" if path[0] in {"requester", "approver"} else path[0]
    return (head, *path[1:2])


def _domain(kind: CelType, mentioned: set[Any] | None) -> list[Any]:
    if mentioned is None:
        return [empty_value(kind)]
    if isinstance(kind, ListType):
        items = sorted(mentioned, key=repr)
        if len(items) <= _POWERSET_LIMIT:
            sizes: Iterable[int] = range(len(items) + 1)
        else:
            sizes = (0, 1, 2)
        subsets = [list(c) for n in sizes for c in itertools.combinations(items, n)]
        if len(items) > _POWERSET_LIMIT:
            subsets.append(items)
        return subsets
    if kind == BOOL:
        return [False, True]
    values = sorted(mentioned, key=repr)
    inner = kind.inner if isinstance(kind, Nullable) else kind
    if inner.name == "string":
        values.append(_OTHER)
    elif not values:
        values.append(empty_value(inner))
    if isinstance(kind, Nullable):
        values.append(None)
    return values


class Enumeration:
    """Every distinguishable requester, account and context for one policy (or two)."""

    def __init__(self, policies: Sequence[Policy], now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.today = self.now.date()
        base = policies[0]
        mentions: dict[tuple[str, ...], set[Any]] = {}
        for policy in policies:
            for key, values in _mentions(policy).items():
                mentions.setdefault(key, set()).update(values)
        self.staff_axes = self._axes(base.types.staff.fields, mentions, "staff")
        self.account_axes = self._axes(base.types.account_without_tier.fields, mentions, "account")
        self.context_axes = self._axes(base.types.context.fields, mentions, "context")
        params = {path[1]: values for path, values in mentions.items() if path[0] == "params"}
        self.params_axes = [(name, [*sorted(v, key=repr), None]) for name, v in params.items()]

    def _axes(
        self, fields: Mapping[str, CelType], mentions: Mapping[tuple[str, ...], set[Any]], kind: str
    ) -> list[tuple[str, list[Any]]]:
        axes = []
        for name, field_type in fields.items():
            if kind == "staff" and name in {"status", "starts", "ends", "id", "identities"}:
                continue  # the floor decides these: only active people inside their dates act
            if kind == "account" and name in {"id", "ref", "platform"}:
                continue
            if kind == "context" and name in {"now", "client"} and (kind, name) not in mentions:
                continue
            mentioned = mentions.get((kind, name))
            if kind == "staff" and name == "days_left":
                values = {v for v in (mentioned or set()) if isinstance(v, int) and v >= 0}
                axes.append((name, sorted(values | {0, NO_END_DAYS_LEFT})))
                continue
            axes.append((name, _domain(field_type, mentioned)))
        return axes

    @staticmethod
    def _product(axes: Sequence[tuple[str, list[Any]]]) -> Iterator[dict[str, Any]]:
        names = [name for name, _ in axes]
        for values in itertools.product(*(vals for _, vals in axes)):
            yield dict(zip(names, values, strict=True))

    def count(self, actions: int) -> int:
        total = actions * 2
        for axes in (self.staff_axes, self.account_axes, self.context_axes, self.params_axes):
            for _, values in axes:
                total *= len(values)
        return total

    def staff(self) -> Iterator[Staff]:
        for number, values in enumerate(self._product(self.staff_axes)):
            days_left = values.pop("days_left")
            ends = None if days_left == NO_END_DAYS_LEFT else self.today + timedelta(days=days_left)
            builtin = {k: values.pop(k) for k in list(values) if k in Staff.__dataclass_fields__}
            if "groups" in builtin:
                builtin["groups"] = tuple(builtin["groups"])
            yield Staff(id=f"anyone-{number}", ends=ends, attributes=values, **builtin)

    def accounts(self, policy: Policy, platform: str) -> Iterator[tuple[Account, str]]:
        for values in self._product(self.account_axes):
            pins = frozenset(values.pop("pins", ()))
            account = Account(platform, "any-account", values, pins)
            view = {**values, "id": account.id, "ref": account.ref, "platform": platform}
            view["pins"] = sorted(pins)
            tier, _ = tier_of(policy.tiers, view)
            yield account, tier

    def contexts(self) -> Iterator[tuple[RequestContext, dict[str, Any]]]:
        for values in self._product(self.context_axes):
            moment = self.now
            if "hour" in values:
                moment = moment.replace(hour=values.pop("hour") % 24)
            weekday = values.pop("weekday", None)
            if weekday in WEEKDAYS:  # weekday follows from `now`: move to that day
                moment += timedelta(days=(WEEKDAYS.index(weekday) - moment.weekday()) % 7)
            for params in self._product(self.params_axes):
                clean = {k: v for k, v in params.items() if v is not None}
                yield RequestContext(now=moment, extra=values), clean


def _describe_staff(person: Staff, today: date) -> str:
    if not person.id.startswith("anyone-"):
        return f"staff {person.id}"
    parts = [f"groups={list(person.groups)}", f"employment={person.employment}"]
    days = person.days_left(today)
    if days != NO_END_DAYS_LEFT:
        parts.append(f"days_left={days}")
    parts += [f"{k}={v!r}" for k, v in sorted(person.attributes.items())]
    return "anyone with " + ", ".join(parts)


def _describe_group(person: Staff) -> str:
    groups = ", ".join(person.groups) or "no groups"
    return f"{person.employment} in {groups}"


def check_invariants(
    policy: Policy,
    directory: Directory | None = None,
    *,
    now: datetime | None = None,
    platform: str = "chirp",
) -> list[Violation]:
    """Every invariant checked over the directory's people and the enumeration; one violation
    (the first found) per invariant. Raises BadInput when the enumeration is too large."""
    enumeration = Enumeration([policy], now)
    violations = []
    for invariant in policy.invariants:
        found = _check_one(policy, invariant, enumeration, directory, platform, policy)
        if found is not None:
            violations.append(found)
    return violations


def check_update(
    proposed: Policy,
    in_force: Policy,
    directory: Directory | None = None,
    *,
    now: datetime | None = None,
    platform: str = "chirp",
) -> list[Violation]:
    """A proposed policy's own invariants, then every invariant of the policy in force, checked
    on the proposed policy's decisions. For the invariants in force, accounts are classified by
    the in-force tiers: an update that redefines or drops a tier cannot make "VIT accounts need
    four people" hold vacuously, because the accounts that are VIT today stay covered. So an
    update may add and tighten invariants but never break one in force, even by deleting it."""
    violations = check_invariants(proposed, directory, now=now, platform=platform)
    enumeration = Enumeration([proposed, in_force], now)
    for invariant in in_force.invariants:
        found = _check_one(proposed, invariant, enumeration, directory, platform, in_force)
        if found is not None:
            violations.append(found)
    return violations


def _check_one(
    policy: Policy,
    invariant: CompiledInvariant,
    enumeration: Enumeration,
    directory: Directory | None,
    platform: str,
    classifier: Policy,
) -> Violation | None:
    """The first decision of `policy` that breaks `invariant`, over accounts whose tier is
    given by `classifier`'s tiers (the policy the invariant belongs to)."""
    cases = enumeration.count(len(invariant.actions))
    if cases > MAX_CASES:
        raise BadInput(
            f"invariant {invariant.spec.id} cannot be evaluated: {cases} cases to check "
            f"(more than {MAX_CASES}); mention fewer distinct values in conditions"
        )
    today = enumeration.today
    people = list(directory.staff.values()) if directory else []
    people = [p for p in people if p.floor_problem(today) is None] + list(enumeration.staff())
    if invariant.staff is not None:
        condition = invariant.staff
        people = [p for p in people if _holds(condition.fn, {"staff": p.cel(today)})]
    accounts = [
        (account, tier)
        for account, tier in enumeration.accounts(classifier, platform)
        if invariant.spec.tier is None or tier == invariant.spec.tier
    ]
    contexts = list(enumeration.contexts())
    for action in sorted(invariant.actions):
        for person in people:
            for account, tier in accounts:
                for context, params in contexts:
                    for glass in (False, True):
                        decision = decide(
                            policy,
                            DecisionRequest(person, action, account, context, params, None, glass),
                        )
                        if _violates(invariant, decision):
                            return Violation(
                                invariant=invariant.spec.id,
                                staff=_describe_staff(person, today),
                                action=action,
                                account=_describe_account(account),
                                tier=tier,
                                break_glass=glass,
                                outcome=decision.outcome,
                                min_people=decision.min_people,
                                rules=decision.matched_ids,
                            )
    return None


def _holds(fn: Any, activation: Mapping[str, Any]) -> bool:
    try:
        return fn(activation) is True
    except Exception:
        return True


def _violates(invariant: CompiledInvariant, decision: Decision) -> bool:
    if decision.outcome == Outcome.DENIED:
        return False
    if invariant.spec.never:
        return True
    people = decision.min_people
    return (
        people is not None
        and invariant.spec.min_people is not None
        and (people < invariant.spec.min_people)
    )


def _describe_account(account: Account) -> str:
    parts = [f"{k}={v!r}" for k, v in sorted(account.attributes.items()) if v not in ("", None)]
    if account.pins:
        parts.append(f"pins={sorted(account.pins)}")
    return ", ".join(parts) or "no notable attributes"


def _summary(decision: Decision) -> str:
    if decision.outcome == Outcome.PENDING:
        return f"pending ({decision.min_people} people)"
    return decision.outcome.value


def diff_policies(
    old: Policy, new: Policy, *, now: datetime | None = None, platform: str = "chirp"
) -> list[Difference]:
    """Which (kind of requester, action, tier) decisions differ between two policies."""
    enumeration = Enumeration([old, new], now)
    actions = sorted(set(old.catalog.actions) & set(new.catalog.actions))
    cases = enumeration.count(len(actions))
    if cases > MAX_CASES:
        raise BadInput(f"too many cases to compare ({cases}); mention fewer distinct values")
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    people = list(enumeration.staff())
    accounts_old = list(enumeration.accounts(old, platform))
    contexts = list(enumeration.contexts())
    for action in actions:
        for person in people:
            for account, tier_old in accounts_old:
                for context, params in contexts:
                    request = DecisionRequest(person, action, account, context, params)
                    before, after = decide(old, request), decide(new, request)
                    if (before.outcome, before.min_people) == (after.outcome, after.min_people):
                        continue
                    tier = tier_old if tier_old == after.tier else f"{tier_old}→{after.tier}"
                    who = _describe_group(person)
                    counts[(who, action, tier, _summary(before), _summary(after))] += 1
    return [
        Difference(staff, action, tier, before, after, n)
        for (staff, action, tier, before, after), n in sorted(counts.items())
    ]
