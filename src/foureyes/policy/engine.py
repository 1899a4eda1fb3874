"""The decision engine: DESIGN "Decision semantics", implemented exactly. Pure code, no I/O.

Evaluation order of `decide`:

1. Floor (not configurable): requester active and inside `starts..ends`; the action exists; the
   account resolved. Otherwise denied.
2. Every rule whose actions name the action is evaluated (all of them, so the reasons are
   complete). A condition that errors counts as matching for a deny rule and as not matching for
   an allow/require rule (fail closed); the error is recorded.
3. A matching deny rule → denied. 4. No matching allow/require → denied by default.
5. Matching require rules → pending, one factor each, all needed. Only allow rules → allowed.
6. foureyes' own actions (policy, staff, pins) that would be allowed at once are held for one
   approval by another person: a floor no policy can lower.
7. Break-glass, when asked for, turns pending into allowed only if every matching require rule
   permits it for this requester; otherwise the request is denied.

`satisfied` then decides whether reviews meet the factors (bipartite matching of people to
factors, requester excluded, deny veto).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from foureyes.model import DecisionRequest, Effect, Outcome, Review, ReviewDecision, Staff
from foureyes.policy.catalog import SELF_GOVERNING_NAMES
from foureyes.policy.compiler import (
    DEFAULT_EXPIRES,
    CompiledRule,
    CompiledTier,
    Policy,
)
from foureyes.policy.decision import (
    BreakGlassTerms,
    ConditionFailure,
    Decision,
    Factor,
    FactorProgress,
    FactorStatus,
    Options,
    RuleMatch,
)

FLOOR_RULE = "foureyes-floor"
_FLOOR_FACTOR = Factor(
    rule=FLOOR_RULE,
    approvals=1,
    approvers="any active staff member other than the author",
    deny_veto=True,
)


def _run(condition_fn: Any, activation: Mapping[str, Any]) -> tuple[bool | None, str | None]:
    """Evaluate; (result, None) or (None, error). A non-bool result is an error."""
    try:
        result = condition_fn(activation)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if result is True or result is False:
        return result, None
    return None, f"condition gave {type(result).__name__}, not bool"


def tier_of(
    tiers: Sequence[CompiledTier], account_view: Mapping[str, Any]
) -> tuple[str, ConditionFailure | None]:
    """First tier whose condition holds. A tier whose condition errors is assigned (fail closed:
    tiers are listed most protected first, so the error can only make protection stricter)."""
    activation = {"account": account_view}
    for tier in tiers:
        result, error = _run(tier.condition.fn, activation)
        if error is not None:
            failure = ConditionFailure(
                where=f"tier {tier.name}",
                error=error,
                consequence=f"account given tier {tier.name}",
            )
            return tier.name, failure
        if result:
            return tier.name, None
    return tiers[-1].name, None  # unreachable: the compiler requires a catch-all last tier


def account_view(request: DecisionRequest) -> dict[str, Any]:
    account = request.account
    assert account is not None
    view = dict(account.attributes)
    view["id"] = account.id
    view["ref"] = account.ref
    view["platform"] = account.platform
    view["pins"] = sorted(account.pins)
    return view


class _Verdict(NamedTuple):
    """What follows from the rules that matched, given the action and the tier: every part of
    the decision except who asked, when, the condition views and the condition errors."""

    outcome: Outcome
    matched: tuple[RuleMatch, ...]
    factors: tuple[Factor, ...]
    options: Options
    reasons: tuple[str, ...]
    factor_rules: tuple[CompiledRule, ...]  # the require rules behind `factors`


# One ActionPlan's memo of verdicts holds at most this many (matched rules, tier) pairs; past it,
# verdicts are still computed, just not kept. Real policies reach a few dozen.
_VERDICTS_PER_ACTION = 4096
_NO_OPTIONS = Options()
_DENIED = Outcome.DENIED
_new_object = object.__new__
_set_attribute = object.__setattr__


def decide(policy: Policy, request: DecisionRequest) -> Decision:
    """What the policy says about `request`, with every reason. Never raises on request data.

    This is the common case made fast: a requester the floor lets through, a known action, an
    account that resolved, no break-glass, and conditions that all give a bool. Anything else,
    including any exception on the way, goes to `_decide_carefully`, which is the evaluation
    order above written out and gives the same decision (conditions are pure: evaluating them
    again there changes nothing). Three things are remembered between calls, each a function of
    immutable values only, so never stale: the requester's floor and view for a day (on the
    Staff), the account's view with its tier under this policy (on the Account, keyed by
    `Policy.key`), and what follows from each set of matched rules on each tier (on the action's
    plan). The views a decision holds are copies: what one decision holds is its own.
    """
    plan = policy.plans.get(request.action)
    staff, account, context = request.staff, request.account, request.context
    now = context.now
    today = now.date()
    if plan is None or account is None or request.break_glass:
        return _decide_carefully(policy, request)
    # What the requester is on `today`, remembered on the Staff for the last day asked: whether
    # the floor lets them act, and their view (`staff.cel(today)`); both are functions of the
    # immutable Staff and the day.
    remembered = staff.engine_memo.get("day")
    if remembered is None or remembered[0] != today:
        in_force = staff.floor_problem(today) is None
        remembered = staff.engine_memo["day"] = (today, in_force, staff.cel(today))
    if not remembered[1]:
        return _decide_carefully(policy, request)
    staff_view = remembered[2]

    # The account's view with its tier under this policy, remembered on the Account: the tier is
    # a function of the account's view and of the policy's tiers, both immutable.
    remembered = account.engine_memo.get("view")
    if remembered is None or remembered[0] is not policy.key:
        base = account_view(request)
        tier, failure = tier_of(policy.tiers, base)
        if failure is not None:
            return _decide_carefully(policy, request)  # to record the failure, every time
        base["tier"] = tier
        remembered = account.engine_memo["view"] = (policy.key, base)
    view = remembered[1]
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
                return _decide_carefully(policy, request)
    except Exception:
        return _decide_carefully(policy, request)

    # What follows from the matched rules depends on nothing but them, the action (one plan
    # each) and the tier, and is made of immutable values. The memo keeps it as the fields of the
    # decision, all but the four set here; each decision starts from a copy.
    key = (matched, tier)
    fixed = plan.verdicts.get(key)
    if fixed is None:
        rules = [rule for i, rule in enumerate(plan.rules) if matched >> i & 1]
        fixed = _fixed_fields(policy, request.action, tier, _verdict(request.action, rules, tier))
        if len(plan.verdicts) < _VERDICTS_PER_ACTION:
            plan.verdicts[key] = fixed
    fields = fixed.copy()
    fields["requester"] = staff.id
    fields["account"] = view["ref"]  # account.ref, already computed
    fields["decided_at"] = now
    if fields["outcome"] is not _DENIED:
        own_view = view.copy()
        own_view["pins"] = view["pins"].copy()
        fields["subject"] = {
            "requester": staff_view.copy(),
            "account": own_view,
            "action": plan.view,
        }
    else:
        fields["subject"] = {}
    # What Decision(**fields) does (decision.py gives it a one-write __init__), minus the call.
    decision = _new_object(Decision)
    _set_attribute(decision, "__dict__", fields)
    return decision


def _fixed_fields(policy: Policy, action: str, tier: str, verdict: _Verdict) -> dict[str, Any]:
    """Every field of a Decision, in order, with those that `decide` sets per request as None."""
    return {
        "outcome": verdict.outcome,
        "policy_version": policy.version,
        "requester": None,
        "action": action,
        "account": None,
        "tier": tier,
        "matched": verdict.matched,
        "factors": verdict.factors,
        "options": verdict.options,
        "reasons": verdict.reasons,
        "errors": (),
        "break_glass": False,
        "decided_at": None,
        "subject": None,
        "factor_rules": verdict.factor_rules,
    }


def _verdict(action: str, matched: Sequence[CompiledRule], tier: str) -> _Verdict:
    """Steps 3 to 6 of the evaluation order, given the rules that matched (in evaluation order:
    deny, allow, require) for `action` on an account of `tier`."""
    matches = tuple(RuleMatch(rule.id, rule.effect) for rule in matched)
    denies = [rule for rule in matched if rule.effect == Effect.DENY]
    if denies:
        vetoes = tuple(f"denied by rule {rule.id}" for rule in denies)
        return _Verdict(Outcome.DENIED, matches, (), _NO_OPTIONS, vetoes, ())
    if not matched:
        reason = (
            f"denied by default: no allow or require rule matches {action} "
            f"on a {tier} account for this requester"
        )
        return _Verdict(Outcome.DENIED, matches, (), _NO_OPTIONS, (reason,), ())

    require_rules = tuple(rule for rule in matched if rule.effect == Effect.REQUIRE)
    factors = tuple(_factor(rule) for rule in require_rules)
    reasons = [
        f"rule {rule.id} requires {rule.spec.approvals} approval"
        f"{'s' if (rule.spec.approvals or 0) > 1 else ''} from: {rule.spec.approvers}"
        for rule in require_rules
    ]
    if not require_rules:
        reasons = [f"allowed by rule {rule.id}" for rule in matched]
    options = _combine(matched)
    outcome = Outcome.PENDING if require_rules else Outcome.ALLOWED

    if action in SELF_GOVERNING_NAMES and outcome == Outcome.ALLOWED:
        outcome, factors = Outcome.PENDING, (_FLOOR_FACTOR,)
        reasons.append(
            "held by the floor: a change to who may do what needs one approval by another person"
        )
    return _Verdict(outcome, matches, factors, options, tuple(reasons), require_rules)


def _decide_carefully(policy: Policy, request: DecisionRequest) -> Decision:
    """`decide`, step by step: every case, every condition error recorded, break-glass."""
    staff = request.staff
    today = request.context.now.date()
    account_ref = request.account.ref if request.account is not None else None
    floor = staff.floor_problem(today)
    if floor is None and request.action not in policy.catalog.actions:
        floor = f"unknown action {request.action!r}"
    if floor is None and request.account is None:
        floor = "the account does not resolve on its platform"
    if floor is not None:
        return _denied(policy, request, account_ref, None, (), (), f"denied by the floor: {floor}")

    spec = policy.catalog.actions[request.action]
    account = account_view(request)
    tier, tier_failure = tier_of(policy.tiers, account)
    account["tier"] = tier
    errors: list[ConditionFailure] = [] if tier_failure is None else [tier_failure]
    activation = {
        "staff": staff.cel(today),
        "account": account,
        "action": spec.cel,
        "params": dict(request.params),
        "context": request.context.cel(),
    }
    matched: list[CompiledRule] = []
    for group in policy.by_action[request.action]:
        for rule in group:
            result, error = _run(rule.condition.fn, activation)
            if error is not None:
                fails_closed = rule.effect == Effect.DENY
                errors.append(
                    ConditionFailure(
                        where=f"rule {rule.id}",
                        error=error,
                        consequence="treated as matching"
                        if fails_closed
                        else "treated as not matching",
                    )
                )
                result = fails_closed
            if result:
                matched.append(rule)

    verdict = _verdict(request.action, matched, tier)
    if verdict.outcome == Outcome.DENIED:
        return _denied(
            policy, request, account_ref, tier, verdict.matched, errors, *verdict.reasons
        )
    subject = {
        "requester": activation["staff"],
        "account": account,
        "action": spec.cel,
    }
    base = Decision(
        outcome=verdict.outcome,
        policy_version=policy.version,
        requester=staff.id,
        action=request.action,
        account=account_ref,
        tier=tier,
        matched=verdict.matched,
        factors=verdict.factors,
        options=verdict.options,
        reasons=verdict.reasons,
        errors=tuple(errors),
        decided_at=request.context.now,
        subject=subject,
        factor_rules=verdict.factor_rules,
    )
    if not request.break_glass or verdict.outcome == Outcome.ALLOWED:
        return base
    return _break_glass(base, verdict.factor_rules, activation, errors)


def _factor(rule: CompiledRule) -> Factor:
    assert rule.spec.approvals is not None
    assert rule.spec.approvers is not None
    return Factor(
        rule=rule.id,
        approvals=rule.spec.approvals,
        approvers=rule.spec.approvers,
        deny_veto=rule.spec.deny_veto,
    )


def _combine(rules: Iterable[CompiledRule]) -> Options:
    """Strictest of every matching rule's options (DESIGN item 8)."""
    required = False
    patterns: list[str] = []
    expires = DEFAULT_EXPIRES
    delay = None
    step_up = False
    notify: set[str] = set()
    for rule in rules:
        spec = rule.spec
        if spec.justification is not None:
            required = required or spec.justification.required
            pattern = spec.justification.pattern
            if pattern is not None and pattern not in patterns:
                patterns.append(pattern)
        if rule.expires is not None:
            expires = min(expires, rule.expires)
        if rule.delay is not None:
            delay = rule.delay if delay is None else max(delay, rule.delay)
        step_up = step_up or spec.step_up
        notify.update(spec.notify)
    options = Options(
        justification_required=required or bool(patterns),
        justification_patterns=tuple(patterns),
        expires=expires,
        step_up=step_up,
        notify=tuple(sorted(notify)),
    )
    if delay is not None:
        options = Options(**{**options.__dict__, "delay": delay})
    return options


def _break_glass(
    base: Decision,
    require_rules: Sequence[CompiledRule],
    activation: Mapping[str, Any],
    errors: list[ConditionFailure],
) -> Decision:
    refusal = None
    if base.action in SELF_GOVERNING_NAMES:
        refusal = "foureyes' own actions can never be done by break-glass"
    reviewers, within = 0, None
    for rule in require_rules:
        if refusal is not None:
            break
        glass = rule.break_glass
        if glass is None:
            refusal = f"rule {rule.id} does not allow break-glass"
            break
        result, error = _run(glass.allowed_when.fn, activation)
        if error is not None:
            errors.append(
                ConditionFailure(
                    where=f"break_glass of rule {rule.id}",
                    error=error,
                    consequence="break-glass not allowed",
                )
            )
        if not result:
            refusal = f"rule {rule.id} does not allow break-glass for this requester"
            break
        reviewers = max(reviewers, glass.review)
        within = glass.within if within is None else min(within, glass.within)
    if refusal is not None or within is None:
        return Decision(
            **{
                **base.__dict__,
                "outcome": Outcome.DENIED,
                "factors": (),
                "factor_rules": (),
                "errors": tuple(errors),
                "reasons": (f"break-glass refused: {refusal}",),
            }
        )
    options = Options(
        **{**base.options.__dict__, "break_glass": BreakGlassTerms(reviewers, within)}
    )
    return Decision(
        **{
            **base.__dict__,
            "outcome": Outcome.ALLOWED,
            "factors": (),
            "factor_rules": (),
            "options": options,
            "break_glass": True,
            "errors": tuple(errors),
            "reasons": (
                f"break-glass: executes at once; {reviewers} reviewer"
                f"{'s' if reviewers > 1 else ''} must sign it off within {within}",
                *base.reasons,
            ),
        }
    )


def _denied(
    policy: Policy,
    request: DecisionRequest,
    account_ref: str | None,
    tier: str | None,
    matched: Sequence[RuleMatch],
    errors: Sequence[ConditionFailure],
    *reasons: str,
) -> Decision:
    return Decision(
        outcome=Outcome.DENIED,
        policy_version=policy.version,
        requester=request.staff.id,
        action=request.action,
        account=account_ref,
        tier=tier,
        matched=tuple(matched),
        factors=(),
        options=Options(),
        reasons=reasons,
        errors=tuple(errors),
        decided_at=request.context.now,
    )


def satisfied(
    decision: Decision,
    reviews: Iterable[Review],
    *,
    candidates: Iterable[Staff] = (),
    today: date | None = None,
) -> FactorStatus:
    """Whether `reviews` satisfy every factor of `decision` (DESIGN items 6 and 7).

    Reviews are counted per person (`reviewer.id`), whatever identity they used; a person with
    both an approve and a deny is taken to deny. The requester never counts. Each person counts
    for at most one factor: people are assigned to factors by maximum bipartite matching, so the
    result does not depend on the order of reviews. Reviewers are checked as given: pass their
    current records to re-check them at execution time. `candidates` (e.g. the staff directory)
    are used only to say who could still provide a missing approval.
    """
    if decision.outcome != Outcome.PENDING:
        ok = decision.outcome == Outcome.ALLOWED
        return FactorStatus(ok, (), (), (), (f"the request was {decision.outcome.value}",))
    when = today or _today(decision)
    people: dict[str, tuple[Staff, ReviewDecision]] = {}
    for review in reviews:
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
        eligible = _eligible_factors(decision, person, when)
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
    progress = []
    for index, factor in enumerate(decision.factors):
        approved_by = tuple(sorted(p for p, f in assignment.items() if f == index))
        missing = factor.approvals - len(approved_by)
        could = tuple(
            sorted(p.id for p in pool if missing and index in _eligible_factors(decision, p, when))
        )
        progress.append(FactorProgress(factor.rule, factor.approvals, approved_by, missing, could))

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


def _today(decision: Decision) -> date:
    moment = decision.decided_at or datetime.now(UTC)
    return moment.date()


def _eligible_factors(decision: Decision, person: Staff, today: date) -> list[int]:
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
        condition = decision.factor_rules[index].approvers
        assert condition is not None
        result, _ = _run(condition.fn, activation)
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
