"""A database administrator tries to get a request carried out without its approvals, by writing
to the store directly (plain SQL, on SQLite and PostgreSQL): foureyes re-checks at execution
and refuses, with the reason in the log, and the platform is never asked."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from foureyes import worker
from foureyes.audit.verify import verify_log
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.core.events import request_digest, v2_request_digest
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, RequestRow, ReviewRow
from foureyes.workflow import integrity, operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem
from tests.dba import tamper
from tests.worlds import as_remote, make_world


def _pending_suspension(api: Api) -> dict[str, Any]:
    """Tomas asks to suspend chirp:president: two trust & safety approvals needed."""
    view = api.submitted("e-3001", action="account.suspend", account="chirp:president")
    assert view["state"] == "pending"
    return view


def _run_worker_and_show(api: Api, request_id: str) -> dict[str, Any]:
    tick = worker.run_once(api.world.services)
    assert request_id not in tick.executed
    return api.show("e-4001", request_id)


def _audit_kinds(api: Api, request_id: str) -> list[str]:
    response = api.get("e-4001", "/v1/audit/events", params={"request": request_id})
    assert response.status_code == 200, response.text
    return [event["kind"] for event in response.json()["items"]]


def _write_as_the_dba(api: Api, view: dict[str, Any], *forged: tuple[str, str]) -> None:
    """In one transaction of plain SQL: an approving review row with the request's digest for
    each (staff id, identity) in `forged`, and the request's state set to `approved`."""
    with api.world.services.database.transaction() as session:
        if forged:
            session.execute(
                insert(ReviewRow),
                [
                    {
                        "request_id": view["id"],
                        "reviewer_id": reviewer,
                        "identity": identity,
                        "kind": "review",
                        "decision": "approve",
                        "comment": "",
                        "digest": view["digest"],
                        "step_up": None,
                        "created_at": api.world.clock.now,
                    }
                    for reviewer, identity in forged
                ],
            )
        session.execute(
            update(RequestRow).where(RequestRow.id == view["id"]).values(state="approved")
        )


def test_a_request_set_to_approved_in_the_database_is_cancelled_at_execution(api: Api) -> None:
    """The DBA flips a pending request to `approved` with an UPDATE. The worker picks it up, the
    re-check at execution finds a state its audit events never recorded, and cancels it with
    that reason, as tampering (a high alert); the account is untouched, and the log shows the
    submission and the cancellation only."""
    view = _pending_suspension(api)
    _write_as_the_dba(api, view)
    shown = _run_worker_and_show(api, view["id"])
    assert shown["state"] == "cancelled"
    assert "its state is approved, but its audit events say it is pending" in shown["reason"]
    assert len(_high_alerts(api, view["id"])) == 1
    assert api.world.chirp("president")["status"] == "active"
    assert _audit_kinds(api, view["id"]) == ["request.submitted", "request.cancelled"]


def test_approvals_written_into_the_database_do_not_count(api: Api) -> None:
    """The DBA also forges the approvals: two review rows by Mei and Sam with the right digest,
    and the request set to `approved`. Reviews are only ever stored with their audit event, so
    the re-check at execution finds two reviews the log never recorded, and cancels the
    request naming them; the account is untouched."""
    view = _pending_suspension(api)
    _write_as_the_dba(api, view, ("e-3002", "mei"), ("e-3003", "sam"))
    shown = _run_worker_and_show(api, view["id"])
    assert shown["state"] == "cancelled"
    assert "e-3002, e-3003 have no audit event: the store was altered" in shown["reason"]
    assert api.world.chirp("president")["status"] == "active"
    assert _audit_kinds(api, view["id"]) == ["request.submitted", "request.cancelled"]


def test_a_real_approval_plus_a_forged_one_does_not_count_either(api: Api) -> None:
    """Mei approves for real; the DBA adds Sam's approval as a row and flips the state. Only the
    forged review is named; the request is cancelled all the same."""
    view = _pending_suspension(api)
    assert api.review("e-3002", view["id"], digest=view["digest"]).status_code == 200
    _write_as_the_dba(api, view, ("e-3003", "sam"))
    shown = _run_worker_and_show(api, view["id"])
    assert shown["state"] == "cancelled"
    assert "review(s) by e-3003 have no audit event" in shown["reason"]
    assert api.world.chirp("president")["status"] == "active"


# --- what was approved is what runs: the DBA edits an approved request ---------------------
#
# Each attack is the DBA's: plain SQL on the store, with foureyes' triggers out of the way
# (`tests.dba`: dropped on SQLite, switched off on PostgreSQL), so that the re-check alone
# stands between the edit and the platform. Each ends the same way: nothing reached the
# platform, the request is cancelled naming what differs, a high alert is raised, and the audit
# log still verifies (the DBA touched no event).

PRESIDENT_EMAIL = "president@mail.example"
APPROVED_EMAIL = "new-president@chirp.example"
DBA_EMAIL = "dba-owns-it@evil.example"


def _approved(api: Api, action: str, account: str, **body: Any) -> dict[str, Any]:
    """Tomas asks; Mei and Sam (trust & safety) and, where the rule asks, Ines (security)
    approve with their keys: the request is scheduled (a VIT change: 10-minute delay) or
    approved, and not carried out yet (reviews recorded by `operations.review`, not the API's
    deciding review, which would carry it out: these attacks come between the two)."""
    view = api.submitted("e-3001", action=action, account=account, **body)
    reviewers = ("e-3002", "e-3003", "e-4001")
    for reviewer in reviewers:
        if api.show("e-3001", view["id"])["state"] != "pending":
            break
        api.world.review(reviewer, view["id"], digest=view["digest"])
    shown = api.show("e-3001", view["id"])
    assert shown["state"] in {"scheduled", "approved"}
    return shown


def _email_change(api: Api) -> dict[str, Any]:
    view = _approved(
        api,
        "account.change_email",
        "chirp:president",
        params={"email": APPROVED_EMAIL},
        justification="CASE-2017",
    )
    assert view["state"] == "scheduled"
    return view


def _deactivation(api: Api, account: str = "chirp:chirp") -> dict[str, Any]:
    return _approved(api, "account.deactivate", account, justification="CASE-2017")


def _row(api: Api, request_id: str) -> RequestRow:
    with api.world.services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def _tamper(api: Api, sql: str, **params: Any) -> None:
    assert tamper(api.world.services.database, sql, **params) >= 1


def _when_due(api: Api, request_id: str) -> dict[str, Any]:
    """The delay runs out and the worker passes: it must not execute the request."""
    api.world.clock.advance(minutes=11)
    tick = worker.run_once(api.world.services)
    assert request_id not in tick.executed
    return api.show("e-4001", request_id)


def _high_alerts(api: Api, request_id: str) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.request_id == request_id,
                    AlertRow.detector == integrity.DETECTOR,
                    AlertRow.severity == "high",
                )
            )
        )


def _stopped(api: Api, request_id: str, *altered: str) -> dict[str, Any]:
    """Cancelled naming `altered`, one high alert, and the log still verifies."""
    shown = api.show("e-4001", request_id)
    assert shown["state"] == "cancelled", shown
    assert "re-check at" in shown["reason"]
    for part in altered:
        assert part in shown["reason"], shown["reason"]
    alerts = _high_alerts(api, request_id)
    assert len(alerts) == 1
    assert all(part in alerts[0].summary for part in altered)
    # The last state change (a break-glass the log knows nothing of is settled after it, by
    # `break_glass.unfounded`: the worker's post-review pass does not look at it again).
    moves = [e["kind"] for e in shown["timeline"] if e["kind"] != integrity.UNFOUNDED]
    assert moves[-1] == "request.cancelled"
    assert verify_log(api.world.services.database, [], workers=1).size > 0
    return shown


def _untouched(api: Api) -> None:
    """The demo platform's tables: no account changed."""
    president = api.world.chirp("president")
    assert (president["email"], president["status"]) == (PRESIDENT_EMAIL, "active")
    for account in ("chirp", "newsdesk"):
        assert api.world.chirp(account)["status"] == "active"
    with api.world.services.database.transaction() as session:
        assert session.scalars(select(ChirpAppliedRow.idempotency_key)).all() == []


def test_params_edited_after_approval_are_not_carried_out(api: Api) -> None:
    """The verified attack: the president's approved email change gets the DBA's address."""
    view = _email_change(api)
    _tamper(
        api,
        "UPDATE requests SET params = :params WHERE id = :id",
        params=json.dumps({"email": DBA_EMAIL}),
        id=view["id"],
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "params")
    _untouched(api)


def test_an_account_retargeted_after_approval_is_not_acted_on(api: Api) -> None:
    """The verified attack: an approved deactivation of chirp:chirp, pointed at the president."""
    view = _deactivation(api)
    _tamper(
        api, "UPDATE requests SET account_ref = 'chirp:president' WHERE id = :id", id=view["id"]
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "account_ref")
    _untouched(api)


def test_a_retargeted_approved_request_is_not_carried_out_through_the_api(api: Api) -> None:
    """No delay this time (a VIT suspension: two approvals): the requester carries it out
    through the API after the DBA points it at the president. The answer is the cancellation."""
    view = _approved(api, "account.suspend", "chirp:chirp")
    assert view["state"] == "approved"
    _tamper(
        api, "UPDATE requests SET account_ref = 'chirp:president' WHERE id = :id", id=view["id"]
    )
    response = api.post("e-3001", f"/v1/requests/{view['id']}/execute")
    assert response.json()["state"] == "cancelled", response.text
    _stopped(api, view["id"], "account_ref")
    _untouched(api)


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [
        ("justification", "CASE-1", "justification"),
        ("action", "account.delete", "action"),
        ("action", "account.reset_password", "action"),
        ("requester_id", "e-9001", "requester"),
        ("policy_version", 2, "policy_version"),
    ],
)
def test_other_fields_edited_after_approval_are_caught(
    api: Api, column: str, value: object, named: str
) -> None:
    """The approved deactivation of the president becomes a deletion, a password reset, has
    another reason or another requester: each is caught by name."""
    view = _deactivation(api, "chirp:president")
    _tamper(
        api, f"UPDATE requests SET {column} = :value WHERE id = :id", value=value, id=view["id"]
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], named)
    _untouched(api)


def test_break_glass_switched_on_in_the_database_does_not_skip_the_approvals(api: Api) -> None:
    """A pending VIT suspension (two approvals, or break glass) is marked break-glass and
    approved by the DBA: the policy would allow that at once; the log says it was not."""
    view = _pending_suspension(api)
    _tamper(
        api,
        "UPDATE requests SET break_glass = :yes, state = 'approved' WHERE id = :id",
        yes=True,
        id=view["id"],
    )
    _run_worker_and_show(api, view["id"])
    shown = _stopped(api, view["id"], "break_glass")
    _untouched(api)
    # Settled for the post-review pass too, in the same worker pass, without a second alert.
    assert shown["timeline"][-1]["kind"] == integrity.UNFOUNDED
    worker.run_once(api.world.services)
    assert len(_high_alerts(api, view["id"])) == 1
    assert _audit_kinds(api, view["id"]).count(integrity.UNFOUNDED) == 1


def test_a_digest_rewritten_to_match_is_caught_by_the_audit_event(api: Api) -> None:
    """The careful DBA edits the params, recomputes the digest for them and writes it into the
    request and into every review: the tables agree with each other, but not with the
    request.submitted event, which the DBA cannot rewrite without `audit verify` failing."""
    view = _email_change(api)
    row = _row(api, view["id"])
    assert row.salt is not None  # the DBA reads the salt from the row: the digest is theirs to make
    forged = request_digest(
        salt=row.salt,
        action="account.change_email",
        account="chirp:president",
        params={"email": DBA_EMAIL},
        justification="CASE-2017",
        policy_version=row.policy_version,
        requester="e-3001",
        break_glass=False,
        reverts=None,
    )
    _tamper(
        api,
        "UPDATE requests SET params = :params, digest = :digest WHERE id = :id",
        params=json.dumps({"email": DBA_EMAIL}),
        digest=forged,
        id=view["id"],
    )
    _tamper(
        api,
        "UPDATE reviews SET digest = :digest WHERE request_id = :id",
        digest=forged,
        id=view["id"],
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "params", "digest")
    _untouched(api)


def test_a_salt_of_the_dbas_choosing_does_not_make_a_retargeted_request_match(api: Api) -> None:
    """The digest is salted (docs/digests.md), and the salt is in the row the DBA edits: they
    choose a salt of their own, recompute the digest for their params with it and write both
    (and the reviews' digests). The submitted event binds the salt through its digest and its
    params commitment: caught, cancelled, nothing reaches the platform."""
    view = _email_change(api)
    row = _row(api, view["id"])
    salt = "0" * 64
    forged = request_digest(
        salt=salt,
        action="account.change_email",
        account="chirp:president",
        params={"email": DBA_EMAIL},
        justification="CASE-2017",
        policy_version=row.policy_version,
        requester="e-3001",
        break_glass=False,
        reverts=None,
    )
    _tamper(
        api,
        "UPDATE requests SET params = :params, digest = :digest, salt = :salt WHERE id = :id",
        params=json.dumps({"email": DBA_EMAIL}),
        digest=forged,
        salt=salt,
        id=view["id"],
    )
    _tamper(
        api,
        "UPDATE reviews SET digest = :digest WHERE request_id = :id",
        digest=forged,
        id=view["id"],
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "params", "digest")
    _untouched(api)


def test_a_salted_request_cannot_be_passed_off_as_an_unsalted_one(api: Api) -> None:
    """The DBA removes the salt and writes the unsalted (version 2) digest of their params, as
    requests from before salts have: the submitted event says the request is version 3, and it
    is checked as such."""
    view = _email_change(api)
    row = _row(api, view["id"])
    forged = v2_request_digest(
        action="account.change_email",
        account="chirp:president",
        params={"email": DBA_EMAIL},
        justification="CASE-2017",
        policy_version=row.policy_version,
        requester="e-3001",
        break_glass=False,
        reverts=None,
    )
    _tamper(
        api,
        "UPDATE requests SET params = :params, digest = :digest, salt = NULL WHERE id = :id",
        params=json.dumps({"email": DBA_EMAIL}),
        digest=forged,
        id=view["id"],
    )
    _tamper(
        api,
        "UPDATE reviews SET digest = :digest WHERE request_id = :id",
        digest=forged,
        id=view["id"],
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "params", "digest")
    _untouched(api)


def test_a_salt_changed_alone_is_caught(api: Api) -> None:
    """Only the salt changes (the params are the approved ones): the recomputed digest is no
    longer the submitted one, so the store was altered and nothing runs."""
    view = _email_change(api)
    _tamper(api, "UPDATE requests SET salt = :salt WHERE id = :id", salt="f" * 64, id=view["id"])
    _when_due(api, view["id"])
    _stopped(api, view["id"], "params")
    _untouched(api)


def test_a_review_whose_digest_was_rewritten_does_not_count(api: Api) -> None:
    """A review row that no longer carries the digest its reviewer signed: the store was
    altered, so nothing runs (even though the request itself is intact)."""
    view = _email_change(api)
    _tamper(
        api,
        "UPDATE reviews SET digest = :digest WHERE request_id = :id AND reviewer_id = 'e-3003'",
        digest="f" * 64,
        id=view["id"],
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "e-3003", "do not carry the submitted digest")
    _untouched(api)


@pytest.mark.parametrize("rewrite_digest", [False, True], ids=["params", "params-and-digest"])
def test_a_review_of_a_tampered_request_is_refused_and_the_request_cancelled(
    api: Api, rewrite_digest: bool
) -> None:
    """The DBA edits a pending request before the reviews (and, the second time, rewrites its
    digest so that what reviewers are shown is consistent): the first review is refused, the
    request cancelled, and no review is recorded."""
    view = api.submitted(
        "e-3001",
        action="account.change_email",
        account="chirp:president",
        params={"email": APPROVED_EMAIL},
        justification="CASE-2017",
    )
    sets = "params = :params" + (", digest = :digest" if rewrite_digest else "")
    _tamper(
        api,
        f"UPDATE requests SET {sets} WHERE id = :id",
        params=json.dumps({"email": DBA_EMAIL}),
        digest="e" * 64,
        id=view["id"],
    )
    shown = api.show("e-3002", view["id"])
    response = api.review("e-3002", view["id"], digest=shown["digest"], step_up=True)
    assert_problem(response, 409, "conflict")
    assert "your review was not recorded" in response.json()["detail"]
    after = _stopped(api, view["id"], "params")
    assert after["reviews"] == []
    assert _audit_kinds(api, view["id"]) == ["request.submitted", "request.cancelled"]
    _untouched(api)


def test_a_tampered_request_left_executing_is_not_reconciled(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies during the platform call (the platform never applied it); the DBA then
    points the request elsewhere. Reconciliation asks the platform nothing about the altered
    order: the request fails for a person to check, with a high alert."""
    view = _approved(api, "account.suspend", "chirp:chirp")
    chirp = api.world.services.connectors["chirp"]

    def dies(order: object) -> None:
        raise SystemExit("killed during the platform call")

    def must_not_ask(order: object) -> None:
        raise AssertionError("the platform was asked about an altered order")

    monkeypatch.setattr(chirp, "execute", dies)
    as_remote(monkeypatch, chirp)
    with pytest.raises(SystemExit):
        operations.execute(api.world.services, view["id"], worker="doomed")
    assert api.show("e-4001", view["id"])["state"] == "executing"
    _tamper(
        api, "UPDATE requests SET account_ref = 'chirp:president' WHERE id = :id", id=view["id"]
    )
    monkeypatch.setattr(chirp, "reconcile", must_not_ask)
    api.world.clock.advance(seconds=api.world.services.execution_lease.total_seconds() + 5)
    assert view["id"] in worker.run_once(api.world.services).reconciled
    shown = api.show("e-4001", view["id"])
    assert shown["state"] == "failed"
    assert "account_ref" in shown["reason"]
    assert "check the platform by hand" in shown["reason"]
    assert len(_high_alerts(api, view["id"])) == 1
    _untouched(api)


def test_an_executed_request_altered_afterwards_cannot_be_undone_elsewhere(api: Api) -> None:
    """The deactivation of chirp:chirp ran; the DBA points it at the newsdesk, so that its undo
    (a reactivation) would act there. The undo is refused and security alerted."""
    view = _deactivation(api)
    api.world.clock.advance(minutes=11)
    assert view["id"] in worker.run_once(api.world.services).executed
    _tamper(api, "UPDATE requests SET account_ref = 'chirp:newsdesk' WHERE id = :id", id=view["id"])
    response = api.post("e-3001", f"/v1/requests/{view['id']}/undo", {"justification": "CASE-1"})
    assert_problem(response, 409, "conflict")
    assert "account_ref" in response.json()["detail"]
    assert len(_high_alerts(api, view["id"])) == 1
    assert api.show("e-3001", view["id"])["state"] == "executed"
    with api.world.services.database.transaction() as session:
        assert (
            session.scalars(select(RequestRow.id).where(RequestRow.reverts_id.is_not(None))).all()
            == []
        )


def test_undo_params_rewritten_after_execution_are_not_used(api: Api) -> None:
    """The president's email change ran; foureyes kept the previous address for its undo. The
    DBA replaces it with their own, so that whoever undoes the change (the values filled in
    are private: nobody sees them) would hand the account over. The undo is refused, since
    the execution's event vouches for other values, and security is alerted."""
    view = _email_change(api)
    api.world.clock.advance(minutes=11)
    assert view["id"] in worker.run_once(api.world.services).executed
    assert api.world.chirp("president")["email"] == APPROVED_EMAIL
    _tamper(
        api,
        "UPDATE requests SET undo_params = :undo WHERE id = :id",
        undo=json.dumps({"email": DBA_EMAIL}),
        id=view["id"],
    )
    response = api.post("e-3001", f"/v1/requests/{view['id']}/undo", {"justification": "CASE-1"})
    assert_problem(response, 409, "conflict")
    assert "undo params" in response.json()["detail"]
    assert len(_high_alerts(api, view["id"])) == 1
    assert api.world.chirp("president")["email"] == APPROVED_EMAIL
    with api.world.services.database.transaction() as session:
        undos = select(RequestRow.id).where(RequestRow.reverts_id.is_not(None))
        assert session.scalars(undos).all() == []


# --- the triggers: the same edits, without dropping them, are refused by the store ------------


@pytest.mark.parametrize(
    ("table", "sets", "message"),
    [
        (
            "requests",
            'params = \'{"email": "x@evil.example"}\'',
            "what a request asks for is immutable",
        ),
        ("requests", "account_ref = 'chirp:alice'", "what a request asks for is immutable"),
        ("requests", "digest = 'ffff'", "what a request asks for is immutable"),
        ("requests", "requester_id = 'e-9001'", "what a request asks for is immutable"),
        ("reviews", "digest = 'ffff'", "reviews are immutable"),
    ],
)
def test_the_store_refuses_edits_to_what_was_approved(
    api: Api, table: str, sets: str, message: str
) -> None:
    view = _email_change(api)
    column = "id" if table == "requests" else "request_id"
    with pytest.raises(IntegrityError, match=message):  # noqa: SIM117
        with api.world.services.database.engine.begin() as connection:
            connection.execute(
                text(f"UPDATE {table} SET {sets} WHERE {column} = :id"), {"id": view["id"]}
            )
    # Nothing changed, and the request runs as approved.
    assert api.show("e-4001", view["id"])["digest"] == view["digest"]
    api.world.clock.advance(minutes=11)
    assert worker.run_once(api.world.services).executed == [view["id"]]
    assert api.world.chirp("president")["email"] == APPROVED_EMAIL
    assert _high_alerts(api, view["id"]) == []


def test_a_post_review_of_an_altered_break_glass_is_refused(api: Api) -> None:
    """Tomas breaks the glass on the president's suspension (carried out at once); the DBA then
    rewrites its justification before the colleagues sign it off. The sign-off is refused,
    nothing is recorded for it, and security is alerted."""
    view = api.submitted(
        "e-3001",
        action="account.suspend",
        account="chirp:president",
        break_glass=True,
        justification="INC-1",
    )
    assert view["state"] == "executed"
    _tamper(api, "UPDATE requests SET justification = 'INC-2' WHERE id = :id", id=view["id"])
    response = api.post(
        "e-3002",
        f"/v1/requests/{view['id']}/post-reviews",
        {"decision": "approve", "digest": view["digest"]},
    )
    assert_problem(response, 409, "conflict")
    assert "justification" in response.json()["detail"]
    assert len(_high_alerts(api, view["id"])) == 1
    assert api.show("e-4001", view["id"])["reviews"] == []


def test_the_digest_covers_who_asked_break_glass_and_the_request_undone(api: Api) -> None:
    """What reviewers sign (and a step-up key signs) binds the requester, break-glass and the
    request an undo reverts, besides the action, account, params, reason and policy; and the
    request's salt (docs/digests.md)."""
    view = _pending_suspension(api)
    fields: dict[str, Any] = {
        "salt": _row(api, view["id"]).salt,
        "action": "account.suspend",
        "account": "chirp:president",
        "params": {},
        "justification": None,
        "policy_version": _row(api, view["id"]).policy_version,
        "requester": "e-3001",
        "break_glass": False,
        "reverts": None,
    }
    assert request_digest(**fields) == view["digest"]
    others = (
        ("requester", "e-9001"),
        ("break_glass", True),
        ("reverts", "r-1"),
        ("salt", "0" * 64),
    )
    for name, other in others:
        assert request_digest(**{**fields, name: other}) != view["digest"]


# --- what the log last recorded stands: a deleted veto, a state flipped back, a delay cut ------
#
# The DBA cannot forge an event, so every review the log recorded must still have its row, the
# row's state must be the one the request's last state-change event recorded, and a scheduled
# (or retried) request may not run before the time its events set.


def _vetoed_by_sam(api: Api) -> dict[str, Any]:
    """Kim asks to suspend the president (two trust & safety approvals); Sam denies it."""
    view = api.submitted("c-1001", action="account.suspend", account="chirp:president")
    assert view["state"] == "pending"
    response = api.review("e-3003", view["id"], "deny", digest=view["digest"], step_up=True)
    assert response.status_code == 200, response.text
    shown = api.show("c-1001", view["id"])
    assert (shown["state"], shown["reason"]) == ("denied", "vetoed by e-3003")
    return shown


_UNDO_THE_VETO = {
    "deleted": "DELETE FROM reviews WHERE request_id = :id",
    "turned-into-an-approval": "UPDATE reviews SET decision = 'approve' WHERE request_id = :id",
}


@pytest.mark.parametrize("veto", list(_UNDO_THE_VETO), ids=list(_UNDO_THE_VETO))
def test_a_deleted_veto_does_not_let_later_approvals_through(api: Api, veto: str) -> None:
    """The verified attack: Sam's veto is deleted (or rewritten as an approval) and the request
    set back to `pending`; Tomas and Mei then approve through the API and the worker passes.
    Tomas's approval is refused (the log says denied, and has Sam's deny that the store lost),
    the request is cancelled as tampered with, and nothing reaches the platform."""
    view = _vetoed_by_sam(api)
    _tamper(api, _UNDO_THE_VETO[veto], id=view["id"])
    _tamper(
        api, "UPDATE requests SET state = 'pending', reason = NULL WHERE id = :id", id=view["id"]
    )
    response = api.review("e-3001", view["id"], digest=view["digest"], step_up=True)
    assert_problem(response, 409, "conflict")
    detail = response.json()["detail"]
    assert "your review was not recorded" in detail
    assert "its audit events say it is denied" in detail
    # Mei's comes too late: the request is cancelled (and no longer hers to see).
    response = api.review("e-3002", view["id"], digest=view["digest"], step_up=True)
    assert response.status_code in (404, 409), response.text
    _run_worker_and_show(api, view["id"])
    shown = _stopped(api, view["id"], "its state is pending", "e-3003 (deny)")
    assert [r["reviewer"] for r in shown["reviews"]] in ([], ["e-3003"])
    assert _audit_kinds(api, view["id"]) == [
        "request.submitted",
        "review.recorded",
        "request.vetoed",
        "request.cancelled",
    ]
    _untouched(api)


def test_a_deleted_veto_with_the_request_set_to_approved_is_not_carried_out(api: Api) -> None:
    """The same, without waiting for approvals: the veto deleted and the request `approved`."""
    view = _vetoed_by_sam(api)
    _tamper(api, "DELETE FROM reviews WHERE request_id = :id", id=view["id"])
    _tamper(api, "UPDATE requests SET state = 'approved' WHERE id = :id", id=view["id"])
    _run_worker_and_show(api, view["id"])
    _stopped(api, view["id"], "its state is approved, but its audit events say it is denied")
    _untouched(api)


def test_a_deleted_approval_is_caught_at_the_next_review(api: Api) -> None:
    """Mei approved the president's email change; the DBA deletes her review (say, to let a
    stand-in approve in her place). Sam's review is refused, naming hers as missing."""
    view = api.submitted(
        "e-3001",
        action="account.change_email",
        account="chirp:president",
        params={"email": APPROVED_EMAIL},
        justification="CASE-2017",
    )
    assert api.review("e-3002", view["id"], digest=view["digest"], step_up=True).status_code == 200
    _tamper(api, "DELETE FROM reviews WHERE request_id = :id", id=view["id"])
    response = api.review("e-3003", view["id"], digest=view["digest"], step_up=True)
    assert_problem(response, 409, "conflict")
    _stopped(api, view["id"], "e-3002 (approve) in the audit log are missing from the store")
    _untouched(api)


def test_a_deleted_approval_is_caught_at_execution(api: Api) -> None:
    """The email change is scheduled; the DBA deletes Ines's approval and, so that the policy
    is still met, forges nothing: the re-check at execution names the missing review as
    tampering (not merely "an approval is missing")."""
    view = _email_change(api)
    _tamper(
        api, "DELETE FROM reviews WHERE request_id = :id AND reviewer_id = 'e-4001'", id=view["id"]
    )
    _when_due(api, view["id"])
    _stopped(api, view["id"], "e-4001 (approve) in the audit log are missing from the store")
    _untouched(api)


def _cancelled(api: Api) -> dict[str, Any]:
    view = _pending_suspension(api)
    response = api.post("e-3001", f"/v1/requests/{view['id']}/cancel", {"reason": "not needed"})
    assert response.status_code == 200, response.text
    return view


def _expired(api: Api) -> dict[str, Any]:
    view = _pending_suspension(api)
    api.world.clock.advance(hours=25)
    assert view["id"] in worker.run_once(api.world.services).expired
    return view


def _denied(api: Api) -> dict[str, Any]:
    view = _pending_suspension(api)
    assert api.review("e-3003", view["id"], "deny", step_up=True).status_code == 200
    return view


_FINISHED = {"cancelled": _cancelled, "expired": _expired, "denied": _denied}


@pytest.mark.parametrize("to", ["pending", "approved"])
@pytest.mark.parametrize("was", list(_FINISHED))
def test_a_finished_request_set_back_to_open_is_not_acted_on(api: Api, was: str, to: str) -> None:
    """A cancelled, expired or denied suspension of the president is set back to `pending`
    (then Mei's approval is refused) or `approved` (then the worker refuses it): the log says
    it is finished. It is cancelled as tampered with, with a high alert."""
    view = _FINISHED[was](api)
    assert api.show("e-4001", view["id"])["state"] == was
    _tamper(api, "UPDATE requests SET state = :to WHERE id = :id", to=to, id=view["id"])
    if to == "pending":
        response = api.review("e-3002", view["id"], digest=view["digest"], step_up=True)
        assert_problem(response, 409, "conflict")
    else:
        _run_worker_and_show(api, view["id"])
    _stopped(api, view["id"], f"its state is {to}, but its audit events say it is {was}")
    _untouched(api)


def test_an_executed_request_set_back_to_approved_is_not_carried_out_again(api: Api) -> None:
    """The deactivation of chirp:chirp ran and was undone by hand on the platform; the DBA sets
    the request back to `approved` so that the worker deactivates the account again."""
    view = _deactivation(api)
    api.world.clock.advance(minutes=11)
    assert view["id"] in worker.run_once(api.world.services).executed
    _tamper(api, "UPDATE requests SET state = 'approved' WHERE id = :id", id=view["id"])
    _run_worker_and_show(api, view["id"])
    _stopped(api, view["id"], "its state is approved, but its audit events say it is executed")
    with api.world.services.database.transaction() as session:
        applied = session.scalars(select(ChirpAppliedRow.idempotency_key)).all()
    assert applied == [view["id"]]


def test_a_delay_cut_short_in_the_database_is_caught(api: Api) -> None:
    """The approved email change waits 10 minutes in which anyone eligible may still cancel it;
    the DBA moves `not_before` to now. The worker passes a minute later: the change is not
    made, and the request is cancelled as tampered with."""
    view = _email_change(api)
    _tamper(
        api,
        "UPDATE requests SET not_before = :now WHERE id = :id",
        now=api.world.clock.now,
        id=view["id"],
    )
    api.world.clock.advance(minutes=1)
    _run_worker_and_show(api, view["id"])
    _stopped(api, view["id"], "but its audit events say not before")
    _untouched(api)


def test_a_delay_left_alone_runs_on_time(api: Api) -> None:
    """The comparison is exact, not a guess: untouched, the change runs once the delay is over,
    on both stores (each keeps times to the microsecond), with no alert."""
    view = _email_change(api)
    api.world.clock.now = _row(api, view["id"]).not_before or api.world.clock.now
    assert worker.run_once(api.world.services).executed == [view["id"]]
    assert _high_alerts(api, view["id"]) == []


def test_a_retry_brought_forward_in_the_database_is_caught(api: Api) -> None:
    """The platform failed transiently; the retry waits its back-off. The DBA moves it to an
    hour ago: the worker refuses it."""
    view = _approved(api, "account.suspend", "chirp:chirp")
    chirp = api.world.services.connectors["chirp"]
    chirp.inject_failures(1)  # type: ignore[attr-defined]
    worker.run_once(api.world.services)
    assert api.show("e-4001", view["id"])["state"] == "approved"
    _tamper(
        api,
        "UPDATE requests SET not_before = :then WHERE id = :id",
        then=api.world.clock.now - timedelta(hours=1),
        id=view["id"],
    )
    _run_worker_and_show(api, view["id"])
    _stopped(api, view["id"], "but its audit events say not before")
    _untouched(api)


# An allow rule with a delay: the request is scheduled at submission, with no review at all.
ALLOWED_AFTER_AN_HOUR = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: suspend-after-an-hour
    effect: allow
    actions: [account.suspend]
    when: '"trust-safety" in staff.groups'
    delay: 1h
"""


@pytest.mark.parametrize("cut", [False, True], ids=["left-alone", "cut-short"])
def test_a_delay_set_at_submission_cannot_be_cut_short(database: Database, cut: bool) -> None:
    """Scheduled when submitted (its event says when: the submission's time plus the rule's
    delay): untouched, the worker suspends the account the moment the hour is over; with
    `not_before` moved to now by the DBA, it refuses a minute later, and security is told."""
    world = make_world(database, ALLOWED_AFTER_AN_HOUR)
    request_id = operations.submit(
        world.services, world.actor("e-3001"), Submission("account.suspend", "chirp:alice")
    )
    assert operations.show(world.services, request_id)["state"] == "scheduled"
    if cut:
        tamper(
            database,
            "UPDATE requests SET not_before = :now WHERE id = :id",
            now=world.clock.now,
            id=request_id,
        )
        world.clock.advance(minutes=1)
    else:
        world.clock.advance(hours=1)
    executed = worker.run_once(world.services).executed
    view = operations.show(world.services, request_id)
    with database.transaction() as session:
        alerts = session.scalars(
            select(AlertRow.summary).where(AlertRow.detector == integrity.DETECTOR)
        ).all()
    if not cut:
        assert (executed, view["state"], alerts) == ([request_id], "executed", [])
        return
    assert (executed, view["state"]) == ([], "cancelled")
    assert "but its audit events say not before" in view["reason"]
    assert len(alerts) == 1
    assert world.chirp("alice")["status"] == "active"
