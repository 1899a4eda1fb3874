"""A DBA who hides a request's events from the look-up by column (attack led7-F3/F4): the veto's
`review.recorded` and `request.vetoed` events get their `request_id` column cleared or
re-pointed (or their `kind` relabelled), the veto's review row is deleted and the request set
back to pending. The log's bodies still say whose events they are, and each process's index of
them (`foureyes.core.request_index`) finds them: the next approval is refused, the request
cancelled as altered, and nothing reaches the platform; a hidden review still makes its
reviewer a participant and stays in the timeline, marked."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.audit.export import AuditVerificationError
from foureyes.audit.verify import verify_log
from foureyes.core import request_index
from foureyes.errors import FoureyesError
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import execute, operations, undo
from foureyes.workflow.submit import Submission
from tests.adversarial.test_dba import (
    _cancelled,
    _high_alerts,
    _run_worker_and_show,
    _stopped,
    _tamper,
    _untouched,
    _vetoed_by_sam,
)
from tests.adversarial.test_dba_request_columns import _broken_glass
from tests.api.conftest import Api, assert_problem
from tests.dba import tamper
from tests.worlds import World

_VETO_KINDS = ("review.recorded", "request.vetoed")
# Ways to keep the veto's events from a look-up by the request and kind columns.
_HIDE = {
    "request-cleared": "UPDATE audit_events SET request_id = NULL WHERE seq = :seq",
    "request-re-pointed": "UPDATE audit_events SET request_id = :other WHERE seq = :seq",
    "kind-relabelled": "UPDATE audit_events SET kind = 'request.viewed' WHERE seq = :seq",
}


def _veto_seqs(api: Api, request_id: str) -> list[int]:
    with api.world.services.database.read() as session:
        return list(
            session.scalars(
                select(EventRow.seq).where(
                    EventRow.request_id == request_id, EventRow.kind.in_(_VETO_KINDS)
                )
            )
        )


def _hide_the_veto(api: Api, view: dict[str, Any], how: str) -> list[int]:
    other = api.submitted("c-1001", action="account.suspend", account="chirp:president")["id"]
    seqs = _veto_seqs(api, view["id"])
    assert len(seqs) == 2
    for seq in seqs:
        _tamper(api, _HIDE[how], seq=seq, other=other)
    _tamper(api, "DELETE FROM reviews WHERE request_id = :id", id=view["id"])
    _tamper(
        api, "UPDATE requests SET state = 'pending', reason = NULL WHERE id = :id", id=view["id"]
    )
    return seqs


def _fresh_process(api: Api) -> None:
    """As a server process started after the DBA's edit: no index yet."""
    request_index._INDEXES.clear()


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
@pytest.mark.parametrize("how", list(_HIDE), ids=list(_HIDE))
def test_a_hidden_veto_does_not_let_approvals_through(api: Api, how: str, fresh: bool) -> None:
    view = _vetoed_by_sam(api)
    seqs = _hide_the_veto(api, view, how)
    if fresh:
        _fresh_process(api)
    for reviewer in ("e-3001", "e-3002"):
        response = api.review(reviewer, view["id"], digest=view["digest"], step_up=True)
        assert response.status_code in (404, 409), response.text
        if response.status_code == 409:
            assert_problem(response, 409, "conflict")
    _run_worker_and_show(api, view["id"])
    shown = _stopped(api, view["id"], "not found under it in the store", str(seqs[0]))
    assert "e-3003 (deny)" in shown["reason"]
    assert "its audit events say it is denied" in shown["reason"]
    _untouched(api)


def test_a_hidden_veto_with_the_request_set_to_approved_is_not_carried_out(api: Api) -> None:
    view = _vetoed_by_sam(api)
    _hide_the_veto(api, view, "request-cleared")
    _tamper(api, "UPDATE requests SET state = 'approved' WHERE id = :id", id=view["id"])
    _fresh_process(api)
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.executed
    _stopped(api, view["id"], "not found under it in the store")
    _untouched(api)


def test_a_hidden_review_leaves_its_reviewer_a_participant(api: Api) -> None:
    """Attack led7-F4: Sam's veto hidden from the look-up by column; Sam still sees the
    request, and its timeline shows both events, marked."""
    view = _vetoed_by_sam(api)
    seqs = _veto_seqs(api, view["id"])
    for seq in seqs:
        _tamper(api, _HIDE["request-cleared"], seq=seq, other=None)
    _fresh_process(api)
    response = api.get("e-3003", f"/v1/requests/{view['id']}")
    assert response.status_code == 200, response.text
    timeline = response.json()["timeline"]
    hidden = [e for e in timeline if e["seq"] in seqs]
    assert [e["kind"] for e in hidden] == list(_VETO_KINDS)
    assert all("not found under this request" in e["altered"] for e in hidden)


# --- rows moved or deleted (attack hide-F1): a body not at its seq, a seq with no row ---------


def _swap(api: Api, a: int, b: int) -> None:
    """Swap two events' rows (columns and bodies untouched, each under the other's seq)."""
    for sql, params in (
        ("UPDATE audit_events SET seq = 999999999 WHERE seq = :a", {"a": a}),
        ("UPDATE audit_events SET seq = :a WHERE seq = :b", {"a": a, "b": b}),
        ("UPDATE audit_events SET seq = :b WHERE seq = 999999999", {"b": b}),
    ):
        _tamper(api, sql, **params)


def _set_pending(api: Api, request_id: str) -> None:
    tamper(api.world.services.database, "DELETE FROM reviews WHERE request_id = :id", id=request_id)
    _tamper(
        api, "UPDATE requests SET state = 'pending', reason = NULL WHERE id = :id", id=request_id
    )


def _approvals_refused(
    api: Api, view: dict[str, Any], *reviewers: str, cancelled: bool = True
) -> None:
    """Each approval refused (or the server unavailable: an append finds the log's stored
    subtrees do not hold the events the head counts), nothing carried out; where the request
    could still be cancelled, it was, naming the altered rows, with one high alert; and the
    log's verification names what was done to it."""
    for reviewer in reviewers:
        response = api.review(reviewer, view["id"], digest=view["digest"], step_up=True)
        assert response.status_code in (404, 409, 503), response.text
    worker.run_once(api.world.services)
    _untouched(api)
    with api.world.services.database.read() as session:
        row = session.get(RequestRow, view["id"])
        assert row is not None
        state, reason = row.state, row.reason or ""
    assert state in (("cancelled",) if cancelled else ("pending", "cancelled")), state
    if state == "cancelled":
        assert "rows moved, deleted or edited" in reason, reason
        assert len(_high_alerts(api, view["id"])) == 1
    with pytest.raises(AuditVerificationError):
        verify_log(api.world.services.database, [], workers=1)


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
@pytest.mark.parametrize("how", ["swapped", "deleted"])
def test_a_veto_whose_rows_were_moved_or_deleted_stops_the_request(
    api: Api, how: str, fresh: bool
) -> None:
    view = _vetoed_by_sam(api)
    first, second = _veto_seqs(api, view["id"])
    if how == "swapped":
        _swap(api, first, second)
    else:
        # A later event, so that the log's last row is still where its head says.
        api.submitted("c-1001", action="account.suspend", account="chirp:president")
        _tamper(api, "DELETE FROM audit_events WHERE seq IN (:a, :b)", a=first, b=second)
    _set_pending(api, view["id"])
    if fresh:
        _fresh_process(api)
    # Deleted rows: appends stop at once (503), as the stored subtrees no longer hold them.
    _approvals_refused(api, view, "e-3001", "e-3002", cancelled=how == "swapped")


def test_a_cancellation_swapped_with_a_later_event_stops_the_request(api: Api) -> None:
    view = _cancelled(api)
    with api.world.services.database.read() as session:
        end = session.scalar(
            select(EventRow.seq).where(
                EventRow.request_id == view["id"], EventRow.kind == "request.cancelled"
            )
        )
    assert end is not None
    api.submitted("c-1001", action="account.suspend", account="chirp:chirp")
    _swap(api, end, end + 1)
    _set_pending(api, view["id"])
    _fresh_process(api)
    for reviewer in ("e-3002", "e-3003"):
        response = api.review(reviewer, view["id"], digest=view["digest"], step_up=True)
        assert response.status_code in (404, 409), response.text
    assert api.world.chirp("president")["status"] == "active"
    assert api.show("e-4001", view["id"])["state"] == "cancelled"


# --- a break-glass settled by a relabelled column (attack hide-F3) ----------------------------


@pytest.mark.parametrize("which", ["one-of-its-own", "an-unrelated-event"])
def test_a_break_glass_settled_only_by_a_column_is_still_flagged_overdue(
    api: Api, which: str
) -> None:
    view = _broken_glass(api)
    with api.world.services.database.read() as session:
        if which == "one-of-its-own":
            seq = session.scalar(
                select(EventRow.seq).where(
                    EventRow.request_id == view["id"], EventRow.kind == "request.executing"
                )
            )
        else:
            seq = session.scalar(
                select(func.max(EventRow.seq)).where(EventRow.request_id.is_(None))
            )
    assert seq is not None
    _tamper(
        api,
        "UPDATE audit_events SET kind = 'break_glass.signed_off', request_id = :r WHERE seq = :s",
        s=seq,
        r=view["id"],
    )
    api.world.clock.advance(hours=24, seconds=1)
    assert view["id"] in worker.run_once(api.world.services).overdue
    assert view["id"] not in worker.run_once(api.world.services).overdue  # flagged once


# --- bodies that are not JSON (attack hide-F4): shown marked, never a 500 ---------------------


@pytest.mark.parametrize(
    "body", [b"\xff\x00not json", b'["request":1]', b'{"request":"X","kind":', b"[1,2,3]"]
)
def test_a_body_that_is_not_an_event_is_shown_marked_and_stops_the_request(
    api: Api, body: bytes
) -> None:
    view = _vetoed_by_sam(api)
    first, _ = _veto_seqs(api, view["id"])
    _tamper(api, "UPDATE audit_events SET body = :b WHERE seq = :s", b=body, s=first)
    _fresh_process(api)
    for path in (f"/v1/requests/{view['id']}", f"/v1/audit/events?request={view['id']}"):
        response = api.get("e-4001", path)
        assert response.status_code == 200, response.text
    timeline = api.show("e-4001", view["id"])["timeline"]
    (entry,) = [e for e in timeline if e["seq"] == first]
    assert "altered" in entry
    _set_pending(api, view["id"])
    _approvals_refused(api, view, "e-3001", "e-3002")


# --- the submitted event's column moved too (attack hide-F5) ---------------------------------


def test_a_review_hidden_with_its_requests_submission_still_counts_its_reviewer(
    api: Api,
) -> None:
    """With the index reaching back to the request (a running process), the submission is
    found by its body: Sam still sees the request he vetoed, and its timeline holds it all."""
    view = _vetoed_by_sam(api)
    with api.world.services.database.read() as session:
        seqs = list(session.scalars(select(EventRow.seq).where(EventRow.request_id == view["id"])))
    for seq in seqs:
        _tamper(api, "UPDATE audit_events SET request_id = NULL WHERE seq = :seq", seq=seq)
    response = api.get("e-3003", f"/v1/requests/{view['id']}")
    assert response.status_code == 200, response.text
    shown = [e["seq"] for e in response.json()["timeline"]]
    assert set(seqs) <= set(shown)


# --- later changes moved before the change an undo reverses (attack hide2-F1) -----------------


def _carried(world: World, request_id: str, *approvers: str) -> None:
    for approver in approvers:
        world.review(approver, request_id)
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        state = row.state
    if state == "approved":
        execute.execute(world.services, request_id)


def _suspension_undone_after_later_changes(world: World) -> str:
    """The president is suspended (two approvals); an undo of it is asked; meanwhile the
    suspension is lifted and a new one made, each carried out. Returns the undo (pending)."""

    def submitted(by: str, action: str, reason: str) -> str:
        return operations.submit(
            world.services,
            world.actor(by),
            Submission(action=action, account="chirp:president", justification=reason),
        )

    original = submitted("e-3001", "account.suspend", "CASE-1")
    _carried(world, original, "e-3002", "e-3003")
    undo_id = undo.undo(world.services, world.actor("e-3002"), original, "UNDO-1")
    _carried(world, submitted("e-3003", "account.unsuspend", "CASE-2"), "e-9001")
    _carried(world, submitted("e-3003", "account.suspend", "CASE-3"), "e-3001", "e-9001")
    assert world.chirp("president")["status"] == "suspended"
    return undo_id


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
def test_later_changes_moved_before_an_undone_change_do_not_let_the_undo_run(
    world: World, fresh: bool
) -> None:
    """The DBA swaps the rows of the later changes' executions with early, unrelated rows:
    read from the undone change on, no later change is seen, and the stale undo would lift
    the new suspension. The rows whose bodies are not the events at their seqs hold it."""
    undo_id = _suspension_undone_after_later_changes(world)
    database = world.services.database
    # A later event of another account, so that the last row the index read stays in place.
    operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission(action="account.suspend", account="chirp:chirp", justification="CASE-4"),
    )
    with database.read() as session:
        ends = list(
            session.scalars(
                select(EventRow.seq)
                .where(EventRow.kind == "request.executed")
                .order_by(EventRow.seq)
            )
        )[1:]
        early = list(
            session.scalars(
                select(EventRow.seq).where(EventRow.request_id.is_(None)).order_by(EventRow.seq)
            )
        )[1 : 1 + len(ends)]
        request_index.events(session, undo_id, 0)  # the index has read the log (running)
    for moved, partner in zip(ends, early, strict=True):
        for sql, params in (
            ("UPDATE audit_events SET seq = 999999999 WHERE seq = :a", {"a": partner}),
            ("UPDATE audit_events SET seq = :a WHERE seq = :b", {"a": partner, "b": moved}),
            ("UPDATE audit_events SET seq = :b WHERE seq = 999999999", {"b": moved}),
        ):
            tamper(database, sql, **params)
    if fresh:
        request_index._INDEXES.clear()
    with contextlib.suppress(FoureyesError):
        world.review("e-9001", undo_id)
    with contextlib.suppress(FoureyesError):
        execute.execute(world.services, undo_id)
    assert world.chirp("president")["status"] == "suspended"
    with database.read() as session:
        row = session.get(RequestRow, undo_id)
        assert row is not None
        assert row.state != "executed"


# --- a break-glass whose row no longer says so (attack hide2-F4) ------------------------------


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE requests SET break_glass = false WHERE id = :id",
        "UPDATE requests SET break_glass = false, post_review_due = NULL WHERE id = :id",
    ],
    ids=["flag", "flag-and-deadline"],
)
def test_a_break_glass_whose_row_flag_was_cleared_is_still_owed_its_post_review(
    api: Api, edit: str, fresh: bool
) -> None:
    view = _broken_glass(api)
    worker.run_once(api.world.services)  # the worker has looked at the log already
    _tamper(api, edit, id=view["id"])
    if fresh:
        _fresh_process(api)
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.overdue  # not due yet
    alerts = _high_alerts(api, view["id"])
    assert len(alerts) == 1
    assert "did not break the glass" in alerts[0].summary
    api.world.clock.advance(hours=24, seconds=1)
    assert view["id"] in worker.run_once(api.world.services).overdue
    assert view["id"] not in worker.run_once(api.world.services).overdue
    assert len(_high_alerts(api, view["id"])) == 1
