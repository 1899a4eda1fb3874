"""What the re-check at execution demands of a request the deciding review (or its requester)
carries out, when what the policy asks changed after the approvals were given: the account's
tier moved on the platform after submission (now asking for step-up and a delay), a policy
update added step-up or a delay, or the request's deadline passed before the worker's expiry
pass came by. Each test is an attack that ran the request before the fix."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import text

from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem
from tests.api.test_deciding_review import _applied, _decided, _kinds, _pending, _verifies
from tests.conftest import EXAMPLES
from tests.worlds import install_next_policy

# Bob grows past this line on the platform after the request was submitted.
TIERED = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: small-accounts
    effect: require
    actions: [account.suspend]
    when: 'account.followers < 1000'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
  - id: large-accounts
    effect: require
    actions: [account.suspend]
    when: 'account.followers >= 1000'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
"""


def _amend(api: Api, rule_id: str, **changes: Any) -> None:
    """The example policy with `changes` made to its rule `rule_id`, in force from now."""
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    (rule,) = [r for r in document["rules"] if r["id"] == rule_id]
    rule.update(changes)
    install_next_policy(
        api.world.services, yaml.safe_dump(document, width=1_000_000), api.world.clock.now
    )


def _grown_after_submission(api: Api, **large: Any) -> dict[str, Any]:
    """Tomas asks to suspend bob (small: one approval, nothing more); then bob's followers grow
    past the line on the platform, where the rule for large accounts also asks for `large`."""
    document = yaml.safe_load(TIERED)
    document["rules"][1].update(large)
    install_next_policy(
        api.world.services, yaml.safe_dump(document, width=1_000_000), api.world.clock.now
    )
    view = api.submitted("e-3001", action="account.suspend", account="chirp:bob")
    assert view["state"] == "pending"
    with api.world.services.database.transaction() as session:
        session.execute(text("UPDATE chirp_accounts SET followers = 5000 WHERE id = 'bob'"))
    return view


def _read_approved(api: Api) -> dict[str, Any]:
    """Tomas's read of bob's private messages, approved by legal (e-5001): it waits for Tomas."""
    view = api.submitted(
        "e-3001", action="account.read_dms", account="chirp:bob", justification="LEGAL-7"
    )
    assert _decided(api, "e-5001", view)["state"] == "approved"
    return view


def _reissue_tokens(api: Api) -> None:
    for person in operations.list_staff(api.world.services):
        api.tokens[person.id] = operations.issue_token(api.world.services, person.id)


def _executing_events(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["event"] for e in view["timeline"] if e["kind"] == "request.executing"]


def test_a_tier_that_now_asks_for_step_up_is_not_carried_out_without_it(api: Api) -> None:
    """Mei approves bob's suspension as submitted (no step-up asked); the decision on bob as he
    is now asks for step-up, which her approval lacks: cancelled saying so, bob untouched."""
    view = _grown_after_submission(api, step_up=True)
    answer = _decided(api, "e-3002", view)
    assert answer["state"] == "cancelled"
    assert "re-check at execution failed" in answer["reason"]
    assert "e-3002's approval was given without the step-up" in answer["reason"]
    assert "request.executed" not in _kinds(answer)
    assert api.world.chirp("bob")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_a_tier_that_now_asks_for_a_delay_is_not_carried_out_at_once(api: Api) -> None:
    """The decision on bob as he is now asks for ten minutes after the approval; Mei's approval
    does not carry it out in her call: cancelled saying which delay has not run."""
    view = _grown_after_submission(api, delay="10m")
    answer = _decided(api, "e-3002", view)
    assert answer["state"] == "cancelled"
    assert "asks for a delay of 0:10:00 after the approval" in answer["reason"]
    assert api.world.chirp("bob")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_the_execution_names_the_decision_it_ran_under(api: Api) -> None:
    """bob grew but the rule for large accounts asks for nothing more: carried out, and the
    `request.executing` event names the decision of the re-check (the large-accounts rule)."""
    view = _grown_after_submission(api)
    answer = _decided(api, "e-3002", view)
    assert answer["state"] == "executed"
    (executing,) = _executing_events(answer)
    assert executing["decision"]["rules"] == ["large-accounts"]
    assert executing["decision"]["tier"] == "standard"


def test_a_delay_added_after_the_approval_holds_the_requesters_execution(api: Api) -> None:
    """Legal approved Tomas's read; a policy update then asks for a day after approval: his
    execution right after is cancelled saying so, and he gets no data."""
    view = _read_approved(api)
    _amend(api, "dms-need-legal", delay="24h")
    carried = api.post("e-3001", f"/v1/requests/{view['id']}/execute")
    assert carried.status_code == 200, carried.text
    assert carried.json()["state"] == "cancelled"
    assert "asks for a delay of 1 day" in carried.json()["reason"]
    assert carried.json()["data"] is None


def test_approvals_given_before_step_up_was_asked_do_not_count(api: Api) -> None:
    """Mei approved the president's suspension; a policy update then asks step-up of every
    review of that rule. Sam's approval with step-up does not complete it on Mei's approval
    without: it stays pending, one approval missing, and nothing runs."""
    view = _pending(api)
    _amend(api, "vit-suspension", step_up=True)
    answer = api.review("e-3003", view["id"], digest=view["digest"], step_up=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "pending"
    # The progress shown counts as the review does: Sam's approval alone, one missing.
    (factor,) = answer.json()["decision"]["factors"]
    assert (factor["approved_by"], factor["missing"]) == (["e-3003"], 1)
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0


def test_an_approval_without_step_up_does_not_carry_out_once_step_up_is_asked(api: Api) -> None:
    """Legal approved Tomas's read without step-up; a policy update then asks for it: his
    execution is cancelled naming the approval that no longer counts, and he gets no data."""
    view = _read_approved(api)
    _amend(api, "dms-need-legal", step_up=True)
    carried = api.post("e-3001", f"/v1/requests/{view['id']}/execute")
    assert carried.status_code == 200, carried.text
    assert carried.json()["state"] == "cancelled"
    assert "e-5001's approval was given without the step-up" in carried.json()["reason"]
    assert carried.json()["data"] is None


def test_a_request_past_its_deadline_is_not_approved_before_the_expiry_pass(api: Api) -> None:
    """No worker ran since the president's suspension passed its deadline: Sam's deciding
    approval is refused (409), the request is expired with its event as the worker's pass
    would, his review is not recorded, and nothing runs."""
    view = _pending(api)
    api.world.clock.advance(hours=25)
    _reissue_tokens(api)
    problem = assert_problem(
        api.review("e-3003", view["id"], digest=view["digest"]), 409, "conflict"
    )
    assert "expired at" in problem["detail"]
    shown = api.show("e-3001", view["id"])
    assert shown["state"] == "expired"
    assert _kinds(shown)[-1] == "request.expired"
    assert [e["actor"] for e in shown["timeline"] if e["kind"] == "review.recorded"] == ["e-3002"]
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_a_read_past_its_deadline_is_not_carried_out_before_the_expiry_pass(api: Api) -> None:
    """Legal approved Tomas's read, which he never asked for within its day: his late
    execution expires it as the worker's pass would, and he gets no data."""
    view = _read_approved(api)
    api.world.clock.advance(hours=25)
    _reissue_tokens(api)
    carried = api.post("e-3001", f"/v1/requests/{view['id']}/execute")
    assert carried.status_code == 200, carried.text
    assert carried.json()["state"] == "expired"
    assert carried.json()["data"] is None
    assert "request.executing" not in _kinds(carried.json())
