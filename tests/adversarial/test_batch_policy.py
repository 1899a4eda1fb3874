"""Batch rules that try to lower the bar on protected accounts (issue #20's hole: one person with
lone power over very important accounts, by batching them).

Each attack policy (tests/adversarial/prover_attacks/batch_*.yaml) is the reference policy with
one batch rule an attacker would like accepted. Two defences are tried against each: the prover
(`foureyes policy check`, and `check_update` for a proposed update), and, whatever the prover
says, the planning of an actual batch: an account whose own rules need a bar the batch rule
cannot be proven to give never rides in the batch, and an included item's own factors are checked
again with the batch's reviews.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import BadInput, PolicyError
from foureyes.model import Account, Review, ReviewDecision, Staff
from foureyes.policy.analysis import check_invariants, check_update
from foureyes.policy.batches import BatchPlan, ItemClass, batch_satisfied, plan_batch
from foureyes.policy.compiler import Policy
from tests.conftest import EXAMPLES
from tests.factories import NOW, account, example_policy, policy_from, staff

ATTACKS = Path(__file__).parent / "prover_attacks"
EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
STAFF = str(EXAMPLES / "staff.yaml")

TOMAS = staff("e-3001", groups=("trust-safety",), manager="e-9001")
MEI = staff("e-3002", groups=("trust-safety",))
SAM = staff("e-3003", groups=("trust-safety",))
JO = staff("e-9001", groups=("trust-safety", "leads"))  # Tomas's manager
INES = staff("e-4001", groups=("security",))
LEE = staff("c-3004", groups=("trust-safety",), employment="contractor")

PRESIDENT = account("president", followers=41_700_000, verified=True)
PINNED = account("quiet", followers=5, pins=frozenset({"protected"}))  # vit by its pin
# The same very important account, reached by another name: what the platform resolves is
# what is decided (its attributes, the pins of its own ref), whatever the manifest said.
BY_DID = account("did:plc:7xq", followers=60_000_000, verified=True, handle="chirp")


def attack(name: str) -> Policy:
    return policy_from((ATTACKS / f"{name}.yaml").read_text())


def ring(n: int) -> list[Account]:
    return [account(f"bot{i}", followers=3 + i) for i in range(n)]


def planned(policy: Policy, action: str, *extra: Account, who: Staff = TOMAS) -> BatchPlan:
    return plan_batch(policy, who, action, [*ring(5), *extra], {}, NOW, justification="CASE-1")


def approvals(*people: Staff) -> list[Review]:
    return [Review(person, ReviewDecision.APPROVE) for person in people]


def check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["policy", "check", str(path), "--staff", STAFF], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout


# --- the prover ---------------------------------------------------------------------------------


def test_a_batch_rule_with_fewer_people_than_an_invariant_fails_the_check() -> None:
    code, out = check(ATTACKS / "batch_lone_vit.yaml")
    assert code == 1, out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out
    assert "batch rule cleanup" in out
    assert "ok   invariant no-lone-vit-deactivation" not in out


@pytest.mark.parametrize("name", ["batch_lone_vit"])
def test_a_lax_batch_rule_is_refused_as_an_update(name: str) -> None:
    violations = check_update(attack(name), example_policy())
    assert violations
    assert all("batch rule cleanup" in v.describe() for v in violations)


def test_moving_protected_accounts_to_a_new_tier_to_batch_them_is_refused_as_an_update() -> None:
    # A new first tier `vip` takes the very important accounts; the batch carries `vip`, and no
    # invariant in force names it.
    text = (ATTACKS / "batch_lone_vit.yaml").read_text()
    first = "  - name: vit "
    assert text.count(first) == 1
    text = text.replace(
        first,
        '  - name: vip\n    when: account.followers >= 1000000 || "protected" in account.pins\n'
        + first,
    )
    text = text.replace("tiers: [vit, verified, standard]", "tiers: [vip]")
    proposed = policy_from(text)
    assert check_invariants(proposed) == []  # its own invariants say nothing of `vip`
    with pytest.raises(BadInput, match="moves accounts out of tier vit"):
        check_update(proposed, example_policy())


@pytest.mark.parametrize("name", ["batch_manager", "batch_anyone", "batch_vit_suspend"])
def test_a_batch_rule_with_enough_people_but_other_approvers_proves_nothing_away(
    name: str,
) -> None:
    # Enough people: the prover has no count to object to; the items stay out of the batch.
    assert check_invariants(attack(name)) == []


# --- the plan: protected accounts never ride ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("batch_lone_vit", "account.deactivate"),  # 1 approval where the item needs 3
        ("batch_lone_vit", "account.change_email"),
        ("batch_manager", "account.deactivate"),  # the manager may approve the batch
        ("batch_anyone", "account.deactivate"),  # anyone may approve the batch
        ("batch_anyone", "account.reset_password"),
        ("batch_vit_suspend", "account.suspend"),  # 1 approval where the item needs 2
    ],
)
@pytest.mark.parametrize("protected", [PRESIDENT, PINNED, BY_DID], ids=["followers", "pin", "did"])
def test_a_very_important_account_hidden_in_a_batch_is_split_out(
    name: str, action: str, protected: Account
) -> None:
    policy = attack(name)
    params = {"email": "x@evil.example"} if action == "account.change_email" else {}
    plan = plan_batch(
        policy, TOMAS, action, [*ring(5), protected], params, NOW, justification="CASE-1"
    )
    mine = next(item for item in plan.items if item.account == protected.ref)
    assert mine.decision.tier == "vit"
    assert mine.classification is ItemClass.SPLIT_OUT, mine.reasons
    assert (
        "not provably among the approvers" in mine.reasons[0]
        or "approvals, more" in (mine.reasons[0])
    )
    # What the batch's quorum approves does not carry it.
    assert protected.ref not in plan.included_refs()


def test_the_managers_approval_never_reaches_a_vit_account_through_a_batch() -> None:
    plan = planned(attack("batch_manager"), "account.deactivate", PRESIDENT)
    # Jo (the manager), Ines (security) and Mei approve: the batch rule of the attack is met...
    status = batch_satisfied(plan, approvals(JO, INES, MEI))
    # ... for the ordinary accounts only: the president is not among what it approves.
    assert "chirp:president" not in plan.included_refs()
    assert all(item.decision.tier != "vit" for item in plan.included)
    assert status.satisfied == bool(plan.included)


def test_an_included_item_still_needs_its_own_factors_from_the_same_reviews() -> None:
    # A batch rule that does give the vit items' bar (3 trust & safety employees who are not the
    # requester's manager, for suspension which itself needs 2 trust & safety): vit items ride.
    text = EXAMPLE.replace(
        "    tiers: [standard, verified]\n    max_items: 10000\n    approvals: 2\n"
        '    approvers: \'"trust-safety" in approver.groups && approver.employment == '
        '"employee"\'\n',
        "    tiers: [vit, standard, verified]\n    max_items: 10000\n    approvals: 2\n"
        '    approvers: \'"trust-safety" in approver.groups && approver.employment == '
        '"employee" && approver.id != requester.manager\'\n',
    )
    assert text != EXAMPLE
    plan = planned(policy_from(text), "account.suspend", PRESIDENT)
    assert "chirp:president" in plan.included_refs()
    assert plan.requirement.min_people == 3
    # Jo is Tomas's manager: not eligible for the batch.
    assert not batch_satisfied(plan, approvals(JO, MEI)).satisfied
    # Lee is a contractor: the vit rule alone would take him, the batch rule does not.
    assert not batch_satisfied(plan, approvals(LEE, MEI)).satisfied
    assert batch_satisfied(plan, approvals(SAM, MEI)).satisfied


def test_a_batch_rule_without_approvers_does_not_load() -> None:
    text = (ATTACKS / "batch_anyone.yaml").read_text().replace("    approvers: 'true'\n", "")
    with pytest.raises(PolicyError, match="approvers"):
        policy_from(text)


def test_a_second_laxer_batch_rule_for_the_same_action_does_not_load() -> None:
    text = EXAMPLE.replace(
        "\ninvariants:\n",
        "  - {id: lax, actions: [account.suspend], tiers: [vit], max_items: 5, approvals: 1,"
        " approvers: 'true'}\n\ninvariants:\n",
    )
    with pytest.raises(PolicyError, match="already batched by batch rule 'abuse-ring-takedown'"):
        policy_from(text)


@pytest.mark.parametrize(
    "action", ["foureyes.policy.update", "foureyes.staff.update", "foureyes.account.pin"]
)
def test_foureyes_own_actions_cannot_be_batched(action: str) -> None:
    text = EXAMPLE.replace(
        "\ninvariants:\n",
        f"  - {{id: gov, actions: [{action}], tiers: [standard], max_items: 5, approvals: 3,"
        " approvers: 'true'}\n\ninvariants:\n",
    )
    with pytest.raises(PolicyError, match="foureyes' own actions"):
        policy_from(text)


def test_a_departing_contractors_batch_carries_nothing() -> None:
    kim = staff("c-1001", groups=("support",), employment="contractor", days_left=1)
    plan = planned(example_policy(), "account.suspend", who=kim)
    assert plan.counts == {"included": 0, "split_out": 0, "denied": 5}
    assert not batch_satisfied(plan, approvals(MEI, SAM)).satisfied


def test_the_requester_cannot_count_towards_their_own_batch() -> None:
    plan = planned(example_policy(), "account.suspend")
    assert not batch_satisfied(plan, approvals(TOMAS, MEI)).satisfied
    assert batch_satisfied(plan, approvals(SAM, MEI)).satisfied
