"""Batches: one action over many accounts under one quorum, never a protected account with it.

`plan_batch` decides every item with the engine on its own (`engine.decide`, with exactly the
request a single submission of it would make) and classifies it, in this order:

1. `denied`: the engine denies it; its reasons are the engine's.
2. `split_out`: it needs a bar the batch's cannot be proven to give, so it goes to its own
   request, decided and approved one by one. An item is split out when its tier is not among
   the batch rule's `tiers`; when a condition errored while deciding it; or when its own
   approvals are not provably implied by the batch rule's (`implies`).
3. `included`: everything else, including items the rules allow alone (the batch still needs
   its batch rule's approvals: batching never lowers a bar, and is a bar of its own).

The batch's bar (`BatchRequirement`) is the batch rule's factor, `approvals` distinct people
matching its `approvers`, with the strictest options of the rule and of every included item. As
every included item's own factors are implied by it, the bar is at least each item's own. At
approval and execution `batch_satisfied` checks both: the batch factor, and every included
item's own decision (`engine.satisfied`) with the same reviews.

"Provably implied" (`implies`), conservatively: the item's factors together need no more people
than the batch's approvals, and each factor's `approvers` condition is implied by the batch's,
shown syntactically: every top-level `&&` conjunct of the item's condition is, node for node,
one of the batch condition's conjuncts. A rule with `exclude` needs its negation as one of
them too. Anything else counts as not implied: in doubt, split out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from foureyes.errors import BadInput, BatchRefused
from foureyes.model import (
    Account,
    DecisionRequest,
    Outcome,
    RequestContext,
    Review,
    ReviewDecision,
    Staff,
)
from foureyes.policy.cel import ast
from foureyes.policy.cel.parser import parse
from foureyes.policy.compiler import DEFAULT_EXPIRES, CompiledBatchRule, CompiledRule, Policy
from foureyes.policy.conditions import Condition
from foureyes.policy.decision import Decision, FactorProgress, FactorStatus, Options
from foureyes.policy.engine import decide, satisfied
from foureyes.policy.reference import run

__all__ = [
    "BatchItem",
    "BatchPlan",
    "BatchRequirement",
    "BatchStatus",
    "ItemClass",
    "batch_rule_for",
    "batch_satisfied",
    "classify_item",
    "implies",
    "plan_batch",
]


class ItemClass(StrEnum):
    INCLUDED = "included"
    SPLIT_OUT = "split_out"
    DENIED = "denied"


@dataclass(frozen=True)
class BatchItem:
    """One account of the manifest, as planned. `account` is the resolved account's ref, not
    the spelling the requester gave; `decision` is the engine's for this item alone."""

    index: int
    account: str
    classification: ItemClass
    decision: Decision
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "account": self.account,
            "classification": self.classification.value,
            "tier": self.decision.tier,
            "outcome": self.decision.outcome.value,
            "min_people": self.decision.min_people,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class BatchRequirement:
    """The batch's bar: `approvals` distinct people matching `approvers` (never the requester;
    an eligible deny vetoes), with `options`; `min_people` counts the requester too."""

    rule: str
    action: str
    approvals: int
    approvers: str
    min_people: int
    options: Options
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action,
            "approvals": self.approvals,
            "approvers": self.approvers,
            "min_people": self.min_people,
            "options": self.options.to_dict(),
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class BatchPlan:
    """Every item of a batch decided and classified, and the bar of the batch."""

    policy_version: str
    action: str
    requester: str
    rule: CompiledBatchRule
    items: tuple[BatchItem, ...]
    requirement: BatchRequirement
    requester_record: Staff  # as planned: whose `manager` etc. the batch's approvers read
    action_view: Mapping[str, Any]  # `action.*` as the batch's approvers see it

    def _of(self, kind: ItemClass) -> tuple[BatchItem, ...]:
        return tuple(item for item in self.items if item.classification is kind)

    @property
    def included(self) -> tuple[BatchItem, ...]:
        return self._of(ItemClass.INCLUDED)

    @property
    def split_out(self) -> tuple[BatchItem, ...]:
        return self._of(ItemClass.SPLIT_OUT)

    @property
    def denied(self) -> tuple[BatchItem, ...]:
        return self._of(ItemClass.DENIED)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((kind.value for kind in ItemClass), 0)
        for item in self.items:
            counts[item.classification.value] += 1
        return counts

    def included_refs(self) -> tuple[str, ...]:
        """The refs of the included items, in manifest order (to compare two plans)."""
        return tuple(
            item.account for item in self.items if item.classification is ItemClass.INCLUDED
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "action": self.action,
            "requester": self.requester,
            "batch_rule": self.rule.id,
            "counts": self.counts,
            "requirement": self.requirement.to_dict(),
            "items": [item.to_dict() for item in self.items],
        }


def batch_rule_for(policy: Policy, action: str) -> CompiledBatchRule | None:
    """The batch rule naming `action` (the compiler allows at most one), or None."""
    for rule in policy.batches:
        if action in rule.actions:
            return rule
    return None


def plan_batch(
    policy: Policy,
    requester: Staff,
    action: str,
    accounts: Sequence[Account],
    params: Mapping[str, Any],
    now: datetime,
    *,
    justification: str | None = None,
    client: str | None = None,
) -> BatchPlan:
    """Decide and classify every item (module docstring); the plan and the batch's bar.

    `accounts` must be what the platform resolved (`connector.lookup`), each with the pins of
    its own ref merged: the decision sees the real account, whatever spelling was given.
    Raises BatchRefused when no batch rule names the action, or its `when` does not hold for
    the requester (or errors); BadInput for an empty manifest, one over `max_items`, or one
    account given twice (after resolution: two spellings of one account are a duplicate).
    """
    rule = batch_rule_for(policy, action)
    if rule is None:
        raise BatchRefused(
            f"no batch rule names {action}: batches of it are refused (deny by default); "
            "ask for each account on its own",
            action=action,
        )
    context = RequestContext(now=now, client=client)
    today = now.date()
    floor = requester.floor_problem(today)
    if floor is not None:
        raise BatchRefused(f"batch refused: {floor}", action=action, batch_rule=rule.id)
    spec = policy.catalog.actions[action]
    activation = {
        "staff": requester.cel(today),
        "action": spec.cel,
        "params": dict(params),
        "context": context.cel(),
    }
    allowed, error = run(rule.when.fn, activation)
    if not allowed:
        why = f"its condition failed ({error})" if error else "its `when` does not hold"
        raise BatchRefused(
            f"batch rule {rule.id} does not let {requester.id} ask for a batch of {action}: {why}",
            action=action,
            batch_rule=rule.id,
        )
    if not accounts:
        raise BadInput("a batch needs at least one account")
    limit = rule.spec.max_items
    if len(accounts) > limit:
        raise BadInput(
            f"a batch of {action} holds at most {limit} accounts (batch rule {rule.id}); "
            f"this one has {len(accounts)}",
            max_items=limit,
            count=len(accounts),
        )
    _refuse_duplicates(accounts)

    items = []
    included: list[Decision] = []
    memo: dict[tuple[int, ...], str | None] = {}
    for index, account in enumerate(accounts):
        request = DecisionRequest(
            staff=requester,
            action=action,
            account=account,
            context=context,
            params=params,
            justification=justification,
        )
        decision = decide(policy, request)
        kind, reasons = classify_item(rule, decision, memo)
        if kind is ItemClass.INCLUDED:
            included.append(decision)
        items.append(BatchItem(index, account.ref, kind, decision, reasons))
    requirement = BatchRequirement(
        rule=rule.id,
        action=action,
        approvals=rule.spec.approvals,
        approvers=rule.spec.approvers,
        min_people=1 + rule.spec.approvals,
        options=_options(rule, included),
        policy_version=policy.version,
    )
    return BatchPlan(
        policy.version, action, requester.id, rule, tuple(items), requirement, requester, spec.cel
    )


def _refuse_duplicates(accounts: Sequence[Account]) -> None:
    seen: dict[str, list[int]] = {}
    for index, account in enumerate(accounts):
        seen.setdefault(account.ref, []).append(index)
    twice = [(ref, where) for ref, where in seen.items() if len(where) > 1]
    if twice:
        shown = "; ".join(
            f"{ref} at items {', '.join(str(i + 1) for i in where)}" for ref, where in twice[:5]
        )
        more = f" (and {len(twice) - 5} more)" if len(twice) > 5 else ""
        raise BadInput(
            f"an account is given more than once: {shown}{more}",
            duplicates=[[ref, where] for ref, where in twice],
        )


def classify_item(
    rule: CompiledBatchRule, decision: Decision, memo: dict[tuple[int, ...], str | None]
) -> tuple[ItemClass, tuple[str, ...]]:
    """The class of an item whose decision (for this batch rule's action) is `decision`, and
    why (module docstring). `memo`: what was concluded per set of factor rules (the same few
    come back for thousands of items), keyed by their ids: the caller keeps the decisions, and
    so their rules, alive while it uses the memo, and uses it with one batch rule only."""
    if decision.outcome == Outcome.DENIED:
        return ItemClass.DENIED, decision.reasons
    if decision.tier not in rule.tiers:
        return ItemClass.SPLIT_OUT, (
            f"a {decision.tier} account: batch rule {rule.id} carries only "
            f"{', '.join(sorted(rule.tiers))} accounts",
        )
    if decision.errors:
        return ItemClass.SPLIT_OUT, (
            "a condition failed while deciding it: decided on its own instead",
        )
    if decision.break_glass:  # never asked for by plan_batch; kept as a guard
        return ItemClass.SPLIT_OUT, ("break-glass is decided on its own",)
    if decision.options.justification_tickets:
        # A ticket is checked per request, against its own account (`workflow.tickets`): an
        # item whose rules require one is never carried, unchecked, by a batch.
        return ItemClass.SPLIT_OUT, ("its rules require a ticket about its account",)
    if decision.outcome == Outcome.ALLOWED:
        return ItemClass.INCLUDED, ()
    if len(decision.factor_rules) != len(decision.factors):
        # A factor the engine adds itself (the floor's): no rule to compare with.
        return ItemClass.SPLIT_OUT, ("it needs an approval no batch rule can stand for",)
    key = tuple(id(r) for r in decision.factor_rules)
    if key in memo:
        why = memo[key]
    else:
        why = memo[key] = _not_implied(rule, decision.factor_rules)
    if why is not None:
        return ItemClass.SPLIT_OUT, (why,)
    return ItemClass.INCLUDED, ()


def _not_implied(batch: CompiledBatchRule, rules: Sequence[CompiledRule]) -> str | None:
    """Why the batch rule's factor does not provably give what `rules` require; None if it
    does."""
    needed = sum(rule.spec.approvals or 0 for rule in rules)
    if needed > batch.spec.approvals:
        names = ", ".join(rule.id for rule in rules)
        return (
            f"its own rules ({names}) need {needed} approvals, more than the "
            f"{batch.spec.approvals} of batch rule {batch.id}"
        )
    for rule in rules:
        if rule.approvers is None or not implies(batch.approvers, rule.approvers, rule.exclude):
            return (
                f"the approvers of its rule {rule.id} are not provably among the approvers "
                f"of batch rule {batch.id}"
            )
    return None


def implies(batch: Condition, item: Condition, exclude: Condition | None = None) -> bool:
    """Whether anyone `batch` lets approve is, provably, someone `item` lets approve and
    `exclude` does not exclude: every conjunct of `item` (and `!(exclude)`) is one of
    `batch`'s (module docstring). False whenever that cannot be shown."""
    have = _conjuncts(batch.source)
    if have is None:
        return False
    want = _conjuncts(item.source)
    if want is None:
        return False
    if exclude is not None:
        negated = _shape_of(f"!({exclude.source})")  # parentheses make no node
        if negated is None:
            return False
        want = want | {negated}
    return want <= have


@cache
def _shape_of(source: str) -> object | None:
    try:
        return _shape(parse(source))
    except Exception:
        return None


@cache
def _conjuncts(source: str) -> frozenset[object] | None:
    """The top-level `&&` conjuncts of a condition, each as a structural shape (positions
    left out); a literal `true` is no conjunct. None if the text does not parse."""
    try:
        node = parse(source)
    except Exception:
        return None
    found: set[object] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Binary) and current.op == "&&":
            stack.extend((current.left, current.right))
        elif isinstance(current, ast.Lit) and current.kind == "bool" and current.value is True:
            continue
        else:
            found.add(_shape(current))
    return frozenset(found)


_POSITIONS = frozenset({"pos", "end", "op_pos"})


def _shape(node: object) -> object:
    """A hashable value equal for two syntax trees exactly when they are the same tree."""
    if isinstance(node, ast.Node):
        parts: list[object] = [type(node).__name__]
        for name in _slots(type(node).__name__, type(node)):
            if name not in _POSITIONS:
                parts.append(_shape(getattr(node, name)))
        return tuple(parts)
    if isinstance(node, list | tuple):
        return ("[", *(_shape(item) for item in node))
    # Literal values: keep the type, so 1 and 1.0 and True stay apart.
    return (type(node).__name__, node)


_SLOTS: dict[str, tuple[str, ...]] = {}


def _slots(name: str, kind: type) -> tuple[str, ...]:
    found = _SLOTS.get(name)
    if found is None:
        found = _SLOTS[name] = tuple(f.name for f in fields(kind))
    return found


def _options(rule: CompiledBatchRule, decisions: Iterable[Decision]) -> Options:
    """The strictest of the batch rule's options and of every included item's."""
    spec = rule.spec
    patterns: tuple[str, ...] = ()
    if spec.justification is not None and spec.justification.pattern is not None:
        patterns = (spec.justification.pattern,)
    combined = Options(
        justification_required=(spec.justification is not None and spec.justification.required)
        or bool(patterns),
        justification_patterns=patterns,
        expires=rule.expires or DEFAULT_EXPIRES,
        delay=rule.delay or timedelta(0),
        step_up=spec.step_up,
        notify=tuple(sorted(spec.notify)),
    )
    seen: set[int] = set()
    for decision in decisions:
        options = decision.options
        if id(options) not in seen:  # the engine shares one Options per verdict
            seen.add(id(options))
            combined = _stricter(combined, options)
    return combined


def _stricter(one: Options, other: Options) -> Options:
    """Field by field, the stricter of two options: any flag set, every listed requirement
    (patterns, ticket systems, channels), the shorter expiry, the longer delay. Written over
    the fields so that an option added to `Options` later is combined too, not dropped."""
    merged: dict[str, Any] = {}
    for f in fields(Options):
        mine, theirs = getattr(one, f.name), getattr(other, f.name)
        if f.name == "expires":
            merged[f.name] = min(mine, theirs)
        elif isinstance(mine, timedelta):
            merged[f.name] = max(mine, theirs)
        elif isinstance(mine, bool):
            merged[f.name] = mine or theirs
        elif isinstance(mine, tuple):
            merged[f.name] = tuple(dict.fromkeys((*mine, *theirs)))
        elif mine is None and theirs is None:
            merged[f.name] = None
        else:  # break-glass terms: never part of a batch (`classify_item` splits them out)
            raise ValueError(f"cannot combine option {f.name} in a batch")
    if merged["notify"]:
        merged["notify"] = tuple(sorted(merged["notify"]))
    return Options(**merged)


# --- approvals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStatus:
    """Whether reviews satisfy a batch: its own factor (`batch`) and every included item's
    own decision (`items_unsatisfied` lists the refs they do not satisfy)."""

    satisfied: bool
    batch: FactorStatus
    items_unsatisfied: tuple[str, ...]
    vetoed_by: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def missing(self) -> int:
        return self.batch.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "batch": self.batch.to_dict(),
            "items_unsatisfied": list(self.items_unsatisfied),
            "vetoed_by": list(self.vetoed_by),
            "reasons": list(self.reasons),
        }


def batch_satisfied(
    plan: BatchPlan,
    reviews: Iterable[Review],
    *,
    candidates: Iterable[Staff] = (),
    today: date | None = None,
) -> BatchStatus:
    """Whether `reviews` satisfy the batch (module docstring), re-checked as given: pass the
    reviewers' current records and a plan made now to re-check at execution.

    Reviews count per person (a person with an approve and a deny denies); the requester never
    counts; a person the floor stops today (inactive, outside starts..ends) never counts; a
    condition that errors counts as "not eligible". A deny by a person eligible for the batch
    vetoes it. `candidates` only say who could still give a missing approval.
    """
    given = list(reviews)
    when = today or _plan_day(plan)
    batch = _batch_factor(plan, given, list(candidates), when)
    unsatisfied: list[str] = []
    vetoed = set(batch.vetoed_by)
    verdicts: dict[tuple[object, ...], FactorStatus] = {}
    for item in plan.items:
        if item.classification is not ItemClass.INCLUDED:
            continue
        decision = item.decision
        if decision.outcome == Outcome.ALLOWED:
            continue  # needs nobody on its own: the batch factor is its bar
        # Included items' approvers conditions read no account (they are implied by the
        # batch's, which cannot read one): one check per set of factor rules is every item's.
        key: tuple[object, ...] = tuple(id(rule) for rule in decision.factor_rules)
        if any(rule.escalation is not None for rule in decision.factor_rules):
            key = (*key, item.account)  # whom escalation admits may depend on the account
        status = verdicts.get(key)
        if status is None:
            status = verdicts[key] = satisfied(decision, given, today=when)
        if not status.satisfied:
            unsatisfied.append(item.account)
        vetoed.update(status.vetoed_by)
    reasons = list(batch.reasons)
    if unsatisfied:
        reasons.append(
            f"{len(unsatisfied)} included item(s) not satisfied on their own "
            f"(first: {unsatisfied[0]})"
        )
    if not plan.included and plan.denied:
        # Said as a denial: the items are not waiting for anyone, the policy refuses them now.
        first = plan.denied[0]
        reasons.append(
            f"no item is included: the policy in force now denies {len(plan.denied)} item(s) "
            f"(first: {first.account}: {'; '.join(first.reasons) or 'denied'}); there is "
            "nothing to approve"
        )
    elif not plan.included:
        reasons.append("no item is included: there is nothing to approve")
    ok = batch.satisfied and not unsatisfied and not vetoed and bool(plan.included)
    return BatchStatus(ok, batch, tuple(unsatisfied), tuple(sorted(vetoed)), tuple(reasons))


def _plan_day(plan: BatchPlan) -> date:
    for item in plan.items:
        if item.decision.decided_at is not None:
            return item.decision.decided_at.date()
    raise ValueError("a plan without items")  # plan_batch never makes one


def _batch_factor(
    plan: BatchPlan, reviews: Sequence[Review], candidates: Sequence[Staff], when: date
) -> FactorStatus:
    """The batch rule's own factor: `approvals` distinct eligible approvers, no eligible deny."""
    rule = plan.rule
    requester_view = plan.requester_record.cel(when)
    action_view = dict(plan.action_view)
    people: dict[str, tuple[Staff, ReviewDecision]] = {}
    for review in reviews:
        previous = people.get(review.reviewer.id)
        verdict = review.decision
        if previous is not None and previous[1] == ReviewDecision.DENY:
            verdict = ReviewDecision.DENY
        people[review.reviewer.id] = (review.reviewer, verdict)

    def eligible(person: Staff) -> bool:
        activation = {
            "approver": person.cel(when),
            "requester": requester_view,
            "action": action_view,
        }
        result, _ = run(rule.approvers.fn, activation)
        return result is True

    ignored: list[tuple[str, str]] = []
    vetoed_by: list[str] = []
    approved_by: list[str] = []
    for person_id in sorted(people):
        person, verdict = people[person_id]
        if person_id == plan.requester:
            ignored.append((person_id, "the requester's own review never counts"))
            continue
        problem = person.floor_problem(when)
        if problem is not None:
            ignored.append((person_id, problem))
            continue
        if not eligible(person):
            ignored.append((person_id, f"not an eligible approver for batch rule {rule.id}"))
            continue
        if verdict == ReviewDecision.DENY:
            vetoed_by.append(person_id)
        else:
            approved_by.append(person_id)
    needed = rule.spec.approvals
    missing = max(0, needed - len(approved_by))
    could: tuple[str, ...] = ()
    if missing:
        could = tuple(
            sorted(
                person.id
                for person in candidates
                if person.id not in people
                and person.id != plan.requester
                and person.floor_problem(when) is None
                and eligible(person)
            )
        )
    progress = FactorProgress(
        f"batch:{rule.id}", needed, tuple(approved_by[:needed]), missing, could
    )
    reasons = []
    if vetoed_by:
        reasons.append(f"vetoed by {', '.join(vetoed_by)}")
    if missing:
        reasons.append(f"batch rule {rule.id}: {missing} more approval(s) needed")
    ok = not vetoed_by and not missing
    if ok:
        reasons.append(f"batch rule {rule.id} is satisfied by distinct people")
    return FactorStatus(ok, tuple(vetoed_by), (progress,), tuple(ignored), tuple(reasons))
