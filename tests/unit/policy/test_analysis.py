"""Invariant checking: refuses what cannot be enumerated rather than guessing."""

from __future__ import annotations

import re

import pytest

from foureyes.errors import BadInput
from foureyes.policy import analysis
from foureyes.policy.analysis import check_invariants, check_update, diff_policies
from foureyes.policy.enumerable import Atoms, NotEnumerable, classify
from tests.conftest import EXAMPLES
from tests.factories import example_policy, policy_from


def test_an_invariant_that_cannot_be_evaluated_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "MAX_CASES", 10)
    with pytest.raises(BadInput, match=r"cannot prove .*: \d+ cases to check"):
        check_invariants(example_policy())


def test_the_example_invariants_hold() -> None:
    assert check_invariants(example_policy()) == []


EXAMPLE_TEXT = (EXAMPLES / "policy.yaml").read_text()
VIT_TIER = '    when: account.followers >= 1000000 || "protected" in account.pins\n'
LONE_VIT = EXAMPLE_TEXT[
    EXAMPLE_TEXT.index("  - id: no-lone-vit-deactivation") : EXAMPLE_TEXT.index(
        "  - id: nobody-in-support-reads-dms"
    )
]


def test_an_update_that_keeps_the_invariants_passes() -> None:
    assert check_update(policy_from(EXAMPLE_TEXT + "# reviewed\n"), example_policy()) == []


@pytest.mark.parametrize(
    ("name", "proposal", "refusal"),
    [
        # Nothing is VIT under the proposal, so its own invariant would hold vacuously ...
        (
            "empties the VIT tier",
            EXAMPLE_TEXT.replace(VIT_TIER, "    when: 'false'\n", 1),
            "moves accounts out of tier vit, which invariant no-lone-vit-deactivation names",
        ),
        # ... and without the invariant there would be nothing of its own to break.
        (
            "drops the invariant and an approval",
            EXAMPLE_TEXT.replace(LONE_VIT, "", 1).replace(
                "    approvals: 2\n    approvers: 'approver.employment",
                "    approvals: 1\n    approvers: 'approver.employment",
                1,
            ),
            "removes invariant no-lone-vit-deactivation",
        ),
    ],
)
def test_an_update_cannot_break_an_invariant_in_force(
    name: str, proposal: str, refusal: str
) -> None:
    proposed = policy_from(proposal)
    assert check_invariants(proposed) == [], name  # it would pass on its own terms
    with pytest.raises(BadInput, match=re.escape(refusal)):
        check_update(proposed, example_policy())


def test_the_invariants_in_force_still_judge_the_proposed_decisions() -> None:
    """Invariants and tiers kept, a VIT approval dropped: the invariant in force finds it."""
    proposal = EXAMPLE_TEXT.replace(
        "    approvals: 2\n    approvers: 'approver.employment",
        "    approvals: 1\n    approvers: 'approver.employment",
        1,
    )
    violations = check_update(policy_from(proposal), example_policy())
    assert [v.invariant for v in violations] == [
        "no-lone-vit-deactivation",
        "no-lone-vit-destruction",
    ]
    assert violations[0].tier == "vit"


# --- soundness: what the enumeration covers, and what makes it refuse ---------------------------

HOLE_POLICY = """
version: 1
attributes:
  staff: {clearance: int}
  account: {score: double}
tiers:
  - {name: vit, when: '"protected" in account.pins'}
  - {name: standard, when: 'true'}
rules:
  - id: trust-safety
    effect: allow
    actions: [account.deactivate]
    when: '"trust-safety" in staff.groups'
  - id: vit-needs-two
    effect: require
    actions: [account.deactivate]
    when: 'account.tier == "vit" && !(HOLE)'
    approvals: 1
    approvers: 'true'
invariants:
  - {id: two-for-vit, actions: [account.deactivate], tier: vit, min_people: 2}
"""


@pytest.mark.parametrize(
    "hole",
    [
        # a double strictly between two literals
        "account.score > 1.0 && account.score < 2.0",
        # a person whose record lacks a declared attribute (every comparison errors)
        "!(staff.clearance >= 3 || staff.clearance < 3)",
        # a weekday together with days left: the person is built for that day
        'context.weekday == "sun" && staff.days_left == 0',
        # an int between two literals, and one above the largest
        "staff.clearance > 3 && staff.clearance < 5",
        "staff.clearance > 1000000",
        # a nullable attribute that is null
        "staff.manager == null",
    ],
)
def test_a_hole_between_the_literals_is_found(hole: str) -> None:
    policy = policy_from(HOLE_POLICY.replace("HOLE", hole))
    assert [v.invariant for v in check_invariants(policy)] == ["two-for-vit"], hole
    safe = policy_from(HOLE_POLICY.replace("HOLE", "false"))
    assert check_invariants(safe) == []


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ('staff.email.matches("@vendor")', "calls matches()"),
        ('staff.email.startsWith("a")', "calls startsWith()"),
        ("size(staff.groups) > 2", "calls size()"),
        ("staff.id == staff.manager", "two attributes"),
        ('staff.name < "m"', "orders strings"),
        ("staff.days_left + 1 > 3", "computes with '+'"),
        ("has(params.reason)", "has()"),
        ('staff.groups.exists(g, g == "x")', "macro exists()"),
        ("staff.starts == null", "staff.starts"),
        ("context.now > timestamp('2026-01-01T00:00:00Z')", "context.now"),
        ("params.count > 3", "orders values"),
        ('"x" in params.tags', "membership"),
        ("staff.groups == []", "builds a value"),
    ],
)
def test_the_classifier_refuses_what_it_cannot_enumerate(condition: str, reason: str) -> None:
    types = example_policy().types
    with pytest.raises(NotEnumerable, match=re.escape(reason)):
        classify(condition, types.rule, Atoms())


def test_the_classifier_accepts_boolean_combinations_of_literal_comparisons() -> None:
    types = example_policy().types
    atoms = Atoms()
    classify(
        '("a" in staff.groups || staff.employment != "x") && (account.tier == "vit" ? '
        'account.followers >= 3 : !account.verified) && account.id in ["p", "q"] '
        '&& params.reason == "r" && context.hour < 9 && action.name == "account.view" && true',
        types.rule,
        atoms,
    )
    assert atoms.literals[("account", "id")] == {("string", "p"), ("string", "q")}
    assert atoms.literals[("account", "followers")] == {("int", 3)}
    assert ("account", "verified") in atoms.literals
    assert atoms.literals[("params", "reason")] == {("string", "r")}


def test_an_unprovable_invariant_names_the_rule_and_line() -> None:
    policy = policy_from(HOLE_POLICY.replace("HOLE", 'staff.email.endsWith("@x")'))
    with pytest.raises(BadInput) as caught:
        check_invariants(policy)
    assert caught.value.message == (
        "cannot prove two-for-vit: rule vit-needs-two (test-policy.yaml:17) calls endsWith() "
        '(staff.email.endsWith("@x")), which the analysis cannot enumerate'
    )


def test_a_rule_of_other_actions_does_not_block_the_proof() -> None:
    policy = policy_from(
        HOLE_POLICY.replace("HOLE", "false").replace(
            "invariants:",
            "  - {id: other, effect: allow, actions: [account.view], "
            "when: 'staff.email.matches(\"x\")'}\ninvariants:",
        )
    )
    assert check_invariants(policy) == []


def test_approvers_do_not_count_for_invariants_but_count_as_changes() -> None:
    """The example's approvers compare two attributes (approver.id != requester.manager): they
    decide who may approve, never how many, so the invariants are still proven; a change of
    them is a decision change in the diff."""
    assert check_invariants(example_policy()) == []
    changed = policy_from(
        EXAMPLE_TEXT.replace("approver.id != requester.manager", "approver.id != requester.id")
    )
    comparison = diff_policies(example_policy(), changed)
    assert comparison.unknown == []
    assert {d.action for d in comparison.differences} == {
        "account.deactivate",
        "account.change_email",
        "account.reset_password",
    }
    assert all("approver.id != requester.id" in d.after for d in comparison.differences)


def test_a_policy_compared_with_itself_has_no_changes() -> None:
    comparison = diff_policies(example_policy(), example_policy())
    assert comparison.differences == []
    assert comparison.unknown == []


def test_diff_reports_a_break_glass_change() -> None:
    changed = policy_from(EXAMPLE_TEXT.replace("review: 2, within: 24h", "review: 1, within: 24h"))
    comparison = diff_policies(example_policy(), changed)
    assert {d.action for d in comparison.differences} == {"account.suspend"}
    assert all(d.before.startswith("with break-glass") for d in comparison.differences)
