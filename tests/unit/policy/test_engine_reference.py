"""The fast `decide` against the reference path it must agree with, and the policy's cache.

`engine.decide` remembers views and verdicts in `Policy.cache`; `reference.decide` works
everything out afresh. Over random policies and runs of requests that reuse the same people and
accounts across days, with break-glass, unknown actions, unresolved accounts, people the floor
stops, conditions that error or give no bool and tiers that error, both give the same decision,
field for field, subject and factor rules included, even when the caller scribbles over every
decision it gets back.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
from datetime import date, timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.model import Account, DecisionRequest, Outcome, Staff
from foureyes.policy import engine, reference
from foureyes.policy.cache import DecisionCache
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from tests.factories import NOW, TODAY, account, policy_from, request, staff

ACTIONS = [
    "account.lock",
    "account.suspend",
    "account.deactivate",
    "account.view_private",
    "foureyes.account.pin",  # self-governing: held by the floor when only allowed
]
CONDITIONS = [
    "true",
    '"support" in staff.groups',
    '"trust-safety" in staff.groups',
    '"kim.vendor" in staff.identities',
    'staff.employment == "contractor"',
    "staff.days_left <= 2",
    '"secret" in staff.clearance',
    'account.tier == "vit"',
    'account.tier != "standard"',
    "account.followers > 1000",
    '"watch" in account.pins',
    '"spam" in account.labels',
    "context.hour >= 12",
    "params.level > 3",  # errors when the request has no `level`: fail closed
    "params.flag",  # not a bool when the request's `flag` is not one
]
APPROVERS = ["true", '"trust-safety" in approver.groups', "approver.id != requester.manager"]
GROUPS = ["support", "trust-safety", "security"]
HEADER = {
    "version": 1,
    "attributes": {"staff": {"clearance": "list(string)"}, "account": {"labels": "list(string)"}},
    "tiers": [
        {"name": "vit", "when": 'account.followers >= 1000000 || "protected" in account.pins'},
        {"name": "verified", "when": "account.verified"},
        {"name": "standard", "when": "true"},
    ],
}

settings.register_profile(
    "reference", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def rules(draw: st.DrawFn, n: int) -> dict[str, Any]:
    effect = draw(st.sampled_from(["deny", "allow", "allow", "require", "require"]))
    rule: dict[str, Any] = {
        "id": f"r-{n}",
        "effect": effect,
        "actions": draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True)),
        "when": draw(st.sampled_from(CONDITIONS)),
    }
    if effect != "deny" and draw(st.booleans()):
        rule["justification"] = {"required": True, "pattern": "^CASE-[0-9]+$"}
    if effect != "deny" and draw(st.booleans()):
        rule["delay"] = draw(st.sampled_from(["5m", "1h"]))
    if effect == "require":
        rule["approvals"] = draw(st.integers(1, 3))
        rule["approvers"] = draw(st.sampled_from(APPROVERS))
        if draw(st.booleans()):
            rule["break_glass"] = {
                "allowed_when": draw(st.sampled_from(CONDITIONS)),
                "review": draw(st.integers(1, 2)),
                "within": "4h",
            }
    return rule


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    drawn = [draw(rules(n)) for n in range(draw(st.integers(0, 6)))]
    return policy_from(yaml.safe_dump({**HEADER, "rules": drawn}, sort_keys=False, width=1_000_000))


people = st.builds(
    lambda n, groups, contractor, days, status, clearance: staff(
        f"p-{n}",
        groups=tuple(groups),
        employment="contractor" if contractor else "employee",
        days_left=days,
        status=status,
        manager="p-0",
        identities=(f"p-{n}", "kim.vendor") if n % 2 else (f"p-{n}",),
        attributes={"clearance": clearance},
    ),
    st.integers(0, 5),
    st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
    st.booleans(),
    st.sampled_from([None] * 6 + [-1, 0, 1, 30]),  # ends yesterday … in a month, or never
    st.sampled_from(["active"] * 9 + ["suspended"]),
    st.lists(st.sampled_from(["secret", "public"]), max_size=2),
)


def _account(
    n: int, followers: int | None, verified: bool, pins: list[str], labels: list[str]
) -> Account:
    made = account(f"a-{n}", verified=verified, pins=frozenset(pins), labels=labels)
    if followers is not None:
        return dataclasses.replace(made, attributes={**made.attributes, "followers": followers})
    # Without `followers` the first tier's condition errors: the reference path records it.
    return dataclasses.replace(
        made, attributes={k: v for k, v in made.attributes.items() if k != "followers"}
    )


accounts = st.builds(
    _account,
    st.integers(0, 3),
    st.sampled_from([0, 5000, 2_000_000] * 3 + [None]),
    st.booleans(),
    st.lists(st.sampled_from(["watch", "protected"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["spam", "ham"]), max_size=2),
)
# Mostly the common case, which the fast path keeps; now and then what it hands over.
params = st.sampled_from([True] * 4 + [False]).flatmap(
    lambda usual: (
        st.fixed_dictionaries({"level": st.integers(0, 6), "flag": st.booleans()})
        if usual
        else st.fixed_dictionaries(
            {}, optional={"level": st.integers(0, 6), "flag": st.booleans() | st.integers(0, 1)}
        )
    )
)
steps = st.tuples(
    st.integers(0, 3),  # who
    st.sampled_from([*ACTIONS] * 3 + ["account.nuke"]),  # what (the last one is unknown)
    st.sampled_from([0, 1, 2] * 3 + [-1]),  # on which account (-1: it did not resolve)
    st.integers(0, 2),  # days after NOW
    st.integers(0, 23),  # at what hour
    st.sampled_from([False] * 7 + [True]),  # break-glass
    params,
)


def same(fast: Decision, ref: Decision) -> None:
    """Field for field, including what equality leaves out (subject, factor rules)."""
    assert fast.__dict__ == ref.__dict__
    assert list(fast.__dict__) == list(ref.__dict__)


def scribble(decision: Decision) -> None:
    """What a careless caller might do to a decision it got: change every view it holds."""
    for view in decision.subject.values():
        for value in view.values():
            if isinstance(value, list):
                value.append("scribbled")
        view["tier"] = "scribbled"
        view["groups"] = ["security", "trust-safety"]


def requests_of(
    run: list[Any], persons: list[Staff], targets: list[Account]
) -> list[DecisionRequest]:
    made = []
    for who, action, which, days, hour, glass, given_params in run:
        made.append(
            request(
                persons[who % len(persons)],
                action,
                None if which < 0 else targets[which % len(targets)],
                now=NOW.replace(hour=hour) + timedelta(days=days),
                break_glass=glass,
                params=dict(given_params),
            )
        )
    return made


@settings(settings.get_profile("reference"))
@given(
    policies(),
    st.lists(people, min_size=1, max_size=4),
    st.lists(accounts, min_size=1, max_size=3),
    st.lists(steps, min_size=1, max_size=15),
)
def test_the_fast_path_gives_the_reference_decision(
    policy: Policy, persons: list[Staff], targets: list[Account], run: list[Any]
) -> None:
    made = requests_of(run, persons, targets)
    for req in made:
        fast = engine.decide(policy, req)
        same(fast, reference.decide(policy, req))
        scribble(fast)
    for req in made:  # again, with everything remembered
        same(engine.decide(policy, req), reference.decide(policy, req))


# --- the cache ------------------------------------------------------------------------------

POLICY_TEXT = """
version: 1
tiers:
  - {name: vit, when: "account.followers >= 1000000"}
  - {name: standard, when: "true"}
rules:
  - {id: support-locks, effect: allow, actions: [account.lock], when: '"support" in staff.groups'}
  - id: vit-lock
    effect: require
    actions: [account.lock]
    when: 'account.tier == "vit"'
    approvals: 1
    approvers: "true"
"""


def both(policy: Policy, person: Staff, target: Account, day: date = TODAY) -> Decision:
    req = request(person, "account.lock", target, now=NOW + (day - TODAY))
    fast = engine.decide(policy, req)
    same(fast, reference.decide(policy, req))
    return fast


def test_a_new_object_at_the_address_of_a_dead_one_is_not_taken_for_it() -> None:
    """Values made and dropped one after the other often reuse one address (`id`): a memo keyed
    by the address alone would give the second person the first one's groups."""
    policy = policy_from(POLICY_TEXT)
    target = account("alice")
    seen: set[int] = set()
    for n in range(200):
        person = staff("p-1", groups=("support",) if n % 2 else ("legal",))
        seen.add(id(person))
        outcome = both(policy, person, target).outcome
        assert outcome == (Outcome.ALLOWED if n % 2 else Outcome.DENIED)
        del person
    assert len(seen) < 200  # addresses were reused, so the check above meant something
    seen.clear()
    for n in range(200):
        big = account("a", followers=2_000_000 if n % 2 else 10)
        seen.add(id(big))
        assert both(policy, staff("p", groups=("support",)), big).tier == (
            "vit" if n % 2 else "standard"
        )
        del big
    assert len(seen) < 200


def test_an_entry_lives_as_long_as_its_object() -> None:
    policy = policy_from(POLICY_TEXT)
    person, target = staff("p", groups=("support",)), account("alice")
    both(policy, person, target)
    assert (len(policy.cache.people), len(policy.cache.accounts)) == (1, 1)
    del person, target
    gc.collect()
    assert (len(policy.cache.people), len(policy.cache.accounts)) == (0, 0)


def test_the_cache_is_bounded_and_still_right_past_its_bound() -> None:
    policy = policy_from(POLICY_TEXT)
    object.__setattr__(policy, "cache", DecisionCache(people=3, accounts=3, verdicts=1))
    persons = [staff(f"p-{n}", groups=("support",) if n % 3 else ()) for n in range(20)]
    targets = [account(f"a-{n}", followers=2_000_000 if n % 2 else 5) for n in range(20)]
    for _ in range(2):
        for person in persons:
            for target in targets:
                both(policy, person, target)
    cache = policy.cache
    assert (len(cache.people), len(cache.accounts), len(cache.verdicts)) == (3, 3, 1)


def test_the_day_is_part_of_what_is_remembered_about_a_person() -> None:
    policy = policy_from(POLICY_TEXT)
    leaving = staff("c-1", groups=("support",), days_left=1)
    target = account("alice")
    assert both(policy, leaving, target).subject["requester"]["days_left"] == 1
    assert both(policy, leaving, target, TODAY + timedelta(days=1)).outcome == Outcome.ALLOWED
    after = both(policy, leaving, target, TODAY + timedelta(days=2))
    assert after.outcome == Outcome.DENIED
    assert after.reasons == (
        "denied by the floor: staff c-1 ended on " + str(TODAY + timedelta(days=1)),
    )
    assert both(policy, leaving, target).outcome == Outcome.ALLOWED  # and back again


def test_each_policy_version_has_its_own_cache() -> None:
    """An Account decided under one policy is classified afresh under the next one."""
    old = policy_from(POLICY_TEXT)
    new = policy_from(POLICY_TEXT.replace("followers >= 1000000", "followers >= 100"))
    again = policy_from(POLICY_TEXT)
    person, target = staff("p", groups=("support",)), account("alice", followers=500)
    assert both(old, person, target).tier == "standard"
    assert both(new, person, target).tier == "vit"
    assert both(old, person, target).tier == "standard"
    assert len({id(old.cache), id(new.cache), id(again.cache)}) == 3
    assert len(again.cache.accounts) == 0  # same text, another Policy: nothing carried over
    replaced = dataclasses.replace(old)
    assert replaced.cache is not old.cache
    assert len(replaced.cache.accounts) == 0


def test_the_cache_pickles_and_copies_empty() -> None:
    policy = policy_from(POLICY_TEXT)
    person, target = staff("p", groups=("support",)), account("alice")
    both(policy, person, target)
    for made in (pickle.loads(pickle.dumps(policy.cache)), copy.copy(policy.cache)):
        assert isinstance(made, DecisionCache)
        assert (len(made.people), len(made.accounts), len(made.verdicts)) == (0, 0, 0)
        assert made.limits == policy.cache.limits


def test_values_keep_their_own_attributes() -> None:
    """The cache may key on a value's identity because the value cannot change: a caller that
    changes the mapping it built an Account or a Staff from changes neither."""
    policy = policy_from(POLICY_TEXT)
    account_attributes: dict[str, Any] = {"followers": 10, "verified": False}
    target = Account("chirp", "alice", account_attributes)
    staff_attributes: dict[str, Any] = {"clearance": []}
    person = Staff("p", groups=("support",), attributes=staff_attributes)
    assert both(policy, person, target).tier == "standard"
    account_attributes["followers"] = 2_000_000
    staff_attributes["clearance"] = ["secret"]
    assert target.attributes["followers"] == 10
    assert person.attributes["clearance"] == []
    assert both(policy, person, target).tier == "standard"
    assert both(
        policy, person, dataclasses.replace(target, attributes=account_attributes)
    ).tier == ("vit")


def test_views_are_made_afresh_for_every_caller() -> None:
    person = staff("p", groups=("support",))
    first, second = person.cel(TODAY), person.cel(TODAY)
    assert first == second
    assert first is not second
    assert first["groups"] is not second["groups"]
    spec = policy_from(POLICY_TEXT).catalog.actions["account.lock"]
    assert spec.cel is not spec.cel
