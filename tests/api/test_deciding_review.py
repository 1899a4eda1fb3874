"""The deciding review carries its request out (#17): the approval that completes a request with
no delay answers `executed` (or why not). On the demo platform (kept in foureyes' database) the
review, the approval, the claim, the re-checks at execution, the platform change, the outcome and
their events are one transaction; elsewhere the request is carried out after the review's COMMIT
in the same call. Each test tries to make the deciding approver run something that must not
run, or run it twice, or leave it half done."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy import func, select, text

from foureyes import worker
from foureyes.audit.verify import verify_log
from foureyes.connectors.base import ExecutionOrder, ExecutionResult
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.errors import Conflict, NotFound
from foureyes.model import ReviewDecision
from foureyes.policy.directory import parse_directory
from foureyes.store.tables import AlertRow, EventRow, ExecutionRow, ReviewRow
from foureyes.workflow import integrity, operations
from foureyes.workflow.review import ReviewInput
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.dba import tamper
from tests.races import race
from tests.worlds import as_remote, install_next_policy

# Suspending a very important account: two trust & safety approvals, no delay, no step-up.
SUSPEND = {"action": "account.suspend", "account": "chirp:president"}


def _kinds(view: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in view["timeline"]]


def _applied(api: Api) -> int:
    """How many changes the demo platform recorded (one per idempotency key)."""
    with api.world.services.database.read() as session:
        return session.scalar(select(func.count()).select_from(ChirpAppliedRow)) or 0


def _reviews(api: Api, request_id: str) -> int:
    with api.world.services.database.read() as session:
        return session.scalar(select(func.count()).where(ReviewRow.request_id == request_id)) or 0


def _verifies(api: Api) -> None:
    assert verify_log(api.world.services.database, [], workers=1).size > 0


def _pending(api: Api, requester: str = "e-3001", **asked: Any) -> dict[str, Any]:
    """A pending request (by default Tomas's suspension of the president), approved once."""
    view = api.submitted(requester, **(asked or SUSPEND))
    assert view["state"] == "pending"
    first = api.review("e-3002", view["id"], digest=view["digest"])
    assert first.json()["state"] == "pending", first.text
    return view


def _decided(api: Api, reviewer: str, view: dict[str, Any]) -> dict[str, Any]:
    """`reviewer` approves the request `view` shows; the answer (200), the request's view."""
    answer = api.review(reviewer, view["id"], digest=view["digest"])
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def _reissue_tokens(api: Api) -> None:
    for person in operations.list_staff(api.world.services):
        api.tokens[person.id] = operations.issue_token(api.world.services, person.id)


def test_the_deciding_approval_answers_executed(api: Api) -> None:
    """Sam's approval completes the suspension: its answer is the request executed, by Sam's
    call, with both approvers named; the platform changed once; the log verifies."""
    view = _pending(api)
    answer = api.review("e-3003", view["id"], digest=view["digest"])
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["state"] == "executed"
    assert api.world.chirp("president")["status"] == "suspended"
    assert _kinds(done) == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
    ]
    executing = done["timeline"][4]
    assert executing["actor"] == "e-3003"
    assert executing["event"]["approvers"] == ["e-3002", "e-3003"]
    assert _applied(api) == 1
    # Nothing is left for the worker.
    assert view["id"] not in worker.run_once(api.world.services).executed
    _verifies(api)


def test_a_request_whose_answer_is_for_its_requester_waits_for_them(api: Api) -> None:
    """A read of private messages approved by legal: the approver's answer is `approved`, and
    only the requester, asking, gets the data (the approver never does)."""
    view = api.submitted(
        "e-3001", action="account.read_dms", account="chirp:bob", justification="LEGAL-7"
    )
    answer = _decided(api, "e-5001", view)
    assert answer["state"] == "approved"
    assert "data" not in answer or answer["data"] is None
    assert_problem(api.post("e-5001", f"/v1/requests/{view['id']}/execute"), 403, "forbidden")
    carried = api.post("e-3001", f"/v1/requests/{view['id']}/execute")
    assert carried.status_code == 200, carried.text
    assert carried.json()["state"] == "executed"


def test_a_delayed_request_waits_for_its_delay(api: Api) -> None:
    """Deleting bob: two approvals, then a day's delay. The deciding approval schedules it and
    nothing reaches the platform."""
    view = _pending(api, action="account.delete", account="chirp:bob")
    answer = _decided(api, "e-3003", view)
    assert answer["state"] == "scheduled"
    assert _applied(api) == 0


def _install_with(api: Api, rule: dict[str, Any]) -> None:
    """The example policy with `rule` first, in force from now."""
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["rules"].insert(0, rule)
    install_next_policy(
        api.world.services, yaml.safe_dump(document, width=1_000_000), api.world.clock.now
    )


def test_a_policy_that_now_asks_for_more_is_not_carried_out_by_the_approver(api: Api) -> None:
    """Between Mei's approval and Sam's, the policy in force comes to ask for security's
    approval too: Sam's approval no longer completes the request, and nothing runs."""
    view = _pending(api)
    _install_with(
        api,
        {
            "id": "vit-suspension-security",
            "effect": "require",
            "actions": ["account.suspend"],
            "when": 'account.tier == "vit"',
            "approvals": 1,
            "approvers": '"security" in approver.groups',
        },
    )
    answer = _decided(api, "e-3003", view)
    assert answer["state"] == "pending"
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0


def test_a_policy_that_now_denies_it_is_not_carried_out_by_the_approver(api: Api) -> None:
    """Between Mei's approval and Sam's, the policy in force comes to deny suspending very
    important accounts: nobody may approve it any more (to Sam it is not found, as an unknown
    id), and nothing runs."""
    view = _pending(api)
    _install_with(
        api,
        {
            "id": "no-vit-suspensions",
            "effect": "deny",
            "actions": ["account.suspend"],
            "when": 'account.tier == "vit"',
        },
    )
    assert_problem(api.review("e-3003", view["id"], digest=view["digest"]), 404, "not-found")
    assert "request.executing" not in _kinds(api.show("e-3001", view["id"]))
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0


def test_an_account_changed_since_submission_is_re_decided_before_it_runs(api: Api) -> None:
    """Under a policy where suspending a small account takes one trust & safety approval and a
    large one also security's, bob grows past the line on the platform after Tomas asked.
    Mei's approval completes the request as submitted, but the re-check at execution decides on
    bob as he is now: security has not approved, so the request is cancelled saying why, in
    Mei's answer, and bob is not suspended."""
    policy = """\
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
    approvers: '"security" in approver.groups'
"""
    install_next_policy(api.world.services, policy, api.world.clock.now)
    view = api.submitted("e-3001", action="account.suspend", account="chirp:bob")
    assert view["state"] == "pending"
    with api.world.services.database.transaction() as session:
        session.execute(text("UPDATE chirp_accounts SET followers = 5000 WHERE id = 'bob'"))
    answer = _decided(api, "e-3002", view)
    assert answer["state"] == "cancelled"
    assert answer["reason"].startswith("re-check at execution failed")
    assert "request.executed" not in _kinds(answer)
    assert api.world.chirp("bob")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_a_requester_terminated_before_the_last_approval(api: Api) -> None:
    """The HR import no longer lists Tomas after Mei approved: his request is cancelled, and
    Sam's approval is refused (the request is no longer his to act on: not found, as an
    unknown id); nothing runs."""
    view = _pending(api)
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    document["staff"] = [p for p in document["staff"] if p["id"] != "e-3001"]
    operations.import_directory(api.world.services, parse_directory(yaml.safe_dump(document)))
    assert_problem(api.review("e-3003", view["id"], digest=view["digest"]), 404, "not-found")
    shown = api.show("e-3002", view["id"])
    assert shown["state"] == "cancelled"
    assert "request.executing" not in _kinds(shown)
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0


def test_a_requester_who_may_no_longer_act_is_not_carried_out_for(api: Api) -> None:
    """Lee, a contractor, asks three days before the contract ends; the deciding approval comes
    two days before, when the policy no longer lets departing contractors suspend anyone:
    nobody may approve it (not found, as an unknown id), and nothing runs."""
    clock = api.world.clock
    clock.now = clock.now.replace(year=2027, month=3, day=28, hour=23)
    _reissue_tokens(api)
    view = _pending(api, requester="c-3004")
    clock.advance(hours=2)  # 2027-03-29: two days left
    assert_problem(api.review("e-3003", view["id"], digest=view["digest"]), 404, "not-found")
    assert "request.executing" not in _kinds(api.show("c-3004", view["id"]))
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0


def test_a_request_retargeted_in_the_database_before_the_deciding_approval(api: Api) -> None:
    """The DBA points Tomas's pending suspension of the president at chirp:chirp after Mei
    approved it: Sam's approval is refused, the request is cancelled as tampered with (a high
    alert), and neither account is touched."""
    view = _pending(api)
    assert tamper(
        api.world.services.database,
        "UPDATE requests SET account_ref = 'chirp:chirp' WHERE id = :id",
        id=view["id"],
    )
    answer = api.review("e-3003", view["id"], digest=view["digest"])
    assert_problem(answer, 409, "conflict")
    assert "account_ref" in answer.json()["detail"]
    shown = api.show("e-4001", view["id"])
    assert shown["state"] == "cancelled"
    with api.world.services.database.read() as session:
        alerts = session.scalars(
            select(AlertRow).where(
                AlertRow.request_id == view["id"], AlertRow.detector == integrity.DETECTOR
            )
        ).all()
    assert [a.severity for a in alerts] == ["high"]
    assert api.world.chirp("president")["status"] == "active"
    assert api.world.chirp("chirp")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_a_request_retargeted_after_the_approval_committed_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a platform called from outside foureyes' transactions the deciding review commits
    the approval, then carries the request out. The DBA re-targets it in between: the
    re-check at execution refuses it, and the approver's answer is the cancellation."""
    as_remote(monkeypatch, api.world.services.connector("chirp"))
    view = _pending(api)
    real = operations.run_if_allowed

    def dba_first(*args: Any) -> Any:
        assert tamper(
            api.world.services.database,
            "UPDATE requests SET account_ref = 'chirp:chirp' WHERE id = :id",
            id=view["id"],
        )
        return real(*args)

    monkeypatch.setattr("foureyes.workflow.answered.run_if_allowed", dba_first)
    answer = _decided(api, "e-3003", view)
    assert answer["state"] == "cancelled"
    assert "account_ref" in answer["reason"]
    assert api.world.chirp("president")["status"] == "active"
    assert api.world.chirp("chirp")["status"] == "active"
    assert _applied(api) == 0


def test_a_refused_platform_write_leaves_the_review_and_a_clean_failure(api: Api) -> None:
    """The platform refuses the change: the review and the approval stand, the request ends
    `failed` with the platform's reason, in the same answer; the account is unchanged."""
    view = _pending(api)
    api.world.services.connector("chirp").failures.inject(1, transient=False)
    answer = _decided(api, "e-3003", view)
    assert answer["state"] == "failed"
    assert "refused by the platform" in answer["reason"]
    assert _kinds(answer)[-3:] == ["request.approved", "request.executing", "request.failed"]
    assert _reviews(api, view["id"]) == 2
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)


def test_a_platform_down_for_a_moment_is_retried_by_the_worker(api: Api) -> None:
    """A transient failure: approved again with a back-off, and the worker carries it out once
    it is due."""
    view = _pending(api)
    api.world.services.connector("chirp").failures.inject(1, transient=True)
    answer = _decided(api, "e-3003", view)
    assert answer["state"] == "approved"
    assert _kinds(answer)[-1] == "execution.retry"
    api.world.clock.advance(seconds=10)
    assert worker.run_once(api.world.services).executed == [view["id"]]
    assert api.world.chirp("president")["status"] == "suspended"
    assert _applied(api) == 1


def test_a_crash_inside_the_deciding_review_leaves_nothing_half_done(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process fails after the platform's change, before the outcome is recorded (a bug:
    500): the whole transaction rolls back, the review included. The request is still pending
    with Mei's approval alone, the platform unchanged; Sam approves again and it runs, once."""
    connector = api.world.services.connector("chirp")
    real = connector.local_execution()

    def dies_after_writing(session: Any, order: ExecutionOrder) -> ExecutionResult:
        real(session, order)
        raise RuntimeError("the process died here")

    view = _pending(api)
    monkeypatch.setattr(connector, "local_execution", lambda: dies_after_writing)
    assert_problem(api.review("e-3003", view["id"], digest=view["digest"]), 500, "internal-error")
    shown = api.show("e-4001", view["id"])
    assert shown["state"] == "pending"
    assert _kinds(shown) == ["request.submitted", "review.recorded"]
    assert _reviews(api, view["id"]) == 1
    assert api.world.chirp("president")["status"] == "active"
    assert _applied(api) == 0
    _verifies(api)
    monkeypatch.undo()
    assert _decided(api, "e-3003", view)["state"] == "executed"
    assert _applied(api) == 1


def test_a_crash_between_claim_and_outcome_on_a_remote_platform_is_reconciled(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a platform called from outside our transactions, the approver's call dies after the
    platform applied the change and before its outcome was recorded: the answer says the
    outcome is unknown, naming the request; once the lease lapses, reconciliation finds the
    change applied and records it executed. It never runs twice."""
    connector = api.world.services.connector("chirp")
    as_remote(monkeypatch, connector)
    real = connector.execute

    def dies_after_applying(order: ExecutionOrder) -> ExecutionResult:
        real(order)
        raise RuntimeError("the process died here")

    view = _pending(api)
    monkeypatch.setattr(connector, "execute", dies_after_applying)
    answer = api.review("e-3003", view["id"], digest=view["digest"])
    body = assert_problem(answer, 503, "outcome-unknown")
    assert body["request_id"] == view["id"]
    assert f"your review of request {view['id']} was recorded" in body["detail"]
    assert api.show("e-4001", view["id"])["state"] == "executing"
    monkeypatch.setattr(connector, "execute", real)
    api.world.clock.now += api.world.services.execution_lease * 2
    worker.run_once(api.world.services)
    shown = api.show("e-4001", view["id"])
    assert shown["state"] == "executed"
    assert "request.reconciled" in _kinds(shown)
    assert api.world.chirp("president")["status"] == "suspended"
    assert _applied(api) == 1


def test_a_remote_platform_is_called_after_the_reviews_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a platform called from outside our transactions, the deciding approval commits first
    (the platform is called with the approval already recorded and the claim made), and the
    answer is still `executed`."""
    connector = api.world.services.connector("chirp")
    as_remote(monkeypatch, connector)
    real = connector.execute
    seen: list[str] = []

    def looks_first(order: ExecutionOrder) -> ExecutionResult:
        seen.append(operations.show(api.world.services, order.idempotency_key)["state"])
        return real(order)

    monkeypatch.setattr(connector, "execute", looks_first)
    view = _pending(api)
    answer = _decided(api, "e-3003", view)
    assert seen == ["executing"]
    assert answer["state"] == "executed"
    with api.world.services.database.read() as session:
        attempts = session.scalars(
            select(ExecutionRow.attempt).where(ExecutionRow.request_id == view["id"])
        ).all()
    assert attempts == [1]


def test_two_deciding_approvals_at_once_carry_it_out_once(api: Api) -> None:
    """Mei approved; Sam and Jo approve at the same moment. One of them completes the request
    and carries it out; the other is refused (it is no longer pending). One platform change,
    one execution, one `request.executed` event."""
    view = _pending(api)
    world = api.world

    def approve(who: str) -> Any:
        given = ReviewInput(ReviewDecision.APPROVE, view["digest"])
        return operations.review_and_run(world.services, world.actor(who), view["id"], given)

    results = race(lambda: approve("e-3003"), lambda: approve("e-9001"))
    carried = [r for r in results if r is not None and not isinstance(r, Exception)]
    # The loser finds it no longer pending, or (not having taken part) no longer theirs to see.
    refused = [r for r in results if isinstance(r, Conflict | NotFound)]
    assert len(carried) == 1, results
    assert len(refused) == 1, results
    assert carried[0].state.value == "executed"
    assert _applied(api) == 1
    with world.services.database.read() as session:
        executions = session.scalar(
            select(func.count()).where(ExecutionRow.request_id == view["id"])
        )
        executed = session.scalar(
            select(func.count()).where(
                EventRow.request_id == view["id"], EventRow.kind == "request.executed"
            )
        )
    assert (executions, executed) == (1, 1)
    assert _reviews(api, view["id"]) == 2
    _verifies(api)
