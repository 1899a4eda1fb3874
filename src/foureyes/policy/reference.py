"""The decision engine written out plainly: DESIGN "Decision semantics", step by step, no memo.

This is the path `foureyes.policy.engine.decide` is tested against (differentially, over random
policies and requests) and the one it falls back to for anything unusual: it handles every case,
records every condition error, and does break-glass. Pure code, no I/O, nothing remembered.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from foureyes.model import DecisionRequest, Effect, Outcome
from foureyes.policy.catalog import SELF_GOVERNING_NAMES
from foureyes.policy.compiler import DEFAULT_EXPIRES, CompiledRule, CompiledTier, Policy
from foureyes.policy.conditions import without_values
from foureyes.policy.decision import (
    BreakGlassTerms,
    ConditionFailure,
    Decision,
    Factor,
    Options,
    RuleMatch,
)

FLOOR_RULE = "foureyes-floor"
FLOOR_FACTOR = Factor(
    rule=FLOOR_RULE,
    approvals=1,
    approvers="any active staff member other than the author",
    deny_veto=True,
)
NO_OPTIONS = Options()


def run(condition_fn: Any, activation: Mapping[str, Any]) -> tuple[bool | None, str | None]:
    """Evaluate; (result, None) or (None, error). A non-bool result is an error."""
    try:
        result = condition_fn(activation)
    except Exception as exc:
        return None, without_values(f"{type(exc).__name__}: {exc}")
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
        result, error = run(tier.condition.fn, activation)
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
    """The condition view of the request's account, without its tier: a new dict each call."""
    account = request.account
    assert account is not None
    view = dict(account.attributes)
    view["id"] = account.id
    view["ref"] = account.ref
    view["platform"] = account.platform
    view["pins"] = sorted(account.pins)
    return view


class Verdict(NamedTuple):
    """What follows from the rules that matched, given the action and the tier: every part of
    the decision except who asked, when, the condition views and the condition errors."""

    outcome: Outcome
    matched: tuple[RuleMatch, ...]
    factors: tuple[Factor, ...]
    options: Options
    reasons: tuple[str, ...]
    factor_rules: tuple[CompiledRule, ...]  # the require rules behind `factors`


def verdict(action: str, matched: Sequence[CompiledRule], tier: str) -> Verdict:
    """Steps 3 to 6 of the evaluation order, given the rules that matched (in evaluation order:
    deny, allow, require) for `action` on an account of `tier`."""
    matches = tuple(RuleMatch(rule.id, rule.effect) for rule in matched)
    denies = [rule for rule in matched if rule.effect == Effect.DENY]
    if denies:
        vetoes = tuple(f"denied by rule {rule.id}" for rule in denies)
        return Verdict(Outcome.DENIED, matches, (), NO_OPTIONS, vetoes, ())
    if not matched:
        reason = (
            f"denied by default: no allow or require rule matches {action} "
            f"on a {tier} account for this requester"
        )
        return Verdict(Outcome.DENIED, matches, (), NO_OPTIONS, (reason,), ())

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
        outcome, factors = Outcome.PENDING, (FLOOR_FACTOR,)
        reasons.append(
            "held by the floor: a change to who may do what needs one approval by another person"
        )
    return Verdict(outcome, matches, factors, options, tuple(reasons), require_rules)


def decide(policy: Policy, request: DecisionRequest) -> Decision:
    """What the policy says about `request`, with every reason. Never raises on request data.

    Every case, every condition error recorded, break-glass; each call works everything out
    afresh, and the views in the decision's `subject` are made for it alone.
    """
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
            result, error = run(rule.condition.fn, activation)
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

    found = verdict(request.action, matched, tier)
    if found.outcome == Outcome.DENIED:
        return _denied(policy, request, account_ref, tier, found.matched, errors, *found.reasons)
    subject = {
        "requester": activation["staff"],
        "account": account,
        "action": activation["action"],
    }
    base = Decision(
        outcome=found.outcome,
        policy_version=policy.version,
        requester=staff.id,
        action=request.action,
        account=account_ref,
        tier=tier,
        matched=found.matched,
        factors=found.factors,
        options=found.options,
        reasons=found.reasons,
        errors=tuple(errors),
        decided_at=request.context.now,
        subject=subject,
        factor_rules=found.factor_rules,
    )
    if not request.break_glass or found.outcome == Outcome.ALLOWED:
        return base
    return _break_glass(base, found.factor_rules, activation, errors)


def _factor(rule: CompiledRule) -> Factor:
    assert rule.spec.approvals is not None
    assert rule.spec.approvers is not None
    escalation = rule.escalation
    return Factor(
        rule=rule.id,
        approvals=rule.spec.approvals,
        approvers=rule.spec.approvers,
        deny_veto=rule.spec.deny_veto,
        exclude=rule.spec.exclude,
        escalate=None
        if escalation is None
        else (
            int(escalation.after.total_seconds()),
            escalation.to.source,
            None
            if escalation.remind_every is None
            else int(escalation.remind_every.total_seconds()),
        ),
    )


def _combine(rules: Iterable[CompiledRule]) -> Options:
    """Strictest of every matching rule's options (DESIGN item 8)."""
    required = False
    patterns: list[str] = []
    tickets: list[str] = []
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
            ticket = spec.justification.ticket
            if ticket is not None and ticket not in tickets:
                tickets.append(ticket)
        if rule.expires is not None:
            expires = min(expires, rule.expires)
        if rule.delay is not None:
            delay = rule.delay if delay is None else max(delay, rule.delay)
        step_up = step_up or spec.step_up
        notify.update(spec.notify)
    options = Options(
        justification_required=required or bool(patterns) or bool(tickets),
        justification_patterns=tuple(patterns),
        justification_tickets=tuple(sorted(tickets)),
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
        result, error = run(glass.allowed_when.fn, activation)
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
