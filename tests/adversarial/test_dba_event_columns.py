"""A DBA who relabels the indexed columns of an audit event (its kind, actor, request) to make
someone a participant of a request, or to put a step in its timeline (attack "ledger" F2): who
took part, and what the timeline says, come from the events' bodies, which the log's hashes
cover."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.core.sealing import DETECTOR
from foureyes.store.tables import AlertRow, EventRow
from foureyes.workflow.answered import submit_run_or_replay
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api
from tests.dba import tamper

ANA, RAVI = "e-2001", "e-5001"  # support (asks); legal (takes no part)


def _pending(api: Api) -> str:
    api.world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [{"id": "vitcol", "followers": 5_000_000, "verified": True}]
    )
    submitted, _ = submit_run_or_replay(
        api.world.services,
        api.world.actor(ANA),
        Submission("account.suspend", "chirp:vitcol", justification="CASE-4"),
    )
    return submitted.request_id


def _relabel_an_unrelated_event(api: Api, request_id: str) -> int:
    with api.world.services.database.read() as session:
        seq = session.scalar(select(func.max(EventRow.seq)).where(EventRow.request_id.is_(None)))
    assert seq is not None
    tamper(
        api.world.services.database,
        "UPDATE audit_events SET kind = 'review.recorded', actor = :who, request_id = :rid "
        "WHERE seq = :seq",
        who=RAVI,
        rid=request_id,
        seq=seq,
    )
    return int(seq)


def test_a_relabelled_event_makes_nobody_a_participant(api: Api) -> None:
    request_id = _pending(api)
    assert api.get(RAVI, f"/v1/requests/{request_id}").status_code == 404
    _relabel_an_unrelated_event(api, request_id)
    assert api.get(RAVI, f"/v1/requests/{request_id}").status_code == 404
    listed = api.get(RAVI, "/v1/requests").json()["items"]
    assert request_id not in [item["id"] for item in listed]


def test_the_timeline_says_what_the_body_says_and_marks_the_copy(api: Api) -> None:
    request_id = _pending(api)
    seq = _relabel_an_unrelated_event(api, request_id)
    timeline = api.get(ANA, f"/v1/requests/{request_id}").json()["timeline"]
    (entry,) = [e for e in timeline if e["seq"] == seq]
    assert entry["kind"] != "review.recorded"
    assert entry["actor"] != RAVI
    assert "differs" in entry["altered"]
    untouched = [e for e in timeline if e["seq"] != seq]
    assert untouched
    assert all("altered" not in e for e in untouched)


def test_another_requests_event_moved_in_is_marked(api: Api) -> None:
    """Only the request column re-pointed (kind and actor left as the body says): another
    request's events shown in this one's timeline are marked (attack led7-F6)."""
    request_id = _pending(api)
    other = _pending(api)
    with api.world.services.database.read() as session:
        seq = session.scalar(select(func.max(EventRow.seq)).where(EventRow.request_id == other))
    assert seq is not None
    tamper(
        api.world.services.database,
        "UPDATE audit_events SET request_id = :rid WHERE seq = :seq",
        rid=request_id,
        seq=seq,
    )
    timeline = api.get(ANA, f"/v1/requests/{request_id}").json()["timeline"]
    (entry,) = [e for e in timeline if e["seq"] == seq]
    assert entry["altered"], entry
    assert entry["event"]["request"] == other
    assert all(e.get("altered") is None for e in timeline if e["seq"] != seq)


def test_a_re_dated_event_shows_its_bodys_time_marked(api: Api) -> None:
    """The `at` column re-dated (attack led7-F5): the timeline shows the body's time, marked."""
    request_id = _pending(api)
    with api.world.services.database.read() as session:
        seq = session.scalar(
            select(func.min(EventRow.seq)).where(EventRow.request_id == request_id)
        )
    assert seq is not None
    before = api.get(ANA, f"/v1/requests/{request_id}").json()["timeline"]
    (shown,) = [e for e in before if e["seq"] == seq]
    tamper(
        api.world.services.database,
        "UPDATE audit_events SET at = :at WHERE seq = :seq",
        at=datetime(2020, 1, 1, tzinfo=UTC),
        seq=seq,
    )
    timeline = api.get(ANA, f"/v1/requests/{request_id}").json()["timeline"]
    (entry,) = [e for e in timeline if e["seq"] == seq]
    assert entry["at"] == shown["at"]
    assert not entry["at"].startswith("2020")
    assert entry["altered"], entry


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE audit_events SET kind = 'break_glass.signed_off' WHERE seq = :seq",
        "UPDATE audit_events SET actor = 'e-5001' WHERE seq = :seq",
        "UPDATE audit_events SET request_id = NULL WHERE seq = :seq",
        "UPDATE audit_events SET account_ref = 'chirp:other' WHERE seq = :seq",
    ],
    ids=["kind", "actor", "request", "account"],
)
def test_a_changed_column_is_found_by_the_workers_sweep_and_alerted(api: Api, edit: str) -> None:
    """Whatever reads by that column, the worker goes round the log comparing the columns with
    the bodies: the changed copy raises a high `record_tampered` alert naming the event (once
    a day while it lasts)."""
    request_id = _pending(api)
    with api.world.services.database.read() as session:
        seq = session.scalar(
            select(func.min(EventRow.seq)).where(EventRow.request_id == request_id)
        )
    assert seq is not None
    tamper(api.world.services.database, edit, seq=seq)
    worker.run_once(api.world.services)
    worker.run_once(api.world.services)
    with api.world.services.database.read() as session:
        raised = [
            a
            for a in session.scalars(select(AlertRow).where(AlertRow.detector == DETECTOR))
            if (a.details or {}).get("seq") == seq
        ]
    assert len(raised) == 1
    assert raised[0].severity == "high"
    assert f"audit event {seq} was changed in the store" in raised[0].summary


def test_a_row_the_sweep_cannot_load_does_not_stop_it(api: Api) -> None:
    """A body stored as text (SQLite) or a time no datetime holds (PostgreSQL) made the sweep
    raise on every pass, so that a later relabelled column was never reported (attack
    hide2-F2), and the text body made request pages answer 500 (hide2-F5)."""
    request_id = _pending(api)
    database = api.world.services.database
    with database.read() as session:
        first, last = session.execute(
            select(func.min(EventRow.seq), func.max(EventRow.seq)).where(
                EventRow.request_id == request_id
            )
        ).one()
    if database.dialect == "sqlite":
        tamper(
            database, "UPDATE audit_events SET body = CAST(body AS TEXT) WHERE seq = :s", s=first
        )
    else:
        tamper(
            database,
            "UPDATE audit_events SET at = at + interval '10000 years' WHERE seq = :s",
            s=first,
        )
    tamper(database, "UPDATE audit_events SET actor = 'e-5001' WHERE seq = :s", s=last)
    for _ in range(2):
        worker.run_once(api.world.services)
    with database.read() as session:
        summaries = [
            a.summary
            for a in session.scalars(select(AlertRow).where(AlertRow.detector == DETECTOR))
        ]
    if database.dialect != "sqlite":
        assert any("cannot all be read" in s or f"audit event {first} " in s for s in summaries)
    assert any(f"audit event {last} was changed in the store" in s for s in summaries), summaries
    # Never a 500. A time no datetime holds still keeps the pages that load the row's columns
    # from answering (422, nothing changed: left open, named in the README).
    shown = 200 if database.dialect == "sqlite" else 422
    assert api.get(ANA, f"/v1/requests/{request_id}").status_code == shown
    assert api.get("e-4001", f"/v1/audit/events?request={request_id}").status_code == shown
