"""A database administrator (plain SQL with the runtime role, no signing key, no witness) goes
after the rows that say how far things have got: the detectors' cursor, the audit log's head,
and the log's tail. Each attack fails loudly: the detectors' cursor is believed only where the
log vouches for it, a moved head is a named 503 with nothing half-written, and a log its
witness shows was rolled back is acted on by no one (on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from foureyes import worker
from foureyes.audit.checkpoint import signer_from_file
from foureyes.audit.export import note_checkpoint
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.commands.audit import audit_app
from foureyes.core import logstate
from foureyes.detect import cursor
from foureyes.errors import LogRolledBack
from foureyes.store.tables import CheckpointRow, DetectorStateRow, EventRow, RequestRow, ReviewRow
from tests.api.conftest import Api, assert_problem
from tests.dba import dba, tamper

# --- helpers -----------------------------------------------------------------------------------


def _alerts(api: Api, detector: str) -> list[dict[str, Any]]:
    response = api.get("e-4001", "/v1/alerts", params={"detector": detector, "state": "all"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _alert_counts(api: Api) -> dict[str, int]:
    response = api.get("e-4001", "/v1/alerts", params={"state": "all", "limit": 200})
    counts: dict[str, int] = {}
    for item in response.json()["items"]:
        counts[item["detector"]] = counts.get(item["detector"], 0) + 1
    return counts


def _size(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return api.world.services.audit.size(session)


def _count(api: Api, table: Any) -> int:
    with api.world.services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _cursor(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        state = session.get(DetectorStateRow, cursor.STATE_ID)
        assert state is not None
        return state.cursor


def _suspension(api: Api, account: str = "chirp:president") -> dict[str, Any]:
    """Tomas asks to suspend a VIT account (`protected_touched` fires on it): pending."""
    view = api.submitted("e-3001", action="account.suspend", account=account)
    assert view["state"] == "pending"
    return view


def _health(api: Api) -> dict[str, Any]:
    response = api.client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- F7: the detectors' cursor ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["ahead-of-the-head", "to-the-head"])
def test_a_cursor_moved_forward_is_caught_and_the_skipped_events_are_looked_at(
    api: Api, where: str
) -> None:
    """The DBA moves the detectors' cursor past a request on the president that has not been
    looked at yet (beyond the log's end, or to its last event), so that `protected_touched`
    never fires while `/healthz` says ok. The cursor disagrees with the log's `detectors.read`
    record: `/healthz` says the detectors are degraded and why, the pass raises a high
    `detector_cursor_moved` alert, reads on from where the log says, and the skipped request
    is flagged after all. Once oversight acknowledges the alert, `/healthz` is ok again."""
    services = api.world.services
    worker.run_once(services)
    assert _health(api)["status"] == "ok"
    view = _suspension(api)
    target = (
        "cursor + 100000" if where == "ahead-of-the-head" else "(SELECT size - 1 FROM audit_head)"
    )
    assert tamper(services.database, f"UPDATE detector_state SET cursor = {target}") == 1

    health = _health(api)
    assert (health["status"], health["detectors"]) == ("degraded", "cursor-moved")
    assert any("moved outside foureyes" in reason for reason in health["reasons"])
    if where == "ahead-of-the-head":
        assert any("ahead of the log's head" in reason for reason in health["reasons"])

    worker.run_once(services)
    (moved,) = _alerts(api, cursor.DETECTOR)
    assert moved["severity"] == "high"
    assert "moved outside foureyes" in moved["summary"]
    flagged = _alerts(api, "protected_touched")
    assert [a["request"] for a in flagged] == [view["id"]]  # looked at after all
    with services.database.transaction() as session:
        vouched = cursor.Vouched.read(session)
    assert _cursor(api) == vouched.cursor

    # Still degraded (the row is right again, the alert is not read yet) until acknowledged.
    assert _health(api)["detectors"] == "cursor-moved"
    acked = api.post("e-4001", f"/v1/alerts/{moved['id']}/ack", {"comment": "DBA-1 asked"})
    assert acked.status_code == 200, acked.text
    assert _health(api) == {
        "status": "ok",
        "database": "ok",
        "policy_version": 1,
        "detectors": "ok",
        "checkpoints": "ok",
        "alerts": "ok",
        "platforms": {"chirp": "ok"},
    }


@pytest.mark.parametrize("how", ["moved-back", "row-deleted"])
def test_a_cursor_moved_back_is_caught_and_repeats_no_alert(api: Api, how: str) -> None:
    """The DBA sets the cursor back to the start (or deletes the row) so that every alert is
    raised again and buries the real ones. The pass notices the row is not where the log says,
    raises one `detector_cursor_moved` alert and reads on from the log's position: no other
    alert is repeated."""
    services = api.world.services
    _suspension(api)
    worker.run_once(services)
    before = _alert_counts(api)
    assert before.get("protected_touched") == 1
    sql = (
        "UPDATE detector_state SET cursor = 0"
        if how == "moved-back"
        else ("DELETE FROM detector_state")
    )
    assert tamper(services.database, sql) == 1
    assert _health(api)["detectors"] == "cursor-moved"

    worker.run_once(services)
    after = _alert_counts(api)
    assert after.pop(cursor.DETECTOR) == 1
    assert after == before
    with services.database.transaction() as session:
        assert _cursor(api) == cursor.Vouched.read(session).cursor


def test_events_read_again_raise_no_alert_twice(api: Api) -> None:
    """A DBA who also appends a forged `detectors.read` record (appending needs no key) can
    make the pass read old events again; the forgery stays in the log for good, and an alert
    is keyed by detector, event and whom it is about, so none is raised twice."""
    services = api.world.services
    _suspension(api)
    worker.run_once(services)
    before = _alert_counts(api)
    assert before.get("protected_touched") == 1
    with services.database.transaction() as session:  # what the runtime role may do: append
        forged = services.audit.append(
            session,
            kind=cursor.READ,
            actor=None,
            account_ref=cursor.ACCOUNT,
            request_id=None,
            payload={"cursor": 0, "from": 0},
        )
    tamper(services.database, "UPDATE detector_state SET cursor = 0")

    worker.run_once(services)
    assert _alert_counts(api) == before
    listed = api.get("e-4001", "/v1/audit/events", params={"account": cursor.ACCOUNT}).json()
    assert forged.seq in [event["seq"] for event in listed["items"]]


def test_a_quiet_log_does_not_grow_with_the_detectors_record(api: Api) -> None:
    """The cursor's record costs one event per pass that read something, none on a quiet log:
    a pass that finds only its own record appends nothing and leaves the row where it is."""
    services = api.world.services
    _suspension(api)
    worker.run_once(services)
    worker.run_once(services)  # reads the first pass's record only
    size, position = _size(api), _cursor(api)
    for _ in range(3):
        worker.run_once(services)
    assert (_size(api), _cursor(api)) == (size, position)
    assert _health(api)["status"] == "ok"


# --- F8: the log's head ---------------------------------------------------------------------------

HEAD_MOVES = {
    "moved-back": "UPDATE audit_head SET size = size - 3",
    "moved-forward": "UPDATE audit_head SET size = size + 5",
    "deleted": "DELETE FROM audit_head",
}


def _cli(api: Api, *args: str) -> Any:
    """`foureyes audit …` as the operator runs it on the host, against this store."""
    env = {
        "FOUREYES_DATA_DIR": str(api.settings.data_dir),
        "FOUREYES_DATABASE_URL": api.world.services.database.url,
    }
    return CliRunner().invoke(audit_app, list(args), env=env)


@pytest.mark.parametrize("move", list(HEAD_MOVES), ids=list(HEAD_MOVES))
def test_a_moved_head_is_a_named_503_and_nothing_is_half_written(api: Api, move: str) -> None:
    """The DBA moves `audit_head` (back, forward, or deletes it). Every change then answers the
    503 problem `log-head-altered` saying the log's head does not match the log, and leaves
    nothing behind (no request, no review, no event); `/healthz` answers the same problem, the
    worker carries nothing out, the CLI says so in one line and signs nothing. Put back, all
    works again, and the high `log_head_altered` alert that could not be written while the head
    was wrong is in the log."""
    services = api.world.services
    pending = _suspension(api)
    worker.run_once(services)
    requests, reviews, size = _count(api, RequestRow), _count(api, ReviewRow), _size(api)
    with services.database.transaction() as session:
        last = session.scalar(select(func.max(EventRow.seq)))
    checkpoints = _count(api, CheckpointRow)
    assert tamper(services.database, HEAD_MOVES[move]) == 1

    refused = api.submit("e-3001", action="account.suspend", account="chirp:chirp")
    body = assert_problem(refused, 503, "log-head-altered")
    assert "audit_head" in body["detail"]
    review = api.review("e-3002", pending["id"], digest=pending["digest"])
    assert_problem(review, 503, "log-head-altered")
    assert (_count(api, RequestRow), _count(api, ReviewRow)) == (requests, reviews)
    with services.database.transaction() as session:
        assert session.scalar(select(func.max(EventRow.seq))) == last  # nothing appended

    health = assert_problem(api.client.get("/healthz"), 503, "log-head-altered")
    assert "audit_head" in health["detail"]
    tick = worker.run_once(services)
    assert tick.held is not None
    assert "audit_head" in tick.held
    assert tick.executed == []

    signed = _cli(api, "checkpoint")
    assert signed.exit_code == 2, signed.output
    assert len(signed.output.strip().splitlines()) == 1
    assert signed.output.startswith("foureyes: the log's head")
    assert _count(api, CheckpointRow) == checkpoints
    verified = _cli(api, "verify", "--no-witness")
    assert verified.exit_code == 1, verified.output
    assert verified.output.strip().startswith("foureyes: TAMPERED: audit log")
    assert "head" in verified.output  # the head moved, or the rows it counts

    # The operator puts the head back (from `audit verify`'s diagnosis): everything works.
    with dba(services.database) as sql:
        sql.execute(text("DELETE FROM audit_head"))
        sql.execute(text("INSERT INTO audit_head (id, size) VALUES (1, :n)"), {"n": size})
    assert _health(api)["status"] == "ok"
    (alert,) = _alerts(api, logstate.HEAD_ALTERED)
    assert alert["severity"] == "high"
    assert "audit_head" in alert["summary"]
    assert api.submit("e-3001", action="account.suspend", account="chirp:chirp").status_code == 201


# --- F10: a witnessed rollback ------------------------------------------------------------------


class _Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _roll_back(api: Api, to: int) -> None:
    """The DBA drops the log's events from `to` on and removes every trace in the database."""
    with dba(api.world.services.database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= :n"), {"n": to})
        sql.execute(text("DELETE FROM audit_checkpoints WHERE size > :n"), {"n": to})
        sql.execute(text('DELETE FROM audit_nodes WHERE ("index" + 1) << level > :n'), {"n": to})
        sql.execute(text("UPDATE audit_head SET size = :n"), {"n": to})


def test_a_witnessed_rollback_fails_closed_until_the_operator_resolves_it(api: Api) -> None:
    """The DBA rolls the log back past a checkpoint the witness holds. `/healthz` says so
    (503 `log-rolled-back`, with the reason); submits and reviews answer the same problem and
    record nothing; the worker carries out nothing, not even a request approved before the
    rollback, and raises a high `log_rolled_back` alert. It lasts until the operator acts (here,
    having looked into it, by starting a new witness); a process started meanwhile finds it
    again."""
    services, settings = api.world.services, api.settings
    signer = signer_from_file(settings.signing_key_file)
    schedule = CheckpointSchedule(signer, settings.witness_dir, every=60, clock=_Ticks())
    approved = _suspension(api)
    for reviewer in ("e-3002", "e-3003"):  # recorded, not carried out (the API's would)
        api.world.review(reviewer, approved["id"], digest=approved["digest"])
    assert api.show("e-3001", approved["id"])["state"] in {"approved", "scheduled"}
    pending = _suspension(api, "chirp:chirp")
    kept = services.audit.checkpoint(services.database, signer, settings.witness_dir).size
    _suspension(api, "chirp:chirp")
    witnessed = services.audit.checkpoint(services.database, signer, settings.witness_dir).size
    assert witnessed > kept
    _roll_back(api, kept)

    health = assert_problem(api.client.get("/healthz"), 503, "log-rolled-back")
    assert "witness" in health["detail"]
    requests = _count(api, RequestRow)
    assert_problem(
        api.submit("e-3001", action="account.suspend", account="chirp:chirp"),
        503,
        "log-rolled-back",
    )
    assert_problem(
        api.review("e-3002", pending["id"], digest=pending["digest"]), 503, "log-rolled-back"
    )
    assert _count(api, RequestRow) == requests

    api.world.clock.advance(minutes=11)  # past any delay: the approved request is due
    tick = worker.run_once(services, checkpoints=schedule)
    assert tick.executed == []
    assert tick.held is not None
    assert "witness" in tick.held
    assert api.show("e-3001", approved["id"])["state"] in {"approved", "scheduled"}
    assert api.world.chirp("president")["status"] == "active"
    (alert,) = _alerts(api, logstate.ROLLED_BACK)
    assert alert["severity"] == "high"
    assert note_checkpoint((settings.witness_dir / "latest").read_bytes()).size == witnessed

    # A process started now (its own verdict, nothing stored) finds it at once.
    restarted = logstate.LogState(settings.witness_dir)
    services.log_state, before = restarted, services.log_state
    assert isinstance(logstate.check(services), LogRolledBack)
    services.log_state = before

    # The operator, having looked into it, keeps the old witness aside and starts a new one.
    shutil.move(settings.witness_dir, settings.witness_dir.with_name("witness-rolled-back"))
    settings.witness_dir.mkdir()
    assert _health(api)["status"] == "ok"
    assert worker.run_once(services, checkpoints=schedule).executed == [approved["id"]]
