"""Who may approve what, compared between two versions of the staff directory.

A person's approving power is the set of (rule, requester) pairs for which they satisfy the
rule's `approvers` condition, while they may act at all (`Staff.floor_problem`). An HR import
can widen it through any field such a condition reads, not only a group it names: employment
(`approver.employment == "employee"`), a manager (`approver.id != requester.manager`, changed
on the *requester's* record), a region, an attribute. `gains` finds what each person may
approve after that they could not before, by evaluating the conditions over every pair of
people the change can matter to (a person whose record changed, against everyone; everyone,
against a person whose record changed in a field the conditions read of a requester).

A condition that also reads the account or the action (whose values come from requests, not
from the directory) is not evaluated: for it, a change of a field it reads is reported instead
(`Gain.fields`), on the person whose record changed. So is every condition when the pairs to
evaluate exceed `budget`. Evaluation errors count as "not eligible", as in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from foureyes.model import Staff
from foureyes.policy.compiler import CompiledRule, Policy
from foureyes.policy.conditions import Condition
from foureyes.policy.reference import run

__all__ = ["BUDGET", "Gain", "approvable", "gains"]

BUDGET = 2_000_000  # condition evaluations an import may spend on this (a few seconds at most)
# Fields of a person whose change can make them able to act (and approve) at all.
_FLOOR = ("status", "starts", "ends")


@dataclass(frozen=True)
class Gain:
    """What one person may approve now and could not before, under one rule: the requesters
    whose requests they may now approve (`requesters`), or, where the rule's condition was
    not evaluated, the changed fields it reads (`fields`: `approver.x` of this person's own
    record, `requester.x` when others may now approve this person's requests)."""

    rule: str
    requesters: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


def _rules(policy: Policy) -> list[CompiledRule]:
    return [rule for rule in policy.rules if rule.approvers is not None]


def _conditions(rule: CompiledRule) -> list[Condition]:
    """What decides who may approve under `rule`: `approvers`, and its escalation group (`to`,
    who may approve once the request waited long enough) and `exclude`, which bind it."""
    assert rule.approvers is not None
    found = [rule.approvers]
    if rule.escalation is not None:
        found.append(rule.escalation.to)
    if rule.exclude is not None:
        found.append(rule.exclude)
    return found


def _reads(rule: CompiledRule, variable: str) -> frozenset[str] | None:
    """The fields of `variable` the rule's approvers conditions read; None for all of them
    (the variable used whole)."""
    fields: set[str] = set()
    for path in (p for condition in _conditions(rule) for p in condition.paths):
        if path[0] != variable:
            continue
        if len(path) == 1:
            return None
        fields.add(path[1])
    return frozenset(fields)


def _evaluable(rule: CompiledRule) -> bool:
    return not any(
        path[0] in ("account", "action")
        for condition in _conditions(rule)
        for path in condition.paths
    )


def _changed(old: Staff | None, new: Staff, today: date) -> frozenset[str]:
    """The condition-visible fields that differ between two versions of a person."""
    if old is None:
        return frozenset(new.cel(today))
    before, after = old.cel(today), new.cel(today)
    return frozenset(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _eligible(
    rule: CompiledRule, approver: Mapping[str, Any], requester: Mapping[str, Any]
) -> bool:
    assert rule.approvers is not None
    activation = {"approver": approver, "requester": requester, "account": {}, "action": {}}
    result, _ = run(rule.approvers.fn, activation)
    if result is not True and rule.escalation is not None:
        # The escalation group's power counts as power: it is theirs once a request waits.
        result, _ = run(rule.escalation.to.fn, activation)
    if result is True and rule.exclude is not None:
        excluded, _ = run(rule.exclude.fn, activation)
        return excluded is False
    return result is True


def approvable(
    policy: Policy, person: Staff, everyone: Mapping[str, Staff], today: date
) -> list[str]:
    """The rules under which `person` may approve some request of someone in `everyone` today
    (with the rules that cannot be evaluated from the directory alone, which might): what a
    login moved or added onto them hands to whoever signs in with it."""
    if person.floor_problem(today) is not None:
        return []
    view = person.cel(today)
    found = []
    for rule in _rules(policy):
        if not _evaluable(rule):
            found.append(rule.id)
            continue
        others = (o for o in everyone.values() if o.id != person.id)
        if any(
            o.floor_problem(today) is None and _eligible(rule, view, o.cel(today)) for o in others
        ):
            found.append(rule.id)
    return found


def gains(
    policy: Policy,
    before: Mapping[str, Staff],
    after: Mapping[str, Staff],
    today: date,
    *,
    budget: int = BUDGET,
) -> dict[str, list[Gain]]:
    """Per person of `after`, what they may approve now that they could not in `before` (see
    the module). People only in `before` are gone (they approve nothing now)."""
    views_after = {sid: p.cel(today) for sid, p in after.items()}
    views_before = {sid: p.cel(today) for sid, p in before.items()}
    can_act = {sid for sid, p in after.items() if p.floor_problem(today) is None}
    could_act = {sid for sid, p in before.items() if p.floor_problem(today) is None}
    changed = {sid: _changed(before.get(sid), p, today) for sid, p in after.items()}
    changed = {sid: fields for sid, fields in changed.items() if fields}
    found: dict[str, list[Gain]] = {}
    spent = 0
    for rule in _rules(policy):
        as_approver = _reads(rule, "approver")
        as_requester = _reads(rule, "requester")
        # Requesters whose change the condition can see; approvers whose change it can see
        # (or who may act now and could not before: the condition was out of their reach).
        moved_requesters = [
            sid for sid, fields in changed.items() if as_requester is None or fields & as_requester
        ]
        moved_approvers = {
            sid
            for sid, fields in changed.items()
            if as_approver is None or fields & as_approver or sid not in could_act
        }
        pairs = len(moved_approvers) * len(after) + len(after) * len(moved_requesters)
        if not _evaluable(rule) or spent + pairs > budget:
            acting = (can_act, could_act, set(before))
            _reported(rule, found, changed, acting, as_approver, as_requester)
            continue
        spent += pairs
        for approver in sorted(can_act):
            requesters = list(after) if approver in moved_approvers else moved_requesters
            new_view, old_view = views_after[approver], views_before.get(approver)
            whom = []
            for requester in requesters:
                if requester == approver or requester not in can_act:
                    continue
                if not _eligible(rule, new_view, views_after[requester]):
                    continue
                old_requester = views_before.get(requester, views_after[requester])
                if (
                    old_view is not None
                    and approver in could_act
                    and _eligible(rule, old_view, old_requester)
                ):
                    continue
                whom.append(requester)
            if whom:
                found.setdefault(approver, []).append(Gain(rule.id, tuple(sorted(whom))))
    return found


def _reported(
    rule: CompiledRule,
    found: dict[str, list[Gain]],
    changed: Mapping[str, frozenset[str]],
    acting: tuple[set[str], set[str], set[str]],
    as_approver: frozenset[str] | None,
    as_requester: frozenset[str] | None,
) -> None:
    """A rule not evaluated: each changed field it reads, on the person whose record it is
    (who may act now; a requester's fields only for someone already there before)."""
    can_act, could_act, existed = acting
    for sid, fields in sorted(changed.items()):
        if sid not in can_act:
            continue
        seen = []
        mine = fields if as_approver is None else fields & as_approver
        if sid not in could_act:
            mine |= fields & set(_FLOOR) or {"status"}
        seen += [f"approver.{name}" for name in sorted(mine)]
        if sid in existed:
            theirs = fields if as_requester is None else fields & as_requester
            seen += [f"requester.{name}" for name in sorted(theirs)]
        if seen:
            found.setdefault(sid, []).append(Gain(rule.id, fields=tuple(seen)))
