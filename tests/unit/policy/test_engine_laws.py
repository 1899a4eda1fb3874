"""The engine's laws, checked by Hypothesis over random policies, people, accounts and reviews."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.model import Outcome, Review
from foureyes.policy.compiler import Policy
from foureyes.policy.engine import decide, satisfied
from tests.factories import TODAY, account, approve, deny, policy_from, request, staff

ACTIONS = ["account.lock", "account.suspend", "account.deactivate", "account.change_email"]
CONDITIONS = [
    "true",
    '"support" in staff.groups',
    '"trust-safety" in staff.groups',
    'staff.employment == "contractor"',
    "staff.days_left <= 2",
    'account.tier == "vit"',
    'account.tier != "vit"',
    "account.followers > 1000",
    "params.level > 3",  # errors when the request has no `level`: exercises fail-closed
]
APPROVERS = [
    "true",
    '"trust-safety" in approver.groups',
    '"security" in approver.groups',
    'approver.employment == "employee"',
    "approver.id != requester.manager",
]
GROUPS = ["support", "trust-safety", "security", "legal"]
TIERS = [
    {"name": "vit", "when": "account.followers >= 1000000"},
    {"name": "verified", "when": "account.verified"},
    {"name": "standard", "when": "true"},
]

settings.register_profile(
    "engine", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def rules(draw: st.DrawFn, prefix: str, effects: list[str] | None = None) -> dict[str, Any]:
    effect = draw(st.sampled_from(effects or ["deny", "allow", "require"]))
    rule: dict[str, Any] = {
        "id": f"{prefix}-{draw(st.integers(0, 10**6))}",
        "effect": effect,
        "actions": draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True)),
        "when": draw(st.sampled_from(CONDITIONS)),
    }
    if effect == "require":
        rule["approvals"] = draw(st.integers(1, 3))
        rule["approvers"] = draw(st.sampled_from(APPROVERS))
        rule["deny_veto"] = draw(st.booleans())
    return rule


def compile_rules(rule_list: list[dict[str, Any]]) -> Policy:
    unique = {rule["id"]: rule for rule in rule_list}
    document = {"version": 1, "tiers": TIERS, "rules": list(unique.values())}
    return policy_from(yaml.safe_dump(document, sort_keys=False, width=1_000_000))


people = st.builds(
    lambda n, groups, contractor, days, manager: staff(
        f"p-{n}",
        groups=tuple(groups),
        employment="contractor" if contractor else "employee",
        days_left=days,
        manager=manager,
    ),
    st.integers(0, 6),
    st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
    st.booleans(),
    st.none() | st.integers(0, 30),
    st.none() | st.sampled_from(["p-0", "p-1", "p-2"]),
)
accounts = st.builds(
    lambda followers, verified: account("acct", followers=followers, verified=verified),
    st.sampled_from([0, 5000, 2_000_000]),
    st.booleans(),
)
requests = st.builds(
    lambda person, action, target, level: request(
        person, action, target, params={} if level is None else {"level": level}
    ),
    people,
    st.sampled_from(ACTIONS),
    accounts,
    st.none() | st.integers(0, 6),
)


def reviews_from(pairs: list[tuple[Any, bool]]) -> list[Review]:
    return [approve(person) if ok else deny(person) for person, ok in pairs]


# One record per person: ids are unique within a list of reviews.
review_lists = st.lists(
    st.tuples(people, st.booleans()), max_size=6, unique_by=lambda pair: pair[0].id
).map(reviews_from)


@settings(settings.get_profile("engine"))
@given(st.lists(rules("r"), max_size=5), rules("extra", ["deny"]), requests)
def test_adding_a_deny_rule_never_turns_a_deny_into_anything_else(
    base: list[dict[str, Any]], extra: dict[str, Any], req: Any
) -> None:
    before = decide(compile_rules(base), req)
    after = decide(compile_rules([*base, extra]), req)
    if before.outcome == Outcome.DENIED:
        assert after.outcome == Outcome.DENIED
    assert after.outcome in {before.outcome, Outcome.DENIED}


@settings(settings.get_profile("engine"))
@given(st.lists(rules("r"), max_size=5), rules("extra", ["require"]), requests)
def test_adding_a_require_rule_never_lowers_the_people_needed(
    base: list[dict[str, Any]], extra: dict[str, Any], req: Any
) -> None:
    before = decide(compile_rules(base), req)
    after = decide(compile_rules([*base, extra]), req)
    if before.outcome != Outcome.DENIED:
        assert after.outcome != Outcome.ALLOWED or before.outcome == Outcome.ALLOWED
        assert after.min_people is not None
        assert before.min_people is not None
        assert after.min_people >= before.min_people
    elif any(match.effect.value == "deny" for match in before.matched):
        assert after.outcome == Outcome.DENIED


@settings(settings.get_profile("engine"))
@given(st.lists(rules("r", ["require"]), min_size=1, max_size=3), requests, review_lists, st.data())
def test_removing_an_approval_never_satisfies(
    base: list[dict[str, Any]], req: Any, reviews: list[Review], data: st.DataObject
) -> None:
    decision = decide(compile_rules(base), req)
    approvals = [i for i, r in enumerate(reviews) if r.decision.value == "approve"]
    if not approvals:
        return
    drop = data.draw(st.sampled_from(approvals))
    fewer = reviews[:drop] + reviews[drop + 1 :]
    if not satisfied(decision, reviews, today=TODAY).satisfied:
        assert not satisfied(decision, fewer, today=TODAY).satisfied


@settings(settings.get_profile("engine"))
@given(
    st.lists(rules("r", ["require"]), min_size=1, max_size=3), requests, review_lists, st.booleans()
)
def test_the_requesters_review_never_counts(
    base: list[dict[str, Any]], req: Any, reviews: list[Review], approves: bool
) -> None:
    decision = decide(compile_rules(base), req)
    others = [r for r in reviews if r.reviewer.id != req.staff.id]
    own = approve(req.staff, identity="second-login") if approves else deny(req.staff)
    with_own = satisfied(decision, [*others, own], today=TODAY)
    without = satisfied(decision, others, today=TODAY)
    assert with_own.satisfied == without.satisfied
    assert with_own.factors == without.factors
    assert with_own.vetoed_by == without.vetoed_by


@settings(settings.get_profile("engine"))
@given(
    st.lists(rules("r", ["require"]), min_size=1, max_size=3), requests, review_lists, st.randoms()
)
def test_matching_is_order_independent(
    base: list[dict[str, Any]], req: Any, reviews: list[Review], rng: Any
) -> None:
    decision = decide(compile_rules(base), req)
    shuffled = list(reviews)
    rng.shuffle(shuffled)
    first = satisfied(decision, reviews, today=TODAY)
    second = satisfied(decision, shuffled, today=TODAY)
    assert first.satisfied == second.satisfied
    assert first.missing == second.missing
    assert first.vetoed_by == second.vetoed_by
