"""A database administrator with the runtime role's rights (INSERT/UPDATE/DELETE on the rows it
may touch, INSERT only on the audit tables; no signing key, no witness), second round: every
statement runs on a plain connection with foureyes' triggers in place, as the role could run
it, except where a test says it plays the database owner (`tests.dba`). On SQLite and PostgreSQL.

- Rows written in cannot starve a worker pass: each walks its whole backlog, and a row the log
  does not describe is named (`request_tampered`) and settled, never looked at again.
- No event outside the Merkle tree is read: the database refuses a negative seq, and one
  already there (written by the owner) is named by the head check and read by nothing.
- Requests and reviews cannot be deleted; a request missing when the detectors read its event
  is named.
- An alert row dated in the future silences nothing: the alert is raised, naming it.
- `/healthz` says the detectors are silent on every probe while they are, and a heartbeat dated
  in the future is reported and alerted.
- A subtree written into `audit_nodes` ahead of the log is named at once (503, the alert, what
  the owner must do), not when every append starts failing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from foureyes import worker
from foureyes.audit.canonical import canonical_json
from foureyes.errors import LogHeadAltered
from foureyes.store.tables import AlertRow, EventRow, RequestRow, ReviewRow
from foureyes.workflow import integrity
from tests.api.conftest import Api, assert_problem
from tests.dba import dba, tamper
from tests.worlds import as_remote

TOMAS, MEI, SAM, INES, SUPPORT = "e-3001", "e-3002", "e-3003", "e-4001", "e-2001"
SEQ_CHECK = "ck_audit_events_seq_in_tree"

# --- helpers -----------------------------------------------------------------------------------


def _sql(api: Api, statement: str, **params: Any) -> None:
    """One statement as the runtime role could run it: every trigger in place."""
    with api.world.services.database.engine.begin() as connection:
        connection.execute(text(statement), params)


def _stamp(api: Api, when: datetime) -> datetime:
    """A time as a bound parameter of plain SQL (SQLite keeps foureyes' naive UTC text)."""
    return when.replace(tzinfo=None) if api.world.services.database.is_sqlite else when


def _alerts(api: Api, detector: str | None = None) -> list[AlertRow]:
    query = select(AlertRow).order_by(AlertRow.id)
    if detector is not None:
        query = query.where(AlertRow.detector == detector)
    with api.world.services.database.transaction() as session:
        return list(session.scalars(query))


def _kinds(api: Api, request_id: str) -> list[str]:
    with api.world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(EventRow.kind)
                .where(EventRow.request_id == request_id)
                .order_by(EventRow.seq)
            )
        )


def _health(api: Api) -> dict[str, Any]:
    response = api.client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _size(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return api.world.services.audit.size(session)


def _state(api: Api, request_id: str) -> str:
    with api.world.services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.state


def _write_in(api: Api, n: int, state: str, **columns: Any) -> list[str]:
    """`n` requests inserted with plain SQL, none with an event; their ids sort before any
    request foureyes makes (uuid4), so that they come first in every pass's pages."""
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)]
    values = {
        "requester_id": TOMAS,
        "requester_identity": TOMAS,
        "action": "account.view",
        "account_ref": "chirp:nobody",
        "digest": "x",
        "policy_version": 1,
        "break_glass": False,
        "created_at": _stamp(api, datetime(2000, 1, 1)),
        "updated_at": _stamp(api, datetime(2000, 1, 1)),
        **columns,
    }
    names = ", ".join(["id", "state", "params", "decision", "account_snapshot", *values])
    binds = ", ".join(f":{name}" for name in values)
    with api.world.services.database.engine.begin() as connection:
        for request_id in ids:
            connection.execute(
                text(
                    f"INSERT INTO requests ({names}) "
                    f"VALUES (:id, :state, '{{}}', '{{}}', '{{}}', {binds})"
                ),
                {"id": request_id, "state": state, **values},
            )
    return ids


def _named_as_tampered(api: Api, ids: list[str], problem: str) -> None:
    """Each of `ids` has one high `request_tampered` alert naming `problem`."""
    found: dict[str, list[str]] = {}
    for alert in _alerts(api, integrity.DETECTOR):
        if alert.request_id in ids:
            assert alert.severity == "high"
            found.setdefault(alert.request_id, []).append(alert.summary)
    assert sorted(found) == sorted(ids)
    assert all(len(summaries) == 1 and problem in summaries[0] for summaries in found.values())


# --- 1. rows written in do not starve a worker pass --------------------------------------------


def _broken_glass(api: Api) -> dict[str, Any]:
    view = api.submitted(
        TOMAS,
        action="account.suspend",
        account="chirp:president",
        break_glass=True,
        justification="INC-1",
    )
    assert view["state"] == "executed"
    return view


def test_rows_written_in_do_not_keep_a_break_glass_from_being_flagged_overdue(api: Api) -> None:
    """The attack: 100 break-glass rows with no event, oldest and first in every page. The
    real break-glass is still flagged once its post-review is late; each row written in is
    named and settled (`break_glass.unfounded`), and no later pass looks at it again."""
    services = api.world.services
    fakes = _write_in(api, 100, "executed", break_glass=True)
    view = _broken_glass(api)
    api.world.clock.advance(hours=24, seconds=1)

    ticks = [worker.run_once(services) for _ in range(2)]

    assert [rid for tick in ticks for rid in tick.overdue] == [view["id"]]
    assert "break_glass.overdue" in _kinds(api, view["id"])
    _named_as_tampered(api, fakes, "it has no request.submitted audit event")
    assert all(_kinds(api, rid) == [integrity.UNFOUNDED] for rid in fakes)
    alerts = len(_alerts(api, integrity.DETECTOR))
    api.world.clock.advance(days=30)
    assert worker.run_once(services).overdue == []
    assert len(_alerts(api, integrity.DETECTOR)) == alerts  # none looked at again


def test_rows_written_in_do_not_starve_reconciliation(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 `executing` rows without an execution attempt (each used to be skipped with a log
    line on every pass, in no set order) and a real execution whose outcome was lost: the real
    one is reconciled, and each row written in is failed and named."""
    services = api.world.services
    fakes = _write_in(api, 100, "executing")
    chirp = services.connector("chirp")
    real = chirp.execute

    def lost(order: Any) -> Any:
        from foureyes.errors import ConnectorError  # noqa: PLC0415

        monkeypatch.setattr(chirp, "execute", real)
        raise ConnectorError("the answer was lost", transient=True, outcome_unknown=True)

    monkeypatch.setattr(chirp, "execute", lost)
    as_remote(monkeypatch, chirp)
    request_id = api.submit(SUPPORT, action="account.lock", account="chirp:bob").json()["id"]
    assert _state(api, request_id) == "executing"

    ticks = [worker.run_once(services) for _ in range(3)]

    assert request_id in [rid for tick in ticks for rid in tick.reconciled]
    assert _state(api, request_id) == "executed"
    assert api.world.chirp("bob")["status"] == "locked"
    assert {_state(api, rid) for rid in fakes} == {"failed"}
    _named_as_tampered(api, fakes, "it has no request.submitted audit event")


def test_rows_written_in_for_an_unknown_platform_do_not_stop_the_worker(api: Api) -> None:
    """Approved rows of a platform foureyes does not know used to raise out of the worker's
    pass (every pass, before anything else was carried out or expired). They are refused as
    altered, and the real approved request is carried out."""
    services = api.world.services
    fakes = _write_in(api, 100, "approved", account_ref="nowhere:x", action="account.delete")
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    for reviewer in (MEI, SAM):  # recorded, not carried out (the API's deciding review would)
        api.world.review(reviewer, view["id"], step_up=False)

    ticks = [worker.run_once(services) for _ in range(2)]

    assert [rid for tick in ticks for rid in tick.executed] == [view["id"]]
    assert api.world.chirp("president")["status"] == "suspended"
    assert {_state(api, rid) for rid in fakes} == {"cancelled"}
    _named_as_tampered(api, fakes, "it has no request.submitted audit event")


def test_rows_written_in_do_not_keep_a_pending_request_from_expiring(api: Api) -> None:
    services = api.world.services
    old = _stamp(api, datetime(2000, 1, 2))
    fakes = _write_in(api, 100, "pending", expires_at=old)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    api.world.clock.advance(days=30)

    ticks = [worker.run_once(services) for _ in range(2)]

    assert [rid for tick in ticks for rid in tick.expired] == [view["id"]]
    assert {_state(api, rid) for rid in fakes} == {"cancelled"}
    _named_as_tampered(api, fakes, "it has no request.submitted audit event")


# --- 2. events outside the tree -----------------------------------------------------------------


def _body(api: Api, request_id: str, kind: str) -> dict[str, Any]:
    with api.world.services.database.transaction() as session:
        raw = session.scalar(
            select(EventRow.body).where(EventRow.request_id == request_id, EventRow.kind == kind)
        )
    assert raw is not None
    return dict(json.loads(bytes(raw)))


def _forged_rows(
    api: Api, target: dict[str, Any], template: dict[str, Any]
) -> list[dict[str, Any]]:
    """Two approvals and the move to approved, as event bodies at seqs -1, -2, -3."""
    forged = []
    for n, who in enumerate((MEI, SAM), start=1):
        forged.append({**template, "seq": -n, "request": target["id"], "actor": who})
        forged[-1]["digest"] = target["digest"]
    submitted = _body(api, target["id"], "request.submitted")
    forged.append(
        {
            "seq": -3,
            "at": submitted["at"],
            "kind": "request.approved",
            "actor": SAM,
            "account": submitted["account"],
            "request": target["id"],
            "from": "pending",
            "to": "approved",
        }
    )
    return forged


_INSERT_EVENT = (
    "INSERT INTO audit_events (seq, at, kind, actor, account_ref, request_id, body) "
    "VALUES (:seq, :at, :kind, :actor, :account, :request, :body)"
)


def _event_params(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": body["seq"],
        "at": _stamp(api, api.world.clock.now),
        "kind": body["kind"],
        "actor": body.get("actor"),
        "account": body.get("account"),
        "request": body.get("request"),
        "body": canonical_json(body),
    }


def _approvals_to_forge(api: Api) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A pending VIT suspension, and the forged events that would approve it (copied from a
    genuine approval of another request)."""
    other = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, other["id"]).status_code == 200
    template = _body(api, other["id"], "review.recorded")
    target = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    worker.run_once(api.world.services)
    return target, _forged_rows(api, target, template)


def test_the_database_refuses_an_audit_event_at_a_negative_seq(api: Api) -> None:
    target, forged = _approvals_to_forge(api)
    before = _size(api)

    for body in forged:
        with pytest.raises(IntegrityError):
            _sql(api, _INSERT_EVENT, **_event_params(api, body))

    with api.world.services.database.transaction() as session:
        assert session.scalar(select(func.min(EventRow.seq))) == 0
    assert _size(api) == before
    assert api.show(INES, target["id"])["state"] == "pending"


def test_events_outside_the_tree_are_named_and_read_by_nothing(api: Api) -> None:
    """Forged approvals written at negative seqs before the constraint (or by the owner, who
    can lift it): the head check names them (503 `log-head-altered` from `/healthz` and every
    change, the worker carries nothing out, the high `log_head_altered` alert says what the
    owner must do), and no read finds them: not the request's trail, timeline or events."""
    services = api.world.services
    target, forged = _approvals_to_forge(api)
    postgres = not services.database.is_sqlite
    with dba(services.database) as connection:
        if postgres:  # the owner lifts the constraint for the statement, as the test does
            connection.execute(text(f"ALTER TABLE audit_events DROP CONSTRAINT {SEQ_CHECK}"))
        for body in forged:
            connection.execute(text(_INSERT_EVENT), _event_params(api, body))
        if postgres:
            connection.execute(
                text(
                    f"ALTER TABLE audit_events ADD CONSTRAINT {SEQ_CHECK} CHECK (seq >= 0) "
                    "NOT VALID"
                )
            )
    for who, identity in ((MEI, "mei"), (SAM, "sam")):
        _sql(
            api,
            "INSERT INTO reviews (request_id, reviewer_id, identity, kind, decision, comment,"
            " digest, step_up, created_at) VALUES (:r, :who, :identity, 'review', 'approve',"
            " '', :d, NULL, :at)",
            r=target["id"],
            who=who,
            identity=identity,
            d=target["digest"],
            at=_stamp(api, api.world.clock.now),
        )
    _sql(api, "UPDATE requests SET state = 'approved' WHERE id = :id", id=target["id"])

    health = assert_problem(api.client.get("/healthz"), 503, "log-head-altered")
    assert "seq -3" in health["detail"]
    assert "DELETE FROM audit_events WHERE seq < 0" in health["detail"]
    tick = worker.run_once(services)
    assert tick.held is not None
    assert "seq -3" in tick.held
    assert tick.executed == []
    assert api.world.chirp("president")["status"] == "active"
    assert_problem(api.review(INES, target["id"]), 503, "log-head-altered")
    (alert,) = _alerts(api, "log_head_altered")
    assert "seq -3" in alert.summary
    # Read by nothing, whatever the head check says.
    with services.database.transaction() as session:
        trail = integrity.trail(session, target["id"])
        assert trail.verdicts == ()
        assert [m.get("kind") for m in trail.moves] == []
        assert trail.problem(target_row(session, target["id"]), reviews(session, target["id"]))
        listed = services.audit.events(session, request=target["id"])
        assert [e.kind for e in listed] == ["request.submitted"]
    timeline = api.show(INES, target["id"])["timeline"]
    assert [e["kind"] for e in timeline] == ["request.submitted"]


def target_row(session: Any, request_id: str) -> RequestRow:
    row = session.get(RequestRow, request_id)
    assert row is not None
    return row


def reviews(session: Any, request_id: str) -> list[ReviewRow]:
    return list(session.scalars(select(ReviewRow).where(ReviewRow.request_id == request_id)))


# --- 3. requests and reviews are not deleted; a missing request is named ------------------------


def test_the_database_refuses_to_delete_a_request_or_a_review(api: Api) -> None:
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, view["id"]).status_code == 200

    for statement in (
        "DELETE FROM reviews WHERE request_id = :id",
        "DELETE FROM requests WHERE id = :id",
    ):
        with pytest.raises(IntegrityError, match="never deleted"):
            _sql(api, statement, id=view["id"])

    shown = api.show(INES, view["id"])
    assert shown["state"] == "pending"
    with api.world.services.database.transaction() as session:
        assert len(reviews(session, view["id"])) == 1


def test_a_request_missing_when_the_detectors_read_its_event_is_named(api: Api) -> None:
    """The owner (triggers off) deletes the row while the detectors read its
    `request.submitted` event and puts it back after: no detector could look at it, and that
    is the high `request_tampered` alert, raised once, not silence."""
    services = api.world.services
    worker.run_once(services)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    with services.database.engine.begin() as connection:
        kept = dict(
            connection.execute(text("SELECT * FROM requests WHERE id = :id"), {"id": view["id"]})
            .mappings()
            .one()
        )
    assert tamper(services.database, "DELETE FROM requests WHERE id = :id", id=view["id"]) == 1

    worker.run_once(services)

    names = ", ".join(kept)
    binds = ", ".join(f":{name}" for name in kept)
    values = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in kept.items()}
    tamper(services.database, f"INSERT INTO requests ({names}) VALUES ({binds})", **values)
    worker.run_once(services)
    (alert,) = [a for a in _alerts(api, integrity.DETECTOR) if a.request_id == view["id"]]
    assert alert.severity == "high"
    assert "missing from the store" in alert.summary
    assert "request.submitted" in alert.summary
    assert alert.account_ref == "chirp:president"
    with services.database.transaction() as session:
        raised = [
            json.loads(bytes(body))
            for body in session.scalars(
                select(EventRow.body).where(EventRow.kind == "alert.raised")
            )
        ]
    assert any(b["alert"] == alert.id for b in raised)


# --- 4. an alert row dated in the future silences nothing ---------------------------------------


def test_an_alert_row_dated_in_the_future_does_not_silence_record_tampered(api: Api) -> None:
    services = api.world.services
    _sql(
        api,
        "INSERT INTO alerts (detector, severity, staff_id, account_ref, request_id, summary,"
        " details, created_at) VALUES ('record_tampered', 'low', :s, :a, NULL, 'ok', '{}', :at)",
        s=MEI,
        a=f"foureyes:staff/{MEI}",
        at=_stamp(api, api.world.clock.now + timedelta(days=3650)),
    )
    (planted,) = _alerts(api, "record_tampered")
    _sql(api, "UPDATE staff SET name = 'Mei (edited)' WHERE id = :id", id=MEI)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")

    for hours in (0, 0, 2):
        api.world.clock.advance(hours=hours)
        refused = api.review(MEI, view["id"], digest=view["digest"])
        assert refused.status_code == 401

    raised = [a for a in _alerts(api, "record_tampered") if a.id != planted.id]
    # Raised at once, naming the row that would have silenced it; then once per hour.
    assert [a.severity for a in raised] == ["high", "high"]
    assert all("in the future" in a.summary and str(planted.id) in a.summary for a in raised)
    assert raised[0].details["future_dated_alert"]["id"] == planted.id
    with services.database.transaction() as session:
        logged = [
            json.loads(bytes(body))["alert"]
            for body in session.scalars(
                select(EventRow.body).where(EventRow.kind == "alert.raised")
            )
        ]
    assert {a.id for a in raised} <= set(logged)


def test_an_alert_row_dated_in_the_future_does_not_silence_checkpoint_stale(api: Api) -> None:
    worker.run_once(api.world.services)  # a heartbeat: only checkpoints are late
    _sql(
        api,
        "INSERT INTO alerts (detector, severity, summary, details, created_at)"
        " VALUES ('checkpoint_stale', 'low', 'ok', '{}', :at)",
        at=_stamp(api, datetime(9999, 1, 1)),
    )
    api.world.clock.advance(seconds=api.settings.checkpoint_deadline.total_seconds() + 1)

    for _ in range(2):
        assert _health(api)["checkpoints"] == "stale"

    stale = [a for a in _alerts(api, "checkpoint_stale") if a.severity == "high"]
    assert len(stale) == 1
    assert "in the future" in stale[0].summary


# --- 5. /healthz and a stopped detector pipeline ------------------------------------------------


def test_healthz_says_the_detectors_are_silent_on_every_probe_while_they_are(api: Api) -> None:
    worker.run_once(api.world.services)
    api.world.clock.advance(hours=2)  # no worker pass for two hours

    probes = [_health(api) for _ in range(3)]

    assert [p["detectors"] for p in probes] == ["silent"] * 3
    assert all(p["status"] == "degraded" for p in probes)
    assert all("have not run since" in p["reasons"][0] for p in probes)
    assert len(_alerts(api, "detector_silence")) == 1  # raised by the first probe only
    worker.run_once(api.world.services)
    assert _health(api)["detectors"] == "ok"
    assert len(_alerts(api, "detector_silence")) == 1  # the pass saw that silence alerted


def test_a_heartbeat_in_the_future_is_reported_and_alerted(api: Api) -> None:
    """`9999-01-01` (on PostgreSQL `infinity`, which the driver cannot even read as a time)
    hid a stopped pipeline for good. Now every probe says so, one alert names it, and the
    next pass puts the heartbeat right."""
    services = api.world.services
    worker.run_once(services)
    far = "9999-01-01 00:00:00" if services.database.is_sqlite else "infinity"
    _sql(api, "UPDATE detector_state SET heartbeat_at = :at", at=far)
    api.world.clock.advance(days=3)

    probes = [_health(api) for _ in range(2)]

    assert [p["detectors"] for p in probes] == ["heartbeat-ahead"] * 2
    assert all("in the future" in p["reasons"][0] for p in probes)
    (alert,) = _alerts(api, "detector_silence")
    assert alert.severity == "high"
    assert "in the future" in alert.summary
    worker.run_once(services)
    assert _health(api)["detectors"] == "ok"
    api.world.clock.advance(hours=2)
    assert _health(api)["detectors"] == "silent"  # measured again from the real heartbeat


# --- 6. a subtree written into audit_nodes ahead of the log -------------------------------------


def _node_ahead(api: Api) -> int:
    """A level-4 subtree the log completes a few appends from now, written in; its index."""
    index = _size(api) // 16 + 1
    _sql(
        api,
        'INSERT INTO audit_nodes (level, "index", hash) VALUES (4, :i, :h)',
        i=index,
        h=b"\0" * 32,
    )
    return index


def test_a_subtree_written_ahead_of_the_log_is_named_before_it_bites(api: Api) -> None:
    """It used to make every append fail once the log got there (503 blaming a head that had
    not moved) while `/healthz` said ok. Now it is found at once: a named 503 saying what the
    owner must do, the worker holds, an alert; once the owner removes it, all goes on."""
    services = api.world.services
    worker.run_once(services)
    index = _node_ahead(api)

    health = assert_problem(api.client.get("/healthz"), 503, "log-head-altered")
    assert f"level 4, index {index}" in health["detail"]
    assert 'DELETE FROM audit_nodes WHERE (level = 4 AND "index" >= ' in health["detail"]
    assert_problem(
        api.submit(TOMAS, action="account.suspend", account="chirp:president"),
        503,
        "log-head-altered",
    )
    assert worker.run_once(services).held is not None
    (alert,) = _alerts(api, "log_head_altered")
    assert f"level 4, index {index}" in alert.summary

    tamper(services.database, 'DELETE FROM audit_nodes WHERE level = 4 AND "index" = :i', i=index)
    assert _health(api)["status"] in ("ok", "degraded")
    for _ in range(40):  # well past where the subtree was
        api.submitted(SUPPORT, action="account.view", account="chirp:bob")
    assert _size(api) > 16 * (index + 1)


def test_an_append_that_runs_into_a_subtree_written_ahead_names_it(api: Api) -> None:
    """Even an append that gets there before any check has looked (a serving process reuses
    its verdict for a few seconds) says what is in its way, not that the head was moved."""
    services = api.world.services
    index = _node_ahead(api)
    before = _size(api)

    def append_past_it() -> None:
        with services.database.transaction() as session:
            for _ in range(40):
                services.audit.append(
                    session, kind="test", actor=None, account_ref=None, request_id=None
                )

    with pytest.raises(LogHeadAltered) as refused:
        append_past_it()

    assert f"level 4, index {index}" in refused.value.message
    assert "head was moved" not in refused.value.message
    assert _size(api) == before  # nothing of it was kept


def test_a_row_that_makes_its_handling_fail_does_not_stop_the_worker(api: Api) -> None:
    """The third attack run: one break-glass row with a state no code knows (`bogus`) made
    every overdue pass raise, and the worker's whole pass failed from then on: nothing was
    carried out, expired or detected. Now such a row is named (a high `worker_row_failed`
    alert, once a day) and the pass goes on with the others."""
    services = api.world.services
    bogus = _write_in(api, 1, "bogus", break_glass=True)
    pending = api.submitted(TOMAS, action="account.suspend", account="chirp:president")["id"]
    assert _state(api, pending) == "pending"
    api.world.clock.advance(days=30)  # past its expiry, and the break-glass window

    for _ in range(2):
        worker.run_once(services)  # raised on every pass before

    failed = [a for a in _alerts(api, "worker_row_failed") if a.request_id in bogus]
    assert len(failed) == 1  # once a day per row, however many passes meet it
    assert failed[0].severity == "high"
    assert _state(api, pending) == "expired"  # the other passes went on


def test_a_heartbeat_cleared_does_not_hide_a_stopped_pipeline(api: Api) -> None:
    """The third attack run: `UPDATE detector_state SET heartbeat_at = NULL` made the silence
    check answer "no pass yet", and `/healthz` said ok for 49 hours of failing passes. A
    missing heartbeat now counts from the log's first event."""
    worker.run_once(api.world.services)
    _sql(api, "UPDATE detector_state SET heartbeat_at = NULL")
    api.world.clock.advance(hours=2)

    probe = _health(api)

    assert probe["detectors"] == "silent"
    assert probe["status"] == "degraded"
    assert len(_alerts(api, "detector_silence")) == 1


def test_an_alert_dated_infinity_does_not_blind_the_alert_list(api: Api) -> None:
    """The third attack run: on PostgreSQL one `alerts` row with `created_at = 'infinity'`
    (which the driver could not read) made `/v1/alerts` fail for everyone: oversight blinded
    by one row. Such times are read as the far future, and the list answers."""
    # SQLite has no infinity: the far future instead.
    far = "9999-12-31 23:59:59" if api.world.services.database.is_sqlite else "infinity"
    _sql(
        api,
        "INSERT INTO alerts (detector, severity, summary, details, created_at) "
        "VALUES ('velocity', 'high', 'written in', '{}', :at)",
        at=far,
    )
    answer = api.get(INES, "/v1/alerts?state=all")
    assert answer.status_code == 200, answer.text
    assert any(item["summary"] == "written in" for item in answer.json()["items"])
