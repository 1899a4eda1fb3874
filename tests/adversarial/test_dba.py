"""A database administrator tries to get a request carried out without its approvals, by writing
to the store directly (plain SQL, on SQLite and PostgreSQL): foureyes re-checks at execution
and refuses, with the reason in the log, and the platform is never asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update

from foureyes.store.tables import RequestRow, ReviewRow
from foureyes.workflow import operations
from tests.api.conftest import Api


def _pending_suspension(api: Api) -> dict[str, Any]:
    """Tomas asks to suspend chirp:president: two trust & safety approvals needed."""
    view = api.submitted("e-3001", action="account.suspend", account="chirp:president")
    assert view["state"] == "pending"
    return view


def _run_worker_and_show(api: Api, request_id: str) -> dict[str, Any]:
    tick = operations.run_once(api.world.services)
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
    re-check at execution finds the approvals missing, and cancels it with that reason; the
    account is untouched, and the log shows the submission and the cancellation only."""
    view = _pending_suspension(api)
    _write_as_the_dba(api, view)
    shown = _run_worker_and_show(api, view["id"])
    assert shown["state"] == "cancelled"
    assert "2 more approval(s) needed" in shown["reason"]
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
