"""Invariant checking: refuses what cannot be enumerated rather than guessing."""

from __future__ import annotations

import pytest

from foureyes.errors import BadInput
from foureyes.policy import analysis
from foureyes.policy.analysis import check_invariants, check_update
from tests.factories import EXAMPLES, example_policy, policy_from


def test_an_invariant_that_cannot_be_evaluated_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "MAX_CASES", 10)
    with pytest.raises(BadInput, match=r"cannot be evaluated: .* cases to check"):
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
    ("name", "proposal"),
    [
        # Nothing is VIT under the proposal, so its own invariant holds vacuously ...
        ("empties the VIT tier", EXAMPLE_TEXT.replace(VIT_TIER, "    when: 'false'\n", 1)),
        # ... and without the invariant there is nothing of its own to break.
        (
            "drops the invariant and an approval",
            EXAMPLE_TEXT.replace(LONE_VIT, "", 1).replace(
                "    approvals: 2\n    approvers: >-", "    approvals: 1\n    approvers: >-", 1
            ),
        ),
    ],
)
def test_an_update_cannot_break_an_invariant_in_force(name: str, proposal: str) -> None:
    proposed = policy_from(proposal)
    assert check_invariants(proposed) == [], name  # it would pass on its own terms
    violations = check_update(proposed, example_policy())
    assert [v.invariant for v in violations] == ["no-lone-vit-deactivation"], name
    # The broken case is an account the policy in force calls VIT.
    assert violations[0].tier == "vit"
