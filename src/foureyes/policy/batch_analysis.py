"""What the invariant prover and `policy diff` know about batches (`foureyes.policy.batches`).

An invariant's `min_people` holds for an item whether it comes alone or in a batch. Two checks,
both conservative:

- `batch_gaps` (static): a batch rule that names an action of a `min_people: M` invariant and
  carries the invariant's tier (or, for an invariant on every tier, any tier) must itself need
  at least M people (`1 + approvals`). Such a batch would otherwise state a bar below the
  invariant for accounts it carries, whether or not today's rules happen to split them out:
  the hole of a batch rule giving one person lone power over protected accounts.
- `batched_people` (per enumerated case, called by `analysis._check_one` for every decision it
  makes): when the item would be included in a batch, the people that batch needs. The prover
  holds it to the invariant as it holds the item's own decision. The batch rule's `when` is
  ignored there (a batch is assumed open to every requester): that only adds cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from foureyes.model import DecisionRequest
from foureyes.policy.batches import ItemClass, batch_rule_for, classify_item
from foureyes.policy.compiler import CompiledBatchRule, CompiledInvariant, Policy
from foureyes.policy.decision import Decision

__all__ = ["BatchGap", "batch_changes", "batch_gaps", "batched_people"]


@dataclass(frozen=True)
class BatchGap:
    """A batch rule whose own bar is below an invariant's, on an action and tier it carries."""

    invariant: str
    rule: str
    action: str
    tier: str
    people: int
    required: int

    def describe(self) -> str:
        return (
            f"invariant {self.invariant} violated: batch rule {self.rule} carries {self.tier} "
            f"accounts for {self.action} with {self.people} people (the requester and "
            f"{self.people - 1} approval(s)); the invariant requires {self.required}"
        )


def batch_gaps(policy: Policy, invariant: CompiledInvariant) -> list[BatchGap]:
    """Every (batch rule, action, tier) of `policy` whose bar is below `invariant`'s
    `min_people` (module docstring). An invariant's tier is matched by name: `check_update`
    also runs `batched_people` over the enumeration, which classifies accounts by tier."""
    required = invariant.spec.min_people
    if required is None:
        return []
    gaps: list[BatchGap] = []
    for rule in policy.batches:
        people = 1 + rule.spec.approvals
        if people >= required:
            continue
        tiers = sorted(rule.tiers)
        if invariant.spec.tier is not None:
            tiers = [tier for tier in tiers if tier == invariant.spec.tier]
        for action in sorted(rule.actions & invariant.actions):
            gaps.extend(
                BatchGap(invariant.spec.id, rule.id, action, tier, people, required)
                for tier in tiers
            )
    return gaps


class BatchedPeople:
    """`batched_people` for many decisions under one policy: what it concluded about each set
    of factor rules is remembered (the rules live as long as the policy)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._memo: dict[str, dict[tuple[int, ...], str | None]] = {}

    def __call__(
        self, request: DecisionRequest, decision: Decision
    ) -> tuple[CompiledBatchRule, int] | None:
        """The batch rule that would carry this item and the people that batch needs; None
        when no batch would carry it (no batch rule, break-glass, or not included)."""
        if request.break_glass:
            return None  # a batch is never break-glass
        rule = batch_rule_for(self.policy, request.action)
        if rule is None:
            return None
        memo = self._memo.setdefault(rule.id, {})
        kind, _ = classify_item(rule, decision, memo)
        if kind is not ItemClass.INCLUDED:
            return None
        return rule, 1 + rule.spec.approvals


def batched_people(
    policy: Policy, request: DecisionRequest, decision: Decision
) -> tuple[CompiledBatchRule, int] | None:
    """One-off `BatchedPeople(policy)(request, decision)`."""
    return BatchedPeople(policy)(request, decision)


def batch_changes(old: Policy, new: Policy) -> list[str]:
    """How each action's batch rule changes between two policies, one line per change, with
    "(weaker)" where the new rule lets a batch through with less: fewer approvals, other
    approvers, more tiers, more items, a looser `when`, fewer options."""
    lines = []
    for action in sorted(set(old.catalog.actions) | set(new.catalog.actions)):
        before, after = batch_rule_for(old, action), batch_rule_for(new, action)
        if before is None and after is None:
            continue
        if before is None:
            assert after is not None
            lines.append(f"{action}: batches allowed by new batch rule {after.id} (weaker)")
            continue
        if after is None:
            lines.append(f"{action}: batches no longer allowed (batch rule {before.id} gone)")
            continue
        lines.extend(f"{action}: {change}" for change in _rule_changes(before, after))
    return lines


def _rule_changes(before: CompiledBatchRule, after: CompiledBatchRule) -> list[str]:
    old, new = before.spec, after.spec
    changes = []

    def note(what: str, was: object, now: object, weaker: bool | None) -> None:
        # weaker None: which way a change of this kind goes is not worked out (a condition,
        # a pattern): said as such rather than guessed.
        if was != now:
            label = {True: " (weaker)", False: "", None: " (may be weaker)"}[weaker]
            changes.append(f"{what} {was} → {now}{label}")

    note("approvals", old.approvals, new.approvals, new.approvals < old.approvals)
    note("approvers", repr(old.approvers), repr(new.approvers), None)
    note("when", repr(old.when), repr(new.when), None)
    note("tiers", sorted(old.tiers), sorted(new.tiers), not set(new.tiers) <= set(old.tiers))
    note("max_items", old.max_items, new.max_items, new.max_items > old.max_items)
    note("justification", old.justification, new.justification, None)
    note("step_up", old.step_up, new.step_up, old.step_up and not new.step_up)
    note("expires", old.expires, new.expires, None)
    note("delay", old.delay, new.delay, None)
    note("notify", sorted(old.notify), sorted(new.notify), not set(old.notify) <= set(new.notify))
    return changes
