"""The decision engine's fast path, and `satisfied`. Pure code, no I/O.

`decide` gives exactly the decision `foureyes.policy.reference.decide` gives (the evaluation order
of DESIGN "Decision semantics", written out there step by step); a differential test holds them
together over random policies, people, accounts and repeated calls. It is that path made fast for
the common case (a requester the floor lets through, a known action, an account that resolved, no
break-glass, conditions that all give a bool) and hands anything else to it.

`satisfied` then decides whether reviews meet the factors (bipartite matching of people to
factors, requester excluded, deny veto).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from foureyes.model import DecisionRequest, Outcome, Review, ReviewDecision, Staff
from foureyes.policy import reference
from foureyes.policy.cache import DecisionCache
from foureyes.policy.compiler import ActionPlan, Policy
from foureyes.policy.decision import Decision, FactorProgress, FactorStatus
from foureyes.policy.reference import FLOOR_RULE, Verdict, account_view, run, tier_of, verdict

__all__ = ["FLOOR_RULE", "decide", "satisfied", "tier_of"]

_DENIED = Outcome.DENIED
_new_object = object.__new__
_set_attribute = object.__setattr__


def decide(policy: Policy, request: DecisionRequest) -> Decision:
    """What the policy says about `request`, with every reason. Never raises on request data.

    The common case, made fast; anything else, including any exception on the way, goes to
    `reference.decide`, which gives the same decision (conditions are pure: evaluating them
    again there changes nothing). Three things are remembered between calls, in the policy's own
    cache (`Policy.cache`, see `foureyes.policy.cache`), each a function of immutable values only,
    so never stale: the requester's floor and view for the last day asked (per Staff), the
    account's view with its tier under this policy (per Account), and what follows from each set
    of matched rules on each tier of each action. The views the decision holds are its own
    copies: a caller that changes them changes nothing in the cache.
    """
    action = request.action
    plan = policy.plans.get(action)
    staff, account, context = request.staff, request.account, request.context
    if plan is None or account is None or request.break_glass:
        return reference.decide(policy, request)
    now = context.now
    today = now.date()
    cache = policy.cache
    # What the requester is on `today`: whether the floor lets them act, and their view. An
    # entry found under `id(staff)` is this very object's (see `foureyes.policy.cache`).
    entry = cache.people.get(id(staff))
    if entry is None or entry[1] != today:
        entry = _remember_person(cache, staff, today)
    if not entry[2]:
        return reference.decide(policy, request)
    staff_view: dict[str, Any] = entry[3]
    # The account's view with its tier under this policy.
    entry = cache.accounts.get(id(account))
    if entry is None:
        entry = _remember_account(policy, request)
        if entry is None:
            return reference.decide(policy, request)  # to record the tier's failure, every time
    view: dict[str, Any] = entry[1]
    tier = view["tier"]
    # The remembered views, and the params if a dict, go into the activation as they are: only
    # the conditions see it, and they only read (CEL changes no value; macros bind their variable
    # in a copy of the top level, which is this decision's own anyway). A decision's subject,
    # which its caller gets, is made of copies instead (below).
    params = request.params
    activation = {
        "staff": staff_view,
        "account": view,
        "action": plan.view,
        "params": params if type(params) is dict else dict(params),
        "context": context.cel(),
    }
    matched = 0  # bit i set: plan.rules[i] matched
    try:
        for bit, condition in plan.conditions:
            result = condition(activation)
            if result is True:
                matched |= bit
            elif result is not False:
                return reference.decide(policy, request)
    except Exception:
        return reference.decide(policy, request)

    # What follows from the matched rules depends on nothing but them, the action and the tier,
    # and is made of immutable values. The cache keeps it as the fields of the decision, all but
    # the four set here; each decision starts from a copy.
    key = (action, matched, tier)
    fixed = cache.verdicts.get(key)
    if fixed is None:
        fixed = _remember_verdict(policy, plan, key)
    fields = fixed.copy()
    fields["requester"] = staff.id
    fields["account"] = view["ref"]  # account.ref, already computed
    fields["decided_at"] = now
    if fields["outcome"] is _DENIED:
        fields["subject"] = {}
    else:
        # The decision's own copies of the views, and of every container they were built with
        # (the attributes' values are the immutable Staff's and Account's own, as in
        # `reference.decide`): a caller that changes them changes nothing remembered.
        requester = staff_view.copy()
        requester["groups"] = staff_view["groups"].copy()
        requester["identities"] = staff_view["identities"].copy()
        target = view.copy()
        target["pins"] = view["pins"].copy()
        fields["subject"] = {"requester": requester, "account": target, "action": plan.view.copy()}
    # What Decision(**fields) does (decision.py gives it a one-write __init__), minus the call.
    decision = _new_object(Decision)
    _set_attribute(decision, "__dict__", fields)
    return decision


def _remember_person(cache: DecisionCache, staff: Staff, today: date) -> tuple[Any, ...]:
    """Work out and remember whether the floor lets `staff` act on `today`, and their view."""
    return cache.remember_person(staff, today, staff.floor_problem(today) is None, staff.cel(today))


def _remember_account(policy: Policy, request: DecisionRequest) -> tuple[Any, ...] | None:
    """Work out and remember the account's view with its tier; None (nothing remembered) when
    a tier's condition fails, which the reference path records."""
    view = account_view(request)
    tier, failure = tier_of(policy.tiers, view)
    if failure is not None:
        return None
    view["tier"] = tier
    return policy.cache.remember_account(request.account, view)


def _remember_verdict(
    policy: Policy, plan: ActionPlan, key: tuple[str, int, str]
) -> dict[str, Any]:
    """Work out (and remember, while there is room) the fields of a decision that follow from
    `key`: an action, the rules of its plan that matched (bits) and the account's tier."""
    action, matched, tier = key
    rules = [rule for i, rule in enumerate(plan.rules) if matched >> i & 1]
    fixed = _fixed_fields(policy, action, tier, verdict(action, rules, tier))
    policy.cache.remember_verdict(key, fixed)
    return fixed


def _fixed_fields(policy: Policy, action: str, tier: str, found: Verdict) -> dict[str, Any]:
    """Every field of a Decision, in order, with those that `decide` sets per request as None."""
    return {
        "outcome": found.outcome,
        "policy_version": policy.version,
        "requester": None,
        "action": action,
        "account": None,
        "tier": tier,
        "matched": found.matched,
        "factors": found.factors,
        "options": found.options,
        "reasons": found.reasons,
        "errors": (),
        "break_glass": False,
        "decided_at": None,
        "subject": None,
        "factor_rules": found.factor_rules,
    }


def satisfied(
    decision: Decision,
    reviews: Iterable[Review],
    *,
    candidates: Iterable[Staff] = (),
    today: date | None = None,
    submitted: datetime | None = None,
    now: datetime | None = None,
) -> FactorStatus:
    """Whether `reviews` satisfy every factor of `decision` (DESIGN items 6 and 7).

    Reviews are counted per person (`reviewer.id`), whatever identity they used; a person with
    both an approve and a deny is taken to deny. The requester never counts. Each person counts
    for at most one factor: people are assigned to factors by maximum bipartite matching, so the
    result does not depend on the order of reviews. Reviewers are checked as given: pass their
    current records to re-check them at execution time. `candidates` (e.g. the staff directory)
    are used only to say who could still provide a missing approval.

    Escalation (a rule's `escalate`): a person matching its `to` is eligible for a review given
    at least `after` past `submitted` (the request's submission; the decision's time if not
    given), and as a candidate when `now` (the review's time when it has none) is that late.
    The review's own time decides, so a re-check at execution counts what the approval did.
    An escalation approver is still bound by the rule's `exclude`, the requester rule and
    distinctness: escalation changes who may approve, never how many.
    """
    if decision.outcome != Outcome.PENDING:
        ok = decision.outcome == Outcome.ALLOWED
        return FactorStatus(ok, (), (), (), (f"the request was {decision.outcome.value}",))
    when = today or _today(decision)
    people: dict[str, tuple[Staff, ReviewDecision]] = {}
    review_at: dict[str, datetime | None] = {}
    for review in reviews:
        # A person's latest review time: an escalation review counts only once it is late enough.
        if review.at is not None or review.reviewer.id not in review_at:
            review_at[review.reviewer.id] = review.at
        previous = people.get(review.reviewer.id)
        verdict = review.decision
        if previous is not None and previous[1] == ReviewDecision.DENY:
            verdict = ReviewDecision.DENY
        people[review.reviewer.id] = (review.reviewer, verdict)

    ignored: list[tuple[str, str]] = []
    vetoed_by: list[str] = []
    edges: dict[str, list[int]] = {}
    for person_id in sorted(people):
        person, verdict = people[person_id]
        if person_id == decision.requester:
            ignored.append((person_id, "the requester's own review never counts"))
            continue
        problem = person.floor_problem(when)
        if problem is not None:
            ignored.append((person_id, problem))
            continue
        moment = _review_time(review_at.get(person_id), now, decision)
        eligible = _eligible_factors(
            decision, person, when, _escalated(decision, submitted, moment)
        )
        if not eligible:
            ignored.append((person_id, "not an eligible approver for any factor"))
            continue
        if verdict == ReviewDecision.DENY:
            if any(decision.factors[i].deny_veto for i in eligible):
                vetoed_by.append(person_id)
            else:
                ignored.append((person_id, "deny without veto (deny_veto: false)"))
            continue
        edges[person_id] = eligible

    assignment = _match(edges, [factor.approvals for factor in decision.factors])
    reviewed = set(people)
    pool = [
        person
        for person in candidates
        if person.id not in reviewed
        and person.id != decision.requester
        and person.floor_problem(when) is None
    ]
    late = _escalated(decision, submitted, now or _review_time(None, None, decision))
    progress = _progress(decision, assignment, pool, when, late)

    reasons = []
    if vetoed_by:
        reasons.append(f"vetoed by {', '.join(vetoed_by)}")
    for item in progress:
        if item.missing:
            reasons.append(f"factor {item.rule}: {item.missing} more approval(s) needed")
    ok = not vetoed_by and all(item.missing == 0 for item in progress)
    if ok:
        reasons.append("every factor is satisfied by distinct people")
    return FactorStatus(ok, tuple(vetoed_by), tuple(progress), tuple(ignored), tuple(reasons))


def _progress(
    decision: Decision,
    assignment: Mapping[str, int],
    pool: Sequence[Staff],
    when: date,
    late: frozenset[int],
) -> list[FactorProgress]:
    """Each factor's approvals as assigned, and who in `pool` could give a missing one."""
    progress = []
    in_pool: list[tuple[str, list[int]]] | None = None  # each one's eligible factors, once
    for index, factor in enumerate(decision.factors):
        approved_by = tuple(sorted(p for p, f in assignment.items() if f == index))
        missing = factor.approvals - len(approved_by)
        could: tuple[str, ...] = ()
        if missing:
            if in_pool is None:
                in_pool = [(p.id, _eligible_factors(decision, p, when, late)) for p in pool]
            could = tuple(sorted(who for who, eligible in in_pool if index in eligible))
        progress.append(FactorProgress(factor.rule, factor.approvals, approved_by, missing, could))
    return progress


def _today(decision: Decision) -> date:
    moment = decision.decided_at or datetime.now(UTC)
    return moment.date()


def _review_time(at: datetime | None, now: datetime | None, decision: Decision) -> datetime:
    return at or now or decision.decided_at or datetime.now(UTC)


def _escalated(decision: Decision, submitted: datetime | None, moment: datetime) -> frozenset[int]:
    """The factors whose escalation group may approve at `moment`."""
    start = submitted or decision.decided_at
    if start is None:
        return frozenset()
    return frozenset(
        index
        for index, rule in enumerate(decision.factor_rules)
        if rule.escalation is not None and moment >= start + rule.escalation.after
    )


def _eligible_factors(
    decision: Decision, person: Staff, today: date, escalated: frozenset[int] = frozenset()
) -> list[int]:
    """The factors `person` may approve for. `escalated`: the factors whose escalation group
    may approve too. A rule's `exclude` binds both; any error counts as "not eligible" (and
    an `exclude` that errors as "excluded"): fail closed."""
    subject = decision.subject
    activation = {
        "approver": person.cel(today),
        "requester": subject["requester"],
        "account": subject["account"],
        "action": subject["action"],
    }
    eligible = []
    for index in range(len(decision.factors)):
        if index >= len(decision.factor_rules):
            eligible.append(index)  # the engine's own floor factor: anyone but the requester
            continue
        rule = decision.factor_rules[index]
        condition = rule.approvers
        assert condition is not None
        result, _ = run(condition.fn, activation)
        if not result and index in escalated:
            assert rule.escalation is not None
            result, _ = run(rule.escalation.to.fn, activation)
        if result and rule.exclude is not None:
            excluded, _ = run(rule.exclude.fn, activation)
            result = excluded is False
        if result:
            eligible.append(index)
    return eligible


def _match(edges: Mapping[str, list[int]], capacity: Sequence[int]) -> dict[str, int]:
    """Maximum assignment of people to factors, each factor taking up to its capacity
    (augmenting paths; the numbers are small: a handful of reviewers and factors)."""
    slots = [(factor, n) for factor, count in enumerate(capacity) for n in range(count)]
    slot_owner: dict[int, str] = {}
    person_slot: dict[str, int] = {}

    def augment(person: str, seen: set[int]) -> bool:
        for slot, (factor, _) in enumerate(slots):
            if factor not in edges[person] or slot in seen:
                continue
            seen.add(slot)
            owner = slot_owner.get(slot)
            if owner is None or augment(owner, seen):
                slot_owner[slot] = person
                person_slot[person] = slot
                return True
        return False

    for person in sorted(edges):
        augment(person, set())
    return {person: slots[slot][0] for person, slot in person_slot.items()}
