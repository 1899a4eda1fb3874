"""The prover against the engine: whenever `decide` breaks an invariant on some concrete request,
the prover must not say the invariant holds (it finds a violation or refuses to prove it).

Random policies are built from atoms the prover enumerates (and a few it must refuse); random
requests take values from the literals, their neighbours and values no literal names.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.errors import BadInput
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, Staff
from foureyes.policy.analysis import check_invariants
from foureyes.policy.compiler import Policy
from foureyes.policy.engine import decide
from tests.factories import NOW, TODAY, policy_from

GROUPS = ["support", "trust-safety", "security", "leads"]
ACTIONS = ["account.deactivate", "account.suspend"]
IDS = ["president", "alice", "someone-else"]

ENUMERABLE = st.one_of(
    st.sampled_from(GROUPS).map(lambda g: f'"{g}" in staff.groups'),
    st.sampled_from(["employee", "contractor"]).map(lambda e: f'staff.employment == "{e}"'),
    st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), st.integers(0, 5)).map(
        lambda t: f"staff.days_left {t[0]} {t[1]}"
    ),
    st.tuples(st.sampled_from(["<", ">=", "=="]), st.integers(0, 4)).map(
        lambda t: f"account.followers {t[0]} {t[1]}"
    ),
    st.sampled_from(IDS).map(lambda i: f'account.id == "{i}"'),
    st.sampled_from(["vit", "standard"]).map(lambda t: f'account.tier == "{t}"'),
    st.just("account.verified"),
    st.just('"protected" in account.pins'),
    st.sampled_from(["e-1", "e-2"]).map(lambda i: f'staff.id == "{i}"'),
    st.sampled_from(["urgent", "routine"]).map(lambda r: f'params.reason == "{r}"'),
    st.tuples(st.sampled_from(["<", ">"]), st.integers(0, 23)).map(
        lambda t: f"context.hour {t[0]} {t[1]}"
    ),
    st.just('account.handle in ["a", "b"]'),
)
# Outside the enumerable grammar: the prover must refuse, never say "ok".
REFUSED = st.sampled_from(['account.handle.startsWith("pres")', "staff.id == account.id"])
ATOMS = st.integers(0, 24).flatmap(lambda n: REFUSED if n == 0 else ENUMERABLE)
STAFF_ATOMS = st.one_of(
    st.sampled_from(GROUPS).map(lambda g: f'"{g}" in staff.groups'),
    st.sampled_from(["employee", "contractor"]).map(lambda e: f'staff.employment == "{e}"'),
    st.integers(0, 5).map(lambda n: f"staff.days_left < {n}"),
)
TIER_ATOMS = st.one_of(
    st.integers(0, 4).map(lambda n: f"account.followers >= {n}"),
    st.just('"protected" in account.pins'),
    st.just("account.verified"),
    st.sampled_from(IDS).map(lambda i: f'account.id == "{i}"'),
)


def formulas(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda f: f"!({f})"),
        ),
        max_leaves=4,
    )


@st.composite
def policies(draw: st.DrawFn) -> str:
    rules = []
    for index in range(draw(st.integers(1, 4))):
        effect = draw(st.sampled_from(["allow", "allow", "require", "require", "deny"]))
        rule: dict[str, Any] = {
            "id": f"rule-{index}",
            "effect": effect,
            "actions": draw(st.lists(st.sampled_from(ACTIONS), min_size=1, unique=True)),
            "when": draw(formulas(ATOMS)),
        }
        if effect == "require":
            rule["approvals"] = draw(st.integers(1, 2))
            rule["approvers"] = "approver.id != requester.id"
            if draw(st.booleans()):
                rule["break_glass"] = {
                    "allowed_when": draw(formulas(ATOMS)),
                    "review": 1,
                    "within": "1h",
                }
        rules.append(rule)
    invariants: list[dict[str, Any]] = [
        {"id": "min-people", "actions": ACTIONS, "tier": "vit", "min_people": 3}
    ]
    if draw(st.booleans()):
        invariants.append(
            {
                "id": "never",
                "actions": ["account.deactivate"],
                "staff": draw(formulas(STAFF_ATOMS)),
                "never": True,
            }
        )
    document = {
        "version": 1,
        "tiers": [
            {"name": "vit", "when": draw(formulas(TIER_ATOMS))},
            {"name": "standard", "when": "true"},
        ],
        "rules": rules,
        "invariants": invariants,
    }
    return json.dumps(document)  # JSON is YAML


@st.composite
def requests(draw: st.DrawFn) -> DecisionRequest:
    days_left = draw(st.one_of(st.none(), st.integers(0, 7), st.integers(8, 10_000)))
    person = Staff(
        id=draw(st.sampled_from(["e-1", "e-2", "e-3"])),
        groups=tuple(draw(st.lists(st.sampled_from(GROUPS), unique=True))),
        employment=draw(st.sampled_from(["employee", "contractor"])),
        ends=None if days_left is None else TODAY + timedelta(days=days_left),
    )
    account = Account(
        platform="chirp",
        id=draw(st.sampled_from([*IDS, "bob"])),
        attributes={
            "handle": draw(st.sampled_from(["a", "b", "president", "zed"])),
            "followers": draw(st.one_of(st.integers(-2, 6), st.integers(7, 10**9))),
            "verified": draw(st.booleans()),
            "status": "active",
            "email": "",
            "phone": "",
        },
        pins=frozenset(draw(st.lists(st.sampled_from(["protected", "watch"]), unique=True))),
    )
    params = draw(
        st.one_of(
            st.just({}),
            st.sampled_from(["urgent", "routine", "other"]).map(lambda r: {"reason": r}),
        )
    )
    hour = draw(st.integers(0, 23))
    return DecisionRequest(
        staff=person,
        action=draw(st.sampled_from(ACTIONS)),
        account=account,
        context=RequestContext(now=NOW.replace(hour=hour)),
        params=params,
        justification=None,
        break_glass=draw(st.booleans()),
    )


def broken(policy: Policy, request: DecisionRequest) -> set[str]:
    """The invariants `decide` breaks on this one request."""
    decision = decide(policy, request)
    if decision.outcome == Outcome.DENIED:
        return set()
    found = set()
    today = request.context.now.date()
    for invariant in policy.invariants:
        spec = invariant.spec
        if request.action not in invariant.actions:
            continue
        if spec.tier is not None and decision.tier != spec.tier:
            continue
        if invariant.staff is not None:
            try:
                if invariant.staff.fn({"staff": request.staff.cel(today)}) is False:
                    continue
            except Exception:
                pass  # an error covers the person
        people = decision.min_people
        if spec.never or (
            spec.min_people is not None and people is not None and people < spec.min_people
        ):
            found.add(spec.id)
    return found


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=policies(), samples=st.lists(requests(), min_size=1, max_size=40))
def test_the_prover_never_says_ok_where_the_engine_breaks_an_invariant(
    text: str, samples: list[DecisionRequest]
) -> None:
    policy = policy_from(text)
    seen: set[str] = set()
    for request in samples:
        seen |= broken(policy, request)
    if not seen:
        return
    try:
        violations = check_invariants(policy, now=NOW)
    except BadInput:
        return  # refused: not "ok"
    proven_broken = {v.invariant for v in violations}
    assert seen <= proven_broken, (seen, proven_broken, text)
