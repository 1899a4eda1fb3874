"""A database administrator edits the columns of `requests` and `reviews` that decisions read
and that the log did not vouch for (plain SQL, SQLite and PostgreSQL; `tests.dba`):

- the deadlines, to keep a request alive past its time or to hide a break-glass that was not
  signed off: `expires_at` pushed out (a pending request approved weeks later, a read carried
  out long after its approval lapsed) or brought forward (a request ended before its time), and
  `post_review_due` moved or cleared (the overdue flag never raised). The log implies both
  (`integrity.Trail.deadlines`: the submission's time plus its decision's windows, plus the
  delay an approval recorded): every review, execution and pass of the worker that acts on
  them compares;
- the account's attributes a request stores for the re-decisions before execution
  (`account_snapshot`), now committed to in `request.submitted` like the params;
- a review's step-up evidence, which says whether an approval still counts once the credential
  that confirmed it is revoked.

Each difference is tampering: the request is cancelled with the reason and a high
`request_tampered` alert (an executed break-glass keeps its state and gets its deadline back,
so it is still flagged on time)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, EventRow, RequestRow
from foureyes.workflow import integrity, operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem
from tests.dba import tamper
from tests.worlds import IMPERSONATION_POLICY, make_world

TOMAS, MEI, SAM, INES, JO = "e-3001", "e-3002", "e-3003", "e-4001", "e-9001"


def _row(database: Database, request_id: str) -> RequestRow:
    with database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def _set(database: Database, request_id: str, **columns: datetime | None) -> None:
    sets = ", ".join(f"{name} = :{name}" for name in columns)
    changed = tamper(
        database, f"UPDATE requests SET {sets} WHERE id = :id", id=request_id, **columns
    )
    assert changed == 1


def _tampered_alerts(database: Database, request_id: str) -> list[AlertRow]:
    with database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.request_id == request_id, AlertRow.detector == integrity.DETECTOR
                )
            )
        )


def _kinds(database: Database, request_id: str) -> list[str]:
    with database.transaction() as session:
        bodies = session.scalars(
            select(EventRow.body).where(EventRow.request_id == request_id).order_by(EventRow.seq)
        )
        return [json.loads(body)["kind"] for body in bodies]


def _one_high_alert(database: Database, request_id: str, *named: str) -> AlertRow:
    [alert] = _tampered_alerts(database, request_id)
    assert alert.severity == "high"
    for part in named:
        assert part in alert.summary, alert.summary
    return alert


# --- expires_at ------------------------------------------------------------------------------


def _vit_email_change(api: Api) -> dict[str, Any]:
    """Tomas asks to change the president's email: two trust & safety and one security
    approval, within 4 hours (`vit-significant-changes`)."""
    view = api.submitted(
        TOMAS,
        action="account.change_email",
        account="chirp:president",
        params={"email": "new-president@chirp.example"},
        justification="CASE-2017",
    )
    assert view["state"] == "pending"
    return view


def test_an_expiry_pushed_out_does_not_let_a_pending_request_be_approved_weeks_later(
    api: Api,
) -> None:
    """The DBA moves the pending email change's `expires_at` a month out, so that the worker
    never expires it; two days later the approvals come in. The first is refused, the request
    is cancelled naming the two deadlines, security is alerted, the email is untouched."""
    database = api.world.services.database
    view = _vit_email_change(api)
    logged = _row(database, view["id"]).expires_at
    assert logged == api.world.clock.now + timedelta(hours=4)
    _set(database, view["id"], expires_at=api.world.clock.now + timedelta(days=30))
    api.world.clock.advance(days=2)
    assert view["id"] not in worker.run_once(api.world.services).expired  # the column hides it

    response = api.review(MEI, view["id"], digest=view["digest"], step_up=True)
    detail = assert_problem(response, 409, "conflict")["detail"]
    assert "your review was not recorded" in detail
    assert f"but its audit events say at {logged.isoformat()}" in detail
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert shown["reviews"] == []
    _one_high_alert(database, view["id"], "it expires at")
    assert _kinds(database, view["id"]) == ["request.submitted", "request.cancelled"]
    assert api.world.chirp("president")["email"] == "president@mail.example"


def test_an_expiry_brought_forward_does_not_expire_the_request_early(api: Api) -> None:
    """The DBA moves `expires_at` to a minute ago, so that the worker ends a request colleagues
    are about to approve: the worker finds the deadline is not the log's and cancels the
    request as tampered with (not `expired`), with the alert."""
    database = api.world.services.database
    view = _vit_email_change(api)
    _set(database, view["id"], expires_at=api.world.clock.now - timedelta(minutes=1))
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.expired
    assert view["id"] in tick.cancelled
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert "re-check at expiry failed: it expires at" in shown["reason"]
    _one_high_alert(database, view["id"], "it expires at")


def test_an_untouched_expiry_still_expires_on_time(api: Api) -> None:
    """The comparison is exact: left alone, the request expires at the logged deadline, with no
    alert, on both stores."""
    database = api.world.services.database
    view = _vit_email_change(api)
    api.world.clock.now = _row(database, view["id"]).expires_at or api.world.clock.now
    assert worker.run_once(api.world.services).expired == [view["id"]]
    assert _tampered_alerts(database, view["id"]) == []


def test_an_approval_that_starts_a_delay_moves_the_logged_expiry_too(api: Api) -> None:
    """A scheduled change keeps its whole window after the delay (review adds the delay to
    `expires_at`): the log implies the same (the approval's `not_before`), so carrying it out
    when due is not taken for tampering, and a DBA's extra hour is."""
    database = api.world.services.database
    view = _vit_email_change(api)
    for reviewer in (MEI, SAM, INES):
        assert api.review(reviewer, view["id"], step_up=True).status_code == 200
    row = _row(database, view["id"])
    assert row.state == "scheduled"
    assert row.expires_at == api.world.clock.now + timedelta(hours=4, minutes=10)
    found = _trail(database, view["id"])
    assert found.deadline_problem(row) is None
    _set(database, view["id"], expires_at=(row.expires_at or row.created_at) + timedelta(hours=1))
    api.world.clock.advance(minutes=11)
    assert view["id"] not in worker.run_once(api.world.services).executed
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert "it expires at" in shown["reason"]
    assert api.world.chirp("president")["email"] == "president@mail.example"


def _trail(database: Database, request_id: str) -> integrity.Trail:
    with database.transaction() as session:
        return integrity.trail(session, request_id)


def test_a_read_whose_expiry_was_pushed_out_is_not_carried_out_late(database: Database) -> None:
    """An approved `login_as` waits for its requester for 4 hours. The DBA gives it a month;
    Tomas asks for the session token a day later: refused, cancelled, no session opened."""
    world = make_world(database, IMPERSONATION_POLICY)
    services = world.services
    request_id = operations.submit(
        services,
        world.actor(TOMAS),
        Submission("account.login_as", "chirp:alice", {}, justification="CASE-77"),
    )
    assert world.review(INES, request_id, step_up=False) == "approved"
    _set(database, request_id, expires_at=world.clock.now + timedelta(days=30))
    world.clock.advance(days=1)
    assert request_id not in worker.run_once(services).expired
    outcome = operations.execute(services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state.value == "cancelled"
    assert outcome.data is None
    assert outcome.reason is not None
    assert "it expires at" in outcome.reason
    assert operations.show(services, request_id)["state"] == "cancelled"
    _one_high_alert(database, request_id, "it expires at")


# --- post_review_due --------------------------------------------------------------------------


def _broken_glass(api: Api) -> dict[str, Any]:
    """Tomas breaks the glass on the president's suspension: carried out at once; two trust &
    safety colleagues must sign it off within 24 hours (`vit-suspension`)."""
    view = api.submitted(
        TOMAS,
        action="account.suspend",
        account="chirp:president",
        break_glass=True,
        justification="INC-1",
    )
    assert view["state"] == "executed"
    return view


@pytest.mark.parametrize("moved", ["pushed-out", "cleared"])
def test_a_post_review_deadline_moved_or_cleared_is_put_back_and_flagged_on_time(
    api: Api, moved: str
) -> None:
    """The DBA pushes the break-glass's `post_review_due` a year out (or clears it, as the
    worker does once it has flagged it), so that nobody hears it was never signed off. The
    worker's next pass finds the deadline is not the log's: a high alert, and the deadline put
    back; when the 24 hours are over, the overdue flag is raised as if nothing had happened."""
    database = api.world.services.database
    view = _broken_glass(api)
    logged = _row(database, view["id"]).post_review_due
    assert logged == api.world.clock.now + timedelta(hours=24)
    _set(
        database,
        view["id"],
        post_review_due=None if moved == "cleared" else logged + timedelta(days=365),
    )
    tick = worker.run_once(api.world.services)
    assert tick.overdue == []
    _one_high_alert(database, view["id"], "its post-review is due")
    assert _row(database, view["id"]).post_review_due == logged
    assert api.show(INES, view["id"])["state"] == "executed"  # what was done stays done

    api.world.clock.advance(hours=24, seconds=1)
    assert worker.run_once(api.world.services).overdue == [view["id"]]
    assert "break_glass.overdue" in _kinds(database, view["id"])
    assert _row(database, view["id"]).post_review_due is None
    # Settled: neither a later pass nor a post-review takes the cleared deadline for tampering.
    assert worker.run_once(api.world.services).overdue == []
    response = api.post(
        MEI,
        f"/v1/requests/{view['id']}/post-reviews",
        {"decision": "approve", "digest": view["digest"]},
    )
    assert response.status_code == 200, response.text
    assert len(_tampered_alerts(database, view["id"])) == 1


def test_forged_sign_offs_do_not_spare_a_break_glass_its_overdue_flag(api: Api) -> None:
    """The DBA writes two approving post-review rows (Mei, Sam) so that the worker counts the
    break-glass as signed off. The worker counts the sign-offs the log recorded: none, so it
    is flagged overdue all the same; the post-review that comes later finds the forged rows."""
    database = api.world.services.database
    view = _broken_glass(api)
    for reviewer, identity in ((MEI, "mei"), (SAM, "sam")):
        tamper(
            database,
            "INSERT INTO reviews (request_id, reviewer_id, identity, kind, decision, comment, "
            "digest, step_up, created_at) VALUES (:id, :reviewer, :identity, 'post_review', "
            "'approve', '', :digest, NULL, :at)",
            id=view["id"],
            reviewer=reviewer,
            identity=identity,
            digest=view["digest"],
            at=api.world.clock.now,
        )
    api.world.clock.advance(hours=24, seconds=1)
    assert worker.run_once(api.world.services).overdue == [view["id"]]
    with database.transaction() as session:
        [body] = session.scalars(
            select(EventRow.body).where(
                EventRow.request_id == view["id"], EventRow.kind == "break_glass.overdue"
            )
        )
    assert (json.loads(body)["needed"], json.loads(body)["signed_off"]) == (2, 0)
    response = api.post(
        JO,
        f"/v1/requests/{view['id']}/post-reviews",
        {"decision": "approve", "digest": view["digest"]},
    )
    detail = assert_problem(response, 409, "conflict")["detail"]
    assert "review(s) by e-3002, e-3003 have no audit event" in detail


def test_a_break_glass_signed_off_in_time_is_settled_without_a_flag(api: Api) -> None:
    """Left alone and signed off by two colleagues within the day: no overdue flag, no alert;
    the worker says it is settled (`break_glass.signed_off`) and clears the deadline."""
    database = api.world.services.database
    view = _broken_glass(api)
    for reviewer in (MEI, SAM):
        response = api.post(
            reviewer,
            f"/v1/requests/{view['id']}/post-reviews",
            {"decision": "approve", "digest": view["digest"]},
        )
        assert response.status_code == 200, response.text
    assert worker.run_once(api.world.services).overdue == []
    api.world.clock.advance(hours=24, seconds=1)
    assert worker.run_once(api.world.services).overdue == []
    kinds = _kinds(database, view["id"])
    assert "break_glass.signed_off" in kinds
    assert "break_glass.overdue" not in kinds
    assert _row(database, view["id"]).post_review_due is None
    assert _tampered_alerts(database, view["id"]) == []


# --- the account's stored attributes, and a review's step-up evidence ----------------------------


def test_an_account_snapshot_edited_while_pending_is_not_decided_on(api: Api) -> None:
    """Tomas asks to suspend chirp:chirp (VIT: two trust & safety approvals). The DBA rewrites
    the attributes the request stored of the account (60M followers to 10), so that the
    re-decisions before execution take it for a standard account that needs nobody's approval.
    The first action on it (a review by Ines, who oversees and sees every request) finds the
    snapshot is not what the log committed to: refused, the request cancelled naming the
    snapshot, security alerted."""
    database = api.world.services.database
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:chirp")
    assert view["state"] == "pending"
    changed = tamper(
        database,
        "UPDATE requests SET account_snapshot = :snapshot WHERE id = :id",
        snapshot=json.dumps({"followers": 10, "verified": False}),
        id=view["id"],
    )
    assert changed == 1
    response = api.review(INES, view["id"], digest=view["digest"], step_up=True)
    detail = assert_problem(response, 409, "conflict")["detail"]
    assert "differs from its request.submitted audit event in account_snapshot" in detail
    assert api.show(INES, view["id"])["state"] == "cancelled"
    _one_high_alert(database, view["id"], "account_snapshot")
    assert api.world.chirp("chirp")["status"] == "active"


def test_a_reviews_step_up_cleared_does_not_bring_back_a_revoked_keys_approval(api: Api) -> None:
    """Mei, Sam and Ines approve the president's email change with their keys; then Mei's key
    is revoked (stolen): her approval no longer counts, and the change would be cancelled when
    due. The DBA clears the step-up evidence on her review row, so that nothing names the
    revoked key and the approval counts again. The re-check at execution finds the row is not
    what the log recorded: cancelled as tampered with, the email untouched."""
    database = api.world.services.database
    view = _vit_email_change(api)
    for reviewer in (MEI, SAM, INES):
        assert api.review(reviewer, view["id"], step_up=True).status_code == 200
    assert api.show(INES, view["id"])["state"] == "scheduled"
    operations.revoke_key(api.world.services, api.world.key_ids[MEI], by=None)
    changed = tamper(
        database,
        "UPDATE reviews SET step_up = NULL WHERE request_id = :id AND reviewer_id = :mei",
        id=view["id"],
        mei=MEI,
    )
    assert changed == 1
    api.world.clock.advance(minutes=11)
    assert view["id"] not in worker.run_once(api.world.services).executed
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert f"review(s) by {MEI} do not carry the step-up" in shown["reason"]
    _one_high_alert(database, view["id"], "do not carry the step-up")
    assert api.world.chirp("president")["email"] == "president@mail.example"
