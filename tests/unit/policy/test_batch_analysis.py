"""Batches in the prover, `policy diff`, `policy explain` and `policy test`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import BadInput, BatchRefused, NotFound
from foureyes.model import DecisionRequest, RequestContext
from foureyes.policy.analysis import check_invariants, check_update, diff_policies
from foureyes.policy.batch_analysis import BatchedPeople, batch_changes, batch_gaps
from foureyes.policy.engine import decide
from foureyes.policy.explain import explain_batch
from foureyes.policy.testing import run_policy_tests
from tests.conftest import EXAMPLES
from tests.factories import NOW, account, example_policy, policy_from, staff

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
STAFF = EXAMPLES / "staff.yaml"
THE_BATCH_RULE = """  - id: abuse-ring-takedown
    # ... and their reversals, so that a whole batch (or chosen items) can be undone as one.
    actions: [account.suspend, account.lock, account.unsuspend, account.unlock]
"""


def with_batch(rule: str) -> str:
    """The example policy with one more batch rule."""
    assert EXAMPLE.count("\ninvariants:\n") == 1
    return EXAMPLE.replace("\ninvariants:\n", rule + "\ninvariants:\n")


LONE_VIT_DEACTIVATION = """  - id: sweep
    actions: [account.deactivate]
    tiers: [vit, verified, standard]
    max_items: 100
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
"""


# --- the prover ---------------------------------------------------------------------------------


def test_the_example_policys_invariants_hold_with_its_batch_rule() -> None:
    assert check_invariants(example_policy()) == []


def test_a_batch_rule_below_an_invariant_on_a_tier_it_carries_is_a_violation() -> None:
    policy = policy_from(with_batch(LONE_VIT_DEACTIVATION))
    violations = check_invariants(policy)
    assert [v.invariant for v in violations] == ["no-lone-vit-deactivation"]
    described = violations[0].describe()
    assert "batch rule sweep" in described
    assert "in a batch" in described
    assert "by 2 people" in described
    gaps = batch_gaps(policy, policy.invariants[0])
    assert {(gap.action, gap.tier, gap.people, gap.required) for gap in gaps} == {
        ("account.deactivate", "vit", 2, 4)
    }
    assert "requires 4" in gaps[0].describe()


def test_a_batch_rule_that_does_not_carry_the_invariants_tier_is_no_violation() -> None:
    policy = policy_from(
        with_batch(LONE_VIT_DEACTIVATION.replace("[vit, verified, standard]", "[standard]"))
    )
    assert check_invariants(policy) == []


def test_an_invariant_on_every_tier_holds_batches_of_any_tier_to_it() -> None:
    text = with_batch("").replace(
        "invariants:\n",
        "invariants:\n  - {id: two-to-suspend, actions: [account.suspend], min_people: 4}\n",
    )
    violations = check_invariants(policy_from(text))
    found = {v.invariant: v for v in violations}
    assert "two-to-suspend" in found
    # The batch rule's own bar (3 people) is below it, for every tier the batch carries.
    assert found["two-to-suspend"].rules == ("batch rule abuse-ring-takedown",)


def test_an_update_adding_a_lax_batch_rule_is_refused() -> None:
    proposed = policy_from(with_batch(LONE_VIT_DEACTIVATION))
    violations = check_update(proposed, example_policy())
    assert {v.invariant for v in violations} == {"no-lone-vit-deactivation"}


def test_the_prover_sees_the_batch_bar_of_each_included_item() -> None:
    policy = example_policy()
    batched = BatchedPeople(policy)
    tomas = staff("e-3001", groups=("trust-safety",))
    for target, expected in ((account("bot"), 3), (account("pm", followers=5_000_000), None)):
        request = DecisionRequest(tomas, "account.suspend", target, RequestContext(now=NOW))
        carried = batched(request, decide(policy, request))
        if expected is None:
            assert carried is None  # a vit account is split out: no batch carries it
        else:
            assert carried is not None
            assert carried[0].id == "abuse-ring-takedown"
            assert carried[1] == expected
    glass = DecisionRequest(
        tomas, "account.suspend", account("bot"), RequestContext(now=NOW), break_glass=True
    )
    assert batched(glass, decide(policy, glass)) is None


# --- policy diff ----------------------------------------------------------------------------------


def test_diff_shows_every_change_of_a_batch_rule_and_which_are_weaker() -> None:
    old = example_policy()
    new_text = (
        EXAMPLE.replace(
            '    approvals: 2\n    approvers: \'"trust-safety" in approver.groups &&',
            ('    approvals: 1\n    approvers: \'"trust-safety" in approver.groups &&'),
        )
        .replace("tiers: [standard, verified]", "tiers: [standard, verified, vit]")
        .replace("max_items: 10000", "max_items: 20")
    )
    new = policy_from(new_text)
    lines = batch_changes(old, new)
    assert "account.suspend: approvals 2 → 1 (weaker)" in lines
    assert (
        "account.lock: tiers ['standard', 'verified'] → ['standard', 'verified', 'vit'] (weaker)"
        in lines
    )
    assert "account.suspend: max_items 10000 → 20" in lines
    assert diff_policies(old, new).batches == lines
    gone = policy_from(
        EXAMPLE.replace(
            THE_BATCH_RULE,
            THE_BATCH_RULE.replace("account.suspend, account.lock, ", "account.suspend, "),
        )
    )
    assert "account.lock: batches no longer allowed (batch rule abuse-ring-takedown gone)" in (
        batch_changes(old, gone)
    )
    assert "account.lock: batches allowed by new batch rule abuse-ring-takedown (weaker)" in (
        batch_changes(gone, old)
    )
    assert batch_changes(old, old) == []


# --- policy explain ---------------------------------------------------------------------------


def test_explain_a_batch_gives_each_items_verdict_and_the_bar() -> None:
    plan, status = explain_batch(
        example_policy(),
        staff_file=STAFF,
        accounts_file=STAFF,
        staff_id="e-3001",
        action="account.suspend",
        account_refs=["chirp:alice", "chirp:bob", "chirp:president", "chirp:newsdesk"],
        now=NOW,
        justification="CASE-9",
    )
    assert plan.counts == {"included": 3, "split_out": 1, "denied": 0}
    assert [item.account for item in plan.split_out] == ["chirp:president"]
    assert plan.requirement.min_people == 3
    assert not status.satisfied
    # Who could approve: trust & safety employees other than Tomas (Lee is a contractor).
    assert status.batch.factors[0].candidates == ("e-3002", "e-3003", "e-9001")


def test_explain_names_every_account_it_does_not_know() -> None:
    with pytest.raises(NotFound) as caught:
        explain_batch(
            example_policy(),
            staff_file=STAFF,
            accounts_file=STAFF,
            staff_id="e-3001",
            action="account.suspend",
            account_refs=["chirp:alice", "chirp:nobody", "chirp:ghost"],
            now=NOW,
        )
    assert "chirp:nobody (account 2)" in caught.value.message
    assert "chirp:ghost (account 3)" in caught.value.message


def test_explain_refuses_what_plan_batch_refuses() -> None:
    common = {"staff_file": STAFF, "accounts_file": STAFF, "now": NOW}
    with pytest.raises(BatchRefused):
        explain_batch(
            example_policy(),
            staff_id="e-3001",
            action="account.deactivate",
            account_refs=["chirp:alice"],
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(BadInput, match="more than once"):
        explain_batch(
            example_policy(),
            staff_id="e-3001",
            action="account.suspend",
            account_refs=["chirp:alice", "chirp:alice"],
            **common,  # type: ignore[arg-type]
        )


runner = CliRunner()


def test_the_cli_explains_a_batch(tmp_path: Path) -> None:
    listing = tmp_path / "ring.txt"
    listing.write_text("# the ring\nchirp:bob\n\nchirp:president\n")
    result = runner.invoke(
        app,
        [
            "policy", "explain", str(EXAMPLES / "policy.yaml"), "--staff", "e-3001",
            "--staff-file", str(STAFF), "--action", "account.suspend",
            "--account", "chirp:alice", "--accounts-list", str(listing), "--batch",
        ],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 included, 1 split out, 0 denied" in out
    assert "3. chirp:president (tier vit; pending, 3 people alone): a vit account" in out
    assert "2 approval(s) from" in out


def test_the_cli_wants_batch_for_several_accounts() -> None:
    result = runner.invoke(
        app,
        [
            "policy", "explain", str(EXAMPLES / "policy.yaml"), "--staff", "e-3001",
            "--staff-file", str(STAFF), "--action", "account.suspend",
            "--account", "chirp:alice", "--account", "chirp:bob",
        ],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--batch" in result.output


# --- policy test ------------------------------------------------------------------------------


def test_the_examples_batch_tests_pass() -> None:
    results = run_policy_tests(example_policy(), now=NOW)
    batch_results = [r for r in results if r.plan is not None or "batch" in r.name]
    assert len(batch_results) == 3
    assert all(r.passed for r in results), [r.failures for r in results if not r.passed]


BATCH_TEST = """
  - name: wrong on purpose
    staff: {id: e-3001, groups: [trust-safety], employment: employee, days_left: 400}
    action: account.suspend
    justification: CASE-1
    batch:
      accounts:
        - {id: a, followers: 1}
        - {id: president, followers: 41700000, verified: true}
        - {id: b, followers: 2}
      expect: {included: 3, split_out: 0, denied: 1, split_out_ids: [a], min_people: 4,
               approvals: 3}
"""


def test_a_batch_test_reports_each_expectation_it_misses() -> None:
    policy = policy_from(EXAMPLE.replace("\ntests:\n", "\ntests:\n" + BATCH_TEST.lstrip("\n")))
    result = next(r for r in run_policy_tests(policy, now=NOW) if r.name == "wrong on purpose")
    assert set(result.failures) == {
        "included: expected 3, got 2",
        "split_out: expected 0, got 1",
        "denied: expected 1, got 0",
        "split_out_ids: expected ['a'], got ['president']",
        "min_people: expected 4, got 3",
        "approvals: expected 3, got 2",
    }


def test_a_batch_test_expecting_a_refusal_fails_when_it_is_planned_and_the_reverse() -> None:
    refused = BATCH_TEST.replace(
        "expect: {included: 3, split_out: 0, denied: 1, split_out_ids: [a], min_people: 4,\n"
        "               approvals: 3}",
        "expect: {refused: true}",
    )
    policy = policy_from(EXAMPLE.replace("\ntests:\n", "\ntests:\n" + refused.lstrip("\n")))
    result = next(r for r in run_policy_tests(policy, now=NOW) if r.name == "wrong on purpose")
    assert result.failures == ("refused: expected the batch to be refused, it was planned",)
    planned = refused.replace("{refused: true}", "{included: 2}").replace(
        "account.suspend", "account.deactivate"
    )
    policy = policy_from(EXAMPLE.replace("\ntests:\n", "\ntests:\n" + planned.lstrip("\n")))
    result = next(r for r in run_policy_tests(policy, now=NOW) if r.name == "wrong on purpose")
    assert result.failures[0].startswith("refused: expected a plan, got: no batch rule names")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("    account: {id: x}\n", "has its accounts and expectation under `batch`"),
        ("    break_glass: true\n", "never break-glass"),
    ],
)
def test_a_malformed_batch_test_is_a_located_error(extra: str, reason: str) -> None:
    text = EXAMPLE.replace("\ntests:\n", "\ntests:\n" + BATCH_TEST.lstrip("\n") + extra)
    with pytest.raises(BadInput) as caught:
        policy_from(text)
    assert reason in caught.value.message
    assert "tests[0]" in caught.value.message


def test_the_cli_diff_prints_batch_rule_changes(tmp_path: Path) -> None:
    weaker = tmp_path / "weaker.yaml"
    weaker.write_text(
        EXAMPLE.replace("max_items: 10000", "max_items: 10000\n    step_up: false").replace(
            "tiers: [standard, verified]", "tiers: [standard, verified, vit]"
        )
    )
    result = runner.invoke(
        app, ["policy", "diff", str(EXAMPLES / "policy.yaml"), str(weaker)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert (
        "batch: account.suspend: tiers ['standard', 'verified'] → ['standard', 'verified', "
        "'vit'] (weaker)" in result.stdout
    ), result.stdout
