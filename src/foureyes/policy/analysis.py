"""Prove invariants and compare policies by enumerating every case the policy distinguishes.

Soundness rests on `foureyes.policy.enumerable`: every condition a decision depends on (the rules
naming the action, their break-glass conditions, the tiers when a rule or the invariant reads the
tier, an invariant's `staff`) must be a boolean combination of atoms that each depend on one
attribute and change only where a literal cuts its values. Each attribute then takes one value
from every region its literals cut (each literal and its neighbours, a value between two
literals, a value no literal names, null, absent, every subset of the values tested with `in`),
so the enumeration reaches every combination of atom outcomes, and each case is decided by the
engine itself (`decide`). An invariant that holds over the enumeration holds for every requester,
account and context, including people and accounts that do not exist yet. A condition outside
that grammar, or more cases than MAX_CASES, is refused (BadInput): "cannot prove", never "ok".

Approvers conditions are not enumerated: they decide who may approve, never how many people a
decision needs (`min_people` = requester + every factor's approvals; each person counts for at
most one factor and the requester for none), so they cannot weaken an invariant.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from foureyes.policy.batch_analysis import BatchedPeople, batch_changes, batch_gaps
from foureyes.policy.catalog import STAFF_BUILTIN_TYPES
from foureyes.policy.celtypes import BOOL, DOUBLE, DYN, INT, STRING, CelType, ListType, Nullable
from foureyes.policy.compiler import CompiledInvariant, Policy
from foureyes.policy.conditions import Condition
from foureyes.policy.decision import Decision
from foureyes.policy.directory import Directory
from foureyes.policy.engine import decide, tier_of
from foureyes.policy.enumerable import Atoms, Literal, NotEnumerable, Path, classify
from foureyes.policy.subjects import empty_value

MAX_CASES = 2_000_000
Progress = Callable[[int, int], None]
"""Called with (done, total) as an analysis goes: invariants checked, actions compared."""
_OTHER = "<other>"  # a string no condition names
_LENIENT_POWERSET = 10  # lenient enumeration (reviews, not proofs) caps subsets beyond this


class _Absent:
    """An attribute missing from the record (a declared attribute nobody filled in)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


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
    context: str = ""

    def describe(self) -> str:
        how = "with break-glass " if self.break_glass else ""
        people = "" if self.min_people is None else f" by {self.min_people} people"
        rules = ", ".join(self.rules) or "no rule"
        when = f" ({self.context})" if self.context else ""
        return (
            f"invariant {self.invariant} violated: {self.staff} can {self.action} {how}"
            f"a {self.tier} account ({self.account}){when}: {self.outcome.value}{people} "
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
    example: str = ""  # one account (and context) where it happens


@dataclass(frozen=True)
class Comparison:
    """What `diff_policies` found: the decision changes, and the actions it could not compare
    (each with the reason); a comparison with `unknown` entries proves nothing about those."""

    differences: list[Difference] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    invariants: list[InvariantChange] = field(default_factory=list)
    tiers: list[TierChange] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)  # `batch_analysis.batch_changes`


# --- which conditions a decision depends on ----------------------------------------------------


@dataclass(frozen=True)
class _Source:
    where: str
    condition: Condition
    variables: Mapping[str, CelType]


def _where(policy: Policy, what: str, loc: tuple[str | int, ...]) -> str:
    return policy.located(what, loc)


def _reads_tier(condition: Condition) -> bool:
    return ("account", "tier") in condition.paths or ("account",) in condition.paths


def _rule_sources(policy: Policy, actions: frozenset[str]) -> list[_Source]:
    found = []
    for rule in policy.rules:
        if not rule.actions & actions:
            continue
        loc = ("rules", rule.position)
        found.append(
            _Source(
                _where(policy, f"rule {rule.id}", (*loc, "when")),
                rule.condition,
                _rule_vars(policy),
            )
        )
        if rule.break_glass is not None:
            found.append(
                _Source(
                    _where(policy, f"break_glass of rule {rule.id}", (*loc, "break_glass")),
                    rule.break_glass.allowed_when,
                    _rule_vars(policy),
                )
            )
    return found


def _rule_vars(policy: Policy) -> Mapping[str, CelType]:
    return policy.types.rule


def _tier_sources(policy: Policy) -> list[_Source]:
    return [
        _Source(
            _where(policy, f"tier {tier.name}", ("tiers", i, "when")),
            tier.condition,
            policy.types.tier,
        )
        for i, tier in enumerate(policy.tiers)
    ]


def _atoms(sources: Sequence[_Source], refusal: str) -> Atoms:
    """The literals of every source, or BadInput naming the first it cannot enumerate."""
    atoms = Atoms()
    for source in sources:
        try:
            classify(source.condition.source, source.variables, atoms)
        except NotEnumerable as exc:
            raise BadInput(
                f"{refusal}: {source.where} {exc}, which the analysis cannot enumerate"
            ) from None
    return atoms


def _decision_sources(policies: Sequence[Policy], actions: frozenset[str]) -> list[_Source]:
    """The rules of `policies` naming `actions`, and their tiers if those rules read the tier."""
    sources: list[_Source] = []
    for policy in policies:
        rules = _rule_sources(policy, actions)
        sources += rules
        if any(_reads_tier(source.condition) for source in rules):
            sources += _tier_sources(policy)
    return sources


def _lenient_atoms(policies: Sequence[Policy]) -> Atoms:
    """Every literal any condition compares an attribute with (no refusal): for reviews that
    enumerate as well as they can, not for proofs."""
    atoms = Atoms()
    kinds = {str: "string", bool: "bool", int: "int", float: "double", type(None): "null"}
    for policy in policies:
        conditions = [tier.condition for tier in policy.tiers]
        for rule in policy.rules:
            conditions.append(rule.condition)
            if rule.break_glass is not None:
                conditions.append(rule.break_glass.allowed_when)
        conditions += [inv.staff for inv in policy.invariants if inv.staff is not None]
        for condition in conditions:
            for path in condition.paths:
                if len(path) == 2:
                    atoms.add(path)
            for path, values in condition.mentions.items():
                if len(path) == 2:
                    typed = [(kinds[type(v)], v) for v in values if type(v) in kinds]
                    atoms.add(path, *typed)
    return atoms


# --- the values each attribute takes -----------------------------------------------------------


def _numbers(literals: set[Literal]) -> list[float]:
    found = []
    for kind, value in literals:
        if kind in ("int", "double") and isinstance(value, int | float) and math.isfinite(value):
            found.append(value)
    return found


def _ints(literals: set[Literal]) -> list[int]:
    """Each literal, its neighbours, and so a value below, between and above them all."""
    values = {0}
    for number in _numbers(literals):
        low, high = math.floor(number), math.ceil(number)
        values |= {low - 1, low, high, high + 1}
    return sorted(values)


def _doubles(literals: set[Literal]) -> list[float]:
    numbers = sorted({float(n) for n in _numbers(literals)})
    if not numbers:
        return [0.0, math.nan]
    values = set(numbers)
    values |= {math.nextafter(numbers[0], -math.inf), numbers[0] - 1.0, numbers[-1] + 1.0}
    values.add(math.nextafter(numbers[-1], math.inf))
    for a, b in itertools.pairwise(numbers):
        values.add(a + (b - a) / 2)
    return [*sorted(v for v in values if math.isfinite(v)), math.nan]


def _strings(literals: set[Literal], other: str = _OTHER) -> list[str]:
    values = sorted({str(v) for kind, v in literals if kind == "string"})
    while other in values:
        other += "~"
    return [*values, other]


def _dyn(literals: set[Literal]) -> list[object]:
    """A `params` value: each literal, and one value of every type that is none of them."""
    numbers = _numbers(literals)
    top = math.ceil(max(numbers)) + 1 if numbers else 0
    candidates: list[object] = [value for _, value in sorted(literals, key=repr)]
    candidates += [
        _strings(literals)[-1],
        top,
        top + 0.5,
        True,
        False,
        None,
        [],
        {},
        ABSENT,
    ]
    return _distinct(candidates)


def _distinct(candidates: Sequence[object]) -> list[object]:
    """`candidates` without repeats (1, 1.0 and true stay apart)."""
    seen: set[tuple[str, str]] = set()
    values = []
    for value in candidates:
        key = (type(value).__name__, repr(value))
        if key not in seen:
            seen.add(key)
            values.append(value)
    return values


@dataclass(frozen=True)
class _Axis:
    """One attribute: its type, the literals conditions compare it with (None: not read)."""

    name: str
    kind: CelType
    literals: frozenset[Literal] | None
    custom: bool = False  # a record may lack it (declared by the policy, or by one connector)
    # Nothing checks its values against the declared type (declared by the policy: staff records,
    # context extras): it may hold a value of any type, which makes comparisons err.
    untyped: bool = False
    other: str = _OTHER  # the string standing for every value no literal names
    capped: bool = False  # lenient: a long list of literals gives subsets of up to 2 only

    def elements(self) -> list[object]:
        assert self.literals is not None
        base = _strip(self.kind)
        elem = base.elem if isinstance(base, ListType) else DYN
        kinds: dict[CelType, str] = {STRING: "string", INT: "int", DOUBLE: "double", BOOL: "bool"}
        wanted = kinds.get(_strip(elem))
        return sorted({v for k, v in self.literals if wanted is None or k == wanted}, key=repr)

    def size(self) -> int:
        if self.literals is not None and isinstance(_strip(self.kind), ListType):
            n = len(self.elements())
            subsets = 1 + n + n * (n - 1) // 2 + 1 if self._capped(n) else int(2**n)
            extra = len(_dyn(set(self.literals))) if self.untyped else 0
            return subsets + isinstance(self.kind, Nullable) + self.custom + extra
        return len(self.values())

    def _capped(self, n: int) -> bool:
        return self.capped and n > _LENIENT_POWERSET

    def values(self) -> list[object]:
        if self.literals is None:
            return [self.other if self.other != _OTHER else empty_value(self.kind)]
        literals = set(self.literals)
        base = _strip(self.kind)
        values: list[object]
        if isinstance(base, ListType):
            items = self.elements()
            sizes = (0, 1, 2) if self._capped(len(items)) else range(len(items) + 1)
            values = [list(subset) for n in sizes for subset in itertools.combinations(items, n)]
            if self._capped(len(items)):
                values.append(items)
        elif base == STRING:
            values = list(_strings(literals, self.other))
        elif base == INT:
            values = list(_ints(literals))
        elif base == DOUBLE:
            values = list(_doubles(literals))
        elif base == BOOL:
            values = [False, True]
        elif base == DYN:
            return _dyn(literals)
        else:  # a type only lenient enumeration lets through (dates): one value
            values = [empty_value(base)]
        if isinstance(self.kind, Nullable):
            values.append(None)
        if self.custom:
            values.append(ABSENT)
        if self.untyped:
            # Any type means any number too: a record may hold 0.5 where `int` is declared, and
            # CEL compares int and double by value, so the doubles' regions (between and beyond
            # the literals) are cut as well as the ints'.
            numeric = [*_ints(literals), *_doubles(literals)] if _numbers(literals) else []
            values = _distinct([*values, *_dyn(literals), *numeric])
        return values


def _strip(kind: CelType) -> CelType:
    while isinstance(kind, Nullable):
        kind = kind.inner
    return kind


class Enumeration:
    """Every distinguishable requester, account and context for the conditions in `atoms`
    (by default: every literal of every condition of `policies`, without any guarantee)."""

    def __init__(
        self,
        policies: Sequence[Policy],
        now: datetime | None = None,
        atoms: Atoms | None = None,
        *,
        platform: str = "chirp",
    ) -> None:
        self.now = now or datetime.now(UTC)
        self.today = self.now.date()
        self.platform = platform
        found = (atoms if atoms is not None else _lenient_atoms(policies)).literals
        self.read: set[Path] = set(found)
        custom: dict[str, set[str]] = {kind: set() for kind in ("staff", "account", "context")}
        fields: dict[str, dict[str, CelType]] = {"staff": {}, "account": {}, "context": {}}
        reported: set[str] = set()  # account attributes a connector reports
        for policy in reversed(policies):
            declared = policy.document.attributes
            custom["staff"] |= set(declared.staff)
            custom["account"] |= set(declared.account)
            custom["context"] |= set(declared.context)
            reported |= set(policy.catalog.account_attributes)
            fields["staff"].update(policy.types.staff.fields)
            fields["account"].update(policy.types.account_without_tier.fields)
            fields["context"].update(policy.types.context.fields)
        refs = found.get(("account", "ref"), set())
        for _, ref in refs:  # `p:i` is the account `i` on platform `p`, for every colon
            text = str(ref)
            for at in (i for i, c in enumerate(text) if c == ":"):
                found.setdefault(("account", "platform"), set()).add(("string", text[:at]))
                found.setdefault(("account", "id"), set()).add(("string", text[at + 1 :]))

        others = {
            ("staff", "id"): "anyone",
            ("account", "id"): "any-account",
            ("account", "platform"): platform,
        }

        def axes(kind: str, skip: set[str]) -> list[_Axis]:
            out = []
            for name, cel_type in fields[kind].items():
                if name in skip:
                    continue
                literals = found.get((kind, name))
                declared = name in custom[kind]
                # A proof assumes only what the engine is sure to get. An attribute a policy
                # declares may be missing and of any type (no connector reports it, and nothing
                # checks staff records against the declared types); one a connector reports may
                # be missing (accounts of the other platforms, foureyes' own, lack it).
                # Reviews (no atoms) enumerate the declared types only, as before.
                strict = atoms is not None
                absent = declared or (strict and kind == "account" and name in reported)
                out.append(
                    _Axis(
                        name,
                        cel_type,
                        None if literals is None else frozenset(literals),
                        custom=absent,
                        other=others.get((kind, name), _OTHER),
                        capped=atoms is None,
                        untyped=strict and declared,
                    )
                )
            return out

        self.staff_axes = axes("staff", {"starts", "ends", "status", "days_left"})
        self.account_axes = axes("account", {"ref"})
        self.context_axes = axes("context", {"now", "hour", "weekday"})
        self.days_left = self._days_left(found.get(("staff", "days_left")))
        self.hours = self._hours(found.get(("context", "hour")))
        self.weekdays: list[str | None] = (
            list(WEEKDAYS) if ("context", "weekday") in found else [None]
        )
        params = sorted(name for kind, name in found if kind == "params")
        self.params_axes = [_Axis(name, DYN, frozenset(found[("params", name)])) for name in params]

    def _days_left(self, literals: set[Literal] | None) -> list[int]:
        if literals is None:
            return [NO_END_DAYS_LEFT]
        limit = (date.max - self.today).days - 7  # further is no date
        values = {v for v in _ints(literals) if 0 <= v <= limit}
        return sorted(values | {0, NO_END_DAYS_LEFT})

    @staticmethod
    def _hours(literals: set[Literal] | None) -> list[int | None]:
        if literals is None:
            return [None]
        return [*sorted({v for v in _ints(literals) if 0 <= v <= 23} | {0, 23})]

    def count(self, actions: int, people: int = 0) -> int:
        """How many decisions checking `actions` over this enumeration takes (`people`: how
        many real people are checked besides)."""
        staff = len(self.days_left)
        for axis in self.staff_axes:
            staff *= axis.size()
        total = actions * 2 * (staff + people) * len(self.hours) * len(self.weekdays)
        for axis in (*self.account_axes, *self.context_axes, *self.params_axes):
            total *= axis.size()
        return total

    @staticmethod
    def _product(axes: Sequence[_Axis]) -> Iterator[dict[str, Any]]:
        names = [axis.name for axis in axes]
        for values in itertools.product(*(axis.values() for axis in axes)):
            yield dict(zip(names, values, strict=True))

    def staff(self, today: date | None = None) -> Iterator[tuple[Staff, str]]:
        """Every kind of active person on `today`, with a description of what is read."""
        day = today or self.today
        builtin = set(STAFF_BUILTIN_TYPES)
        for values in self._product(self.staff_axes):
            for days_left in self.days_left:
                ends = None if days_left == NO_END_DAYS_LEFT else day + timedelta(days=days_left)
                fields = {k: v for k, v in values.items() if k in builtin}
                fields.setdefault("id", "anyone")
                for key in ("groups", "identities"):
                    if key in fields:
                        fields[key] = tuple(fields[key])
                extra = {k: v for k, v in values.items() if k not in builtin and v is not ABSENT}
                person = Staff(ends=ends, attributes=extra, **fields)
                shown = {k: v for k, v in values.items() if ("staff", k) in self.read}
                if ("staff", "days_left") in self.read:
                    shown["days_left"] = days_left
                yield person, _describe("anyone", shown)

    def accounts(
        self, policy: Policy, platform: str | None = None
    ) -> Iterator[tuple[Account, str]]:
        """Every kind of account, with its tier under `policy`."""
        for classified, _ in self.described_accounts(policy, platform):
            yield classified

    def described_accounts(
        self, policy: Policy, platform: str | None = None
    ) -> Iterator[tuple[tuple[Account, str], str]]:
        for account, view, shown in self.account_views(platform):
            tier, _ = tier_of(policy.tiers, view)
            yield (account, tier), shown

    def account_views(
        self, platform: str | None = None
    ) -> Iterator[tuple[Account, dict[str, Any], str]]:
        """Every kind of account, with its view for tier conditions and its description."""
        default_platform = platform or self.platform
        for values in self._product(self.account_axes):
            pins = frozenset(values.pop("pins", ()))
            account_id = str(values.pop("id"))
            on = str(values.pop("platform"))
            if ("account", "platform") not in self.read:
                on = default_platform
            attributes = {k: v for k, v in values.items() if v is not ABSENT}
            account = Account(on, account_id, attributes, pins)
            view = {**attributes, "id": account.id, "ref": account.ref, "platform": on}
            view["pins"] = sorted(pins)
            shown = {k: v for k, v in values.items() if ("account", k) in self.read}
            if self.read & {("account", "id"), ("account", "ref"), ("account", "platform")}:
                shown = {"ref": account.ref, **shown}
            if ("account", "pins") in self.read:
                shown["pins"] = sorted(pins)
            yield account, view, _describe("", shown) or "no notable attributes"

    def count_accounts(self) -> int:
        total = 1
        for axis in self.account_axes:
            total *= axis.size()
        return total

    def contexts(self) -> Iterator[tuple[RequestContext, dict[str, Any]]]:
        for context, params, _ in self.described_contexts():
            yield context, params

    def described_contexts(self) -> Iterator[tuple[RequestContext, dict[str, Any], str]]:
        for values in self._product(self.context_axes):
            client = values.pop("client", None)
            extra = {k: v for k, v in values.items() if v is not ABSENT}
            for hour in self.hours:
                for weekday in self.weekdays:
                    moment = self.now if hour is None else self.now.replace(hour=hour)
                    if weekday is not None:  # weekday follows from `now`: move to that day
                        shift = (WEEKDAYS.index(weekday) - moment.weekday()) % 7
                        moment += timedelta(days=shift)
                    for params in self._product(self.params_axes):
                        clean = {k: v for k, v in params.items() if v is not ABSENT}
                        shown: dict[str, Any] = {
                            k: v for k, v in values.items() if ("context", k) in self.read
                        }
                        if client is not None and ("context", "client") in self.read:
                            shown["client"] = client
                        if hour is not None:
                            shown["hour"] = hour
                        if weekday is not None:
                            shown["weekday"] = weekday
                        shown |= {f"params.{k}": v for k, v in params.items()}
                        context = RequestContext(now=moment, client=client, extra=extra)
                        yield context, clean, _describe("", shown)


def _describe(prefix: str, shown: Mapping[str, Any]) -> str:
    parts = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    if not prefix:
        return parts
    return f"{prefix} with {parts}" if parts else prefix


# --- invariants ---------------------------------------------------------------------------------


def check_invariants(
    policy: Policy,
    directory: Directory | None = None,
    *,
    now: datetime | None = None,
    platform: str = "chirp",
    progress: Progress | None = None,
) -> list[Violation]:
    """Every invariant checked over the directory's people and the enumeration; one violation
    (the first found) per invariant. Raises BadInput ("cannot prove ...") when a condition the
    invariant depends on cannot be enumerated exactly, or there are too many cases.
    `progress`: called with (invariants checked, invariants), before the first and after each."""
    violations = []
    total = len(policy.invariants)
    for checked, invariant in enumerate(policy.invariants):
        if progress is not None:
            progress(checked, total)
        found = _check_one(policy, invariant, policy, directory, now, platform)
        if found is not None:
            violations.append(found)
    if progress is not None:
        progress(total, total)
    return violations


def check_update(
    proposed: Policy,
    in_force: Policy,
    directory: Directory | None = None,
    *,
    now: datetime | None = None,
    platform: str = "chirp",
    progress: Progress | None = None,
) -> list[Violation]:
    """A proposed policy's own invariants, then every invariant of the policy in force, checked
    on the proposed policy's decisions. For the invariants in force, accounts are classified by
    the in-force tiers: an update that redefines or drops a tier cannot make "VIT accounts need
    four people" hold vacuously, because the accounts that are VIT today stay covered. So an
    update may add and tighten invariants but never break one in force, even by deleting it.

    Invariants are a ratchet, and so is what they protect: raises BadInput when the proposed
    policy drops or weakens an invariant in force (`invariant_changes`), when its tiers take an
    account out of a tier an invariant in force names (`tier_changes`), or when either policy
    cannot be proven (see `check_invariants`). `progress`: called with (invariants checked,
    invariants of both policies), before the first and after each."""
    refused = [change for change in invariant_changes(in_force, proposed) if change.refused]
    if refused:
        raise BadInput(
            f"the proposed policy breaks an invariant in force: it {refused[0].describe()}; an "
            "update must keep every invariant in force, with the same id, at least as strict"
        )
    for change in tier_changes(in_force, proposed, now=now, platform=platform):
        guarding = [inv.spec.id for inv in in_force.invariants if inv.spec.tier == change.before]
        if guarding:
            raise BadInput(
                f"the proposed policy breaks an invariant in force: it moves accounts out of "
                f"tier {change.before}, which invariant {guarding[0]} names: an account with "
                f"{change.example} would be in tier {change.after}; an update may not take an "
                "account out of such a tier"
            )
    own = len(proposed.invariants)
    total = own + len(in_force.invariants)
    counted = None if progress is None else lambda done, _: progress(done, total)
    violations = check_invariants(proposed, directory, now=now, platform=platform, progress=counted)
    for checked, invariant in enumerate(in_force.invariants, own + 1):
        found = _check_one(proposed, invariant, in_force, directory, now, platform)
        if found is not None and found not in violations:
            violations.append(found)
        if progress is not None:
            progress(checked, total)
    return violations


def _check_one(
    policy: Policy,
    invariant: CompiledInvariant,
    classifier: Policy,
    directory: Directory | None,
    now: datetime | None,
    platform: str,
) -> Violation | None:
    """The first decision of `policy` that breaks `invariant`, over accounts whose tier is
    given by `classifier`'s tiers (the policy the invariant belongs to); an item carried by a
    batch is held to it too (`foureyes.policy.batch_analysis`), first by the batch rules' own
    bars, then case by case."""
    name = invariant.spec.id
    gaps = batch_gaps(policy, invariant)
    if gaps:
        gap = gaps[0]
        return Violation(
            invariant=name,
            staff="any requester the batch rule admits",
            action=gap.action,
            account=f"any {gap.tier} account",
            tier=gap.tier,
            break_glass=False,
            outcome=Outcome.PENDING,
            min_people=gap.people,
            rules=(f"batch rule {gap.rule}",),
            context="in a batch",
        )
    batched = BatchedPeople(policy)
    sources = _decision_sources([policy], invariant.actions)
    if invariant.spec.tier is not None:
        sources += _tier_sources(classifier)
    if invariant.staff is not None:
        index = classifier.invariants.index(invariant)
        where = _where(
            classifier, f"the staff condition of invariant {name}", ("invariants", index, "staff")
        )
        sources.append(_Source(where, invariant.staff, classifier.types.invariant_staff))
    atoms = _atoms(sources, f"cannot prove {name}")
    enumeration = Enumeration([policy, classifier], now, atoms, platform=platform)
    real = [] if directory is None else list(directory.staff.values())
    cases = enumeration.count(len(invariant.actions), len(real))
    if cases > MAX_CASES:
        raise BadInput(
            f"cannot prove {name}: {cases} cases to check (more than {MAX_CASES}); "
            "mention fewer distinct values in the conditions it depends on"
        )
    accounts = [
        (account, tier, shown)
        for (account, tier), shown in enumeration.described_accounts(classifier)
        if invariant.spec.tier is None or tier == invariant.spec.tier
    ]
    contexts = list(enumeration.described_contexts())
    invented: dict[date, list[tuple[Staff, str]]] = {}
    for action in sorted(invariant.actions):
        for context, params, when in contexts:
            today = context.now.date()
            if today not in invented:
                invented[today] = list(enumeration.staff(today))
            people = [(p, f"staff {p.id}") for p in real if p.floor_problem(today) is None]
            people += invented[today]
            if invariant.staff is not None:
                condition = invariant.staff
                people = [
                    (p, shown)
                    for p, shown in people
                    if _holds(condition.fn, {"staff": p.cel(today)})
                ]
            for person, who in people:
                for account, tier, what in accounts:
                    for glass in (False, True):
                        request = DecisionRequest(
                            person, action, account, context, params, None, glass
                        )
                        decision = decide(policy, request)
                        if _violates(invariant, decision):
                            return Violation(
                                invariant=name,
                                staff=who,
                                action=action,
                                account=what,
                                tier=tier,
                                break_glass=glass,
                                outcome=decision.outcome,
                                min_people=decision.min_people,
                                rules=decision.matched_ids,
                                context=when,
                            )
                        carried = batched(request, decision)
                        if carried is not None and _too_few(invariant, carried[1]):
                            return Violation(
                                invariant=name,
                                staff=who,
                                action=action,
                                account=what,
                                tier=tier,
                                break_glass=False,
                                outcome=Outcome.PENDING,
                                min_people=carried[1],
                                rules=(*decision.matched_ids, f"batch rule {carried[0].id}"),
                                context=", ".join(c for c in (when, "in a batch") if c),
                            )
    return None


def _holds(fn: Any, activation: Mapping[str, Any]) -> bool:
    """An invariant's `staff` condition; one that errors covers the person (fail closed)."""
    try:
        return fn(activation) is not False
    except Exception:
        return True


def _too_few(invariant: CompiledInvariant, people: int) -> bool:
    required = invariant.spec.min_people
    return required is not None and people < required


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


# --- comparing two policies ---------------------------------------------------------------------


def _shape(decision: Decision) -> dict[str, object]:
    """Everything about a decision that changes who may do what, and how (a denial is only
    a denial: its options bind nobody)."""
    if decision.outcome == Outcome.DENIED:
        return {"outcome": decision.outcome.value}
    options = decision.options
    glass = options.break_glass
    return {
        "outcome": decision.outcome.value,
        "people": decision.min_people,
        "approvers": tuple(
            sorted(
                (f.approvals, f.approvers, f.deny_veto, f.exclude or "", str(f.escalate or ""))
                for f in decision.factors
            )
        ),
        "justification": (
            options.justification_required,
            tuple(sorted(options.justification_patterns)),
            options.justification_tickets,
        ),
        "expires": options.expires,
        "delay": options.delay,
        "step_up": options.step_up,
        "notify": options.notify,
        "break-glass review": None if glass is None else (glass.reviewers, glass.within),
    }


def _summary(decision: Decision, glass: bool, changed: Sequence[str]) -> str:
    """The outcome, and what else changed when the outcome did not."""
    head = decision.outcome.value
    if decision.outcome == Outcome.PENDING:
        head = f"pending ({decision.min_people} people)"
    if glass:
        head = f"with break-glass: {head}"
    if "outcome" in changed or "people" in changed:
        return head
    shape = _shape(decision)
    details = []
    for key in changed:
        if key == "approvers":
            factors = "; ".join(f"{f.approvals} of {f.approvers!r}" for f in decision.factors)
            details.append(f"approvers: {factors}")
        else:
            details.append(f"{key}: {shape[key]}")
    return "; ".join([head, *details])


def diff_policies(
    old: Policy,
    new: Policy,
    *,
    now: datetime | None = None,
    platform: str = "chirp",
    progress: Progress | None = None,
) -> Comparison:
    """Which decisions differ between two policies, per (kind of requester, action, tier), and
    which actions could not be compared (a condition outside the enumerable grammar, or too
    many cases); also every invariant added, removed or changed (those foureyes refuses marked)
    and every kind of account that changes tier, and every change of a batch rule. Compared:
    outcome, people, factors (approvals and approvers text), options (justification, expiry,
    delay, step-up, notify) and break-glass, asked for and not. `progress`: called with
    (actions compared, actions both policies know), before the first and after each."""
    comparison = Comparison(invariants=invariant_changes(old, new), batches=batch_changes(old, new))
    try:
        comparison.tiers.extend(tier_changes(old, new, now=now, platform=platform))
    except BadInput as exc:
        comparison.unknown.append(exc.message)
    actions = sorted(set(old.catalog.actions) & set(new.catalog.actions))
    for compared, action in enumerate(actions):
        if progress is not None:
            progress(compared, len(actions))
        if _same_rules(old, new, action):
            continue  # the same rules (and tiers) decide the same way: nothing to enumerate
        try:
            comparison.differences.extend(_diff_action(old, new, action, now, platform))
        except BadInput as exc:
            comparison.unknown.append(exc.message)
    if progress is not None:
        progress(len(actions), len(actions))
    return comparison


def _same_rules(old: Policy, new: Policy, action: str) -> bool:
    """Whether both policies run the same rules, in the same order, for `action`, on the same
    tiers if a rule reads the tier, so that every decision on it is the same."""
    before = [rule for group in old.by_action.get(action, ()) for rule in group]
    after = [rule for group in new.by_action.get(action, ()) for rule in group]
    if [rule.spec for rule in before] != [rule.spec for rule in after]:
        return False
    if old.catalog.actions.get(action) != new.catalog.actions.get(action) or old.types != new.types:
        return False
    reads_tier = any(_reads_tier(rule.condition) for rule in before)
    return not reads_tier or old.document.tiers == new.document.tiers


def _diff_action(
    old: Policy, new: Policy, action: str, now: datetime | None, platform: str
) -> list[Difference]:
    sources = _decision_sources([old, new], frozenset({action}))
    atoms = _atoms(sources, f"cannot compare {action}")
    enumeration = Enumeration([old, new], now, atoms, platform=platform)
    cases = enumeration.count(1)
    if cases > MAX_CASES:
        raise BadInput(
            f"cannot compare {action}: {cases} cases (more than {MAX_CASES}); "
            "mention fewer distinct values in its conditions"
        )
    counts: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], tuple[str, str]] = {}
    accounts = list(enumeration.described_accounts(old))
    invented: dict[date, list[tuple[Staff, str]]] = {}
    for context, params, when in enumeration.described_contexts():
        today = context.now.date()
        if today not in invented:
            invented[today] = list(enumeration.staff(today))
        for person, who in invented[today]:
            for (account, tier_old), what in accounts:
                for glass in (False, True):
                    request = DecisionRequest(person, action, account, context, params, None, glass)
                    before, after = decide(old, request), decide(new, request)
                    shape_before, shape_after = _shape(before), _shape(after)
                    if shape_before == shape_after:
                        continue
                    keys = [*shape_before, *(k for k in shape_after if k not in shape_before)]
                    changed = [k for k in keys if shape_before.get(k) != shape_after.get(k)]
                    tier_new = after.tier or tier_old
                    tier = tier_old if tier_old == tier_new else f"{tier_old}→{tier_new}"
                    key = (tier, _summary(before, glass, changed), _summary(after, glass, changed))
                    counts[key] += 1
                    examples.setdefault(key, (who, ", ".join(p for p in (what, when) if p)))
    return [
        Difference(examples[key][0], action, tier, before, after, n, examples[key][1])
        for key, n in sorted(counts.items())
        for tier, before, after in [key]
    ]


# --- what an update may change: invariants and the tiers they name --------------------------------


@dataclass(frozen=True)
class InvariantChange:
    """An invariant added, removed or changed by an update; `refused` when the update weakens
    one in force (foureyes refuses such an update)."""

    invariant: str
    change: str  # "added", "removed", "tightened", "weakened"
    detail: str
    refused: bool

    def describe(self) -> str:
        if self.change == "added":
            return f"adds invariant {self.invariant}"
        if self.change == "removed":
            return f"removes invariant {self.invariant}"
        verb = "weakens" if self.change == "weakened" else "tightens"
        return f"{verb} invariant {self.invariant}: {self.detail}"


def _text(condition: str | None) -> str | None:
    return None if condition is None else " ".join(condition.split())


def _weakened(old: CompiledInvariant, new: CompiledInvariant) -> list[str]:
    """How `new` claims less than `old` (empty: at least as strict). At least as strict means:
    every action of `old`, the same tier, the same staff condition (or none: every requester),
    and `never` kept, or `min_people` not lowered (or turned into `never`)."""
    was, now = old.spec, new.spec
    why = []
    lost = sorted(old.actions - new.actions)
    if lost:
        why.append(f"no longer covers {', '.join(lost)}")
    if was.tier != now.tier:
        why.append(f"names tier {now.tier or '(any)'} instead of {was.tier or '(any)'}")
    if was.staff is None and now.staff is not None:
        why.append(f"now covers only requesters matching {now.staff!r}")
    elif was.staff is not None and now.staff is not None and _text(was.staff) != _text(now.staff):
        why.append(f"covers requesters matching {now.staff!r} instead of {was.staff!r}")
    if was.never and not now.never:
        why.append(f"says min_people {now.min_people} instead of never")
    elif not was.never and not now.never:
        assert was.min_people is not None
        assert now.min_people is not None
        if now.min_people < was.min_people:
            why.append(f"lowers min_people from {was.min_people} to {now.min_people}")
    return why


def invariant_changes(old: Policy, new: Policy) -> list[InvariantChange]:
    """The invariants `new` adds, removes or changes compared with `old` (the one in force).
    Removing one, or changing it to claim less (`_weakened`; a renamed one is removed), is
    refused; adding or tightening is not."""
    before = {inv.spec.id: inv for inv in old.invariants}
    after = {inv.spec.id: inv for inv in new.invariants}
    changes = []
    for name, inv in before.items():
        if name not in after:
            changes.append(InvariantChange(name, "removed", "", refused=True))
            continue
        mine = after[name]
        why = _weakened(inv, mine)
        if why:
            changes.append(InvariantChange(name, "weakened", "; ".join(why), refused=True))
        elif inv.spec.model_dump(exclude={"description"}) != mine.spec.model_dump(
            exclude={"description"}
        ) or (inv.actions != mine.actions):
            changes.append(InvariantChange(name, "tightened", _tightening(inv, mine), False))
    for name in after:
        if name not in before:
            changes.append(InvariantChange(name, "added", "", refused=False))
    return changes


def _tightening(old: CompiledInvariant, new: CompiledInvariant) -> str:
    parts = []
    gained = sorted(new.actions - old.actions)
    if gained:
        parts.append(f"also covers {', '.join(gained)}")
    if old.spec.staff is not None and new.spec.staff is None:
        parts.append("covers every requester")
    if new.spec.never and not old.spec.never:
        parts.append("says never")
    elif new.spec.min_people != old.spec.min_people:
        parts.append(f"raises min_people from {old.spec.min_people} to {new.spec.min_people}")
    return "; ".join(parts) or "rewritten, no weaker"


@dataclass(frozen=True)
class TierChange:
    """Accounts the old policy puts in tier `before` and the new one in tier `after`."""

    before: str
    after: str
    cases: int
    example: str  # one such account


def tier_changes(
    old: Policy, new: Policy, *, now: datetime | None = None, platform: str = "chirp"
) -> list[TierChange]:
    """Every change of tier between `old` and `new`, over the exact enumeration of accounts
    the tier conditions of both distinguish. Raises BadInput when a tier condition cannot be
    enumerated or there are too many kinds of account."""
    sources = _tier_sources(old) + _tier_sources(new)
    atoms = _atoms(sources, "cannot compare the tiers")
    enumeration = Enumeration([new, old], now, atoms, platform=platform)
    cases = enumeration.count_accounts()
    if cases > MAX_CASES:
        raise BadInput(
            f"cannot compare the tiers: {cases} kinds of account (more than {MAX_CASES}); "
            "mention fewer distinct values in the tier conditions"
        )
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for _, view, shown in enumeration.account_views():
        before, _ = tier_of(old.tiers, view)
        after, _ = tier_of(new.tiers, view)
        if before != after:
            counts[(before, after)] += 1
            examples.setdefault((before, after), shown)
    return [
        TierChange(before, after, n, examples[(before, after)])
        for (before, after), n in sorted(counts.items())
    ]
