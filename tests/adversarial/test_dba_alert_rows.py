"""A DBA who writes `alerts` rows (attack s3, finding S3): rows are believed only where the log
says the same (`foureyes.core.alert_log`).

- A row written in (dated now, a little ahead, inside the window; "acknowledged") silences
  no later alert (`raise_alert`'s dedupe, the detectors' `_raised_before`), and is itself the
  high `alert_tampered` alert, which such rows cannot silence either.
- A row whose `alert.raised` event exists but says other details silences nothing about the
  person it now names.
- Acknowledgement columns set or edited by hand (with no event, another alert's event, another
  note) show the alert open, flagged, in the open list, and raise `alert_tampered`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes import detect
from foureyes.core import alert_log, sealing
from foureyes.store import migrate
from foureyes.store.tables import AlertRow, EventRow
from foureyes.workflow import alerts as alert_ops
from tests.api.conftest import Api
from tests.dba import tamper

TOMAS, MEI, INES = "e-3001", "e-3002", "e-4001"


@pytest.fixture(autouse=True)
def _record_tampered_not_remembered() -> None:
    """`record_tampered` is raised at most once an hour per record, remembered per `Database`
    in the process: the PostgreSQL tests share one, and each test here needs it raised."""
    sealing._memos.clear()


def _stamp(api: Api, when: datetime) -> datetime:
    """A time as a bound parameter of plain SQL (SQLite keeps foureyes' naive UTC text)."""
    return when.replace(tzinfo=None) if api.world.services.database.is_sqlite else when


def _alerts(api: Api, detector: str) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
            )
        )


def _plant(api: Api, detector: str, at: datetime, **columns: Any) -> int:
    """An acknowledged alerts row written in by the DBA; its id."""
    values = {
        "detector": detector,
        "severity": "low",
        "staff_id": None,
        "account_ref": None,
        "request_id": None,
        "summary": "HR contract extension, fine",
        "details": "{}",
        "created_at": _stamp(api, at),
        "acknowledged_by": INES,
        "acknowledged_at": _stamp(api, at),
        "acknowledgement_note": "checked with Jo",
        **columns,
    }
    names = ", ".join(values)
    tamper(
        api.world.services.database,
        f"INSERT INTO alerts ({names}) VALUES ({', '.join(':' + n for n in values)})",
        **values,
    )
    with api.world.services.database.transaction() as session:
        return int(session.scalar(select(func.max(AlertRow.id))) or 0)


def _tampered_about(api: Api, alert_id: int) -> list[AlertRow]:
    return [
        a
        for a in _alerts(api, alert_log.TAMPERED)
        if a.account_ref == f"foureyes:alert/{alert_id}" and a.severity == "high"
    ]


def _vouched(api: Api, row: AlertRow) -> bool:
    with api.world.services.database.transaction() as session:
        return not alert_log.problems(session, [row])


def _edit_mei(api: Api) -> None:
    """The DBA edits Mei's directory record: her next review is refused, record_tampered."""
    tamper(api.world.services.database, "UPDATE staff SET name = 'Mei (x)' WHERE id = :id", id=MEI)


def _flagged(api: Api, who: str = TOMAS) -> dict[str, Any]:
    """A real protected_touched alert (asked for on the president's account)."""
    view = api.submitted(who, action="account.suspend", account="chirp:president")
    detect.run(api.world.services)
    items = api.get(INES, "/v1/alerts", params={"detector": "protected_touched"}).json()["items"]
    (alert,) = [a for a in items if a["request"] == view["id"]]
    return dict(alert)


# --- rows written in silence nothing -----------------------------------------------------------


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(seconds=30), timedelta(minutes=-10)])
def test_an_acknowledged_row_written_in_does_not_silence_record_tampered(
    api: Api, ahead: timedelta
) -> None:
    planted = _plant(
        api,
        "record_tampered",
        api.world.clock.now + ahead,
        staff_id=MEI,
        account_ref=f"foureyes:staff/{MEI}",
    )
    _edit_mei(api)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")

    assert api.review(MEI, view["id"], digest=view["digest"]).status_code == 401

    raised = [a for a in _alerts(api, "record_tampered") if a.id != planted]
    assert [a.severity for a in raised] == ["high"]
    assert _vouched(api, raised[0])
    assert str(planted) in raised[0].summary
    # The planted row is itself alerted, high, and shown open, flagged, in the open list.
    assert len(_tampered_about(api, planted)) == 1
    listed = {a["id"]: a for a in api.get(INES, "/v1/alerts").json()["items"]}
    assert raised[0].id in listed
    assert listed[planted]["state"] == "open"
    assert listed[planted]["tampered"]
    assert listed[planted]["acknowledged_by"] is None
    assert listed[planted]["claimed_acknowledgement"]["by"] == INES


def test_rows_written_in_cannot_silence_the_alert_about_rows_written_in(api: Api) -> None:
    now = api.world.clock.now
    planted = _plant(api, "record_tampered", now, staff_id=MEI, account_ref=f"foureyes:staff/{MEI}")
    # Pre-silence the tamper alert itself, as `alert_tampered` rows about the planted row.
    for _ in range(3):
        _plant(api, alert_log.TAMPERED, now, account_ref=f"foureyes:alert/{planted}")
    _edit_mei(api)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, view["id"], digest=view["digest"]).status_code == 401

    (real,) = [a for a in _tampered_about(api, planted) if _vouched(api, a)]
    assert "would have silenced" in real.summary


def test_a_flood_of_rows_written_in_silences_nothing(api: Api) -> None:
    now = api.world.clock.now
    for _ in range(30):
        _plant(api, "record_tampered", now, staff_id=MEI, account_ref=f"foureyes:staff/{MEI}")
    _edit_mei(api)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, view["id"], digest=view["digest"]).status_code == 401
    assert any(_vouched(api, a) for a in _alerts(api, "record_tampered"))


def test_a_real_alert_moved_to_another_person_does_not_silence_theirs(api: Api) -> None:
    _edit_mei(api)
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, view["id"], digest=view["digest"]).status_code == 401
    (real,) = _alerts(api, "record_tampered")
    # The DBA points Mei's real alert (its event exists) at Tomas, then edits Tomas's record.
    tamper(
        api.world.services.database,
        "UPDATE alerts SET staff_id = :s, account_ref = :a WHERE id = :id",
        s=TOMAS,
        a=f"foureyes:staff/{TOMAS}",
        id=real.id,
    )
    tamper(api.world.services.database, "UPDATE staff SET name = 'T (x)' WHERE id = :id", id=TOMAS)
    other = api.submitted("e-2001", action="account.suspend", account="chirp:bob")
    assert api.review(TOMAS, other["id"], digest=other["digest"]).status_code == 401

    about_tomas = [a for a in _alerts(api, "record_tampered") if a.id != real.id]
    assert [a.staff_id for a in about_tomas] == [TOMAS]
    assert _vouched(api, about_tomas[0])
    assert _tampered_about(api, real.id)


def test_a_row_written_in_for_the_same_event_does_not_silence_a_detector(api: Api) -> None:
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    with api.world.services.database.transaction() as session:
        seq = session.scalar(
            select(EventRow.seq).where(
                EventRow.request_id == view["id"], EventRow.kind == "request.submitted"
            )
        )
    planted = _plant(
        api,
        "protected_touched",
        api.world.clock.now,
        staff_id=TOMAS,
        account_ref="chirp:president",
        request_id=view["id"],
        event_seq=seq,
    )
    detect.run(api.world.services)

    real = [a for a in _alerts(api, "protected_touched") if a.id != planted]
    assert len(real) == 1
    assert _vouched(api, real[0])
    assert _tampered_about(api, planted)


# --- acknowledgements the log does not hold -----------------------------------------------------


def _open_count(api: Api) -> int:
    count = alert_ops.open_count(api.world.services, api.world.actor(INES))
    assert count is not None
    return count


def test_an_acknowledgement_set_by_hand_shows_the_alert_open_and_flagged(api: Api) -> None:
    alert = _flagged(api)
    before = _open_count(api)
    tamper(
        api.world.services.database,
        "UPDATE alerts SET acknowledged_at = :at, acknowledged_by = :by,"
        " acknowledgement_note = 'restored from HR export' WHERE id = :id",
        at=_stamp(api, api.world.clock.now),
        by=INES,
        id=alert["id"],
    )

    shown = api.get(INES, f"/v1/alerts/{alert['id']}").json()
    assert shown["state"] == "open"
    assert shown["acknowledged_by"] is None
    assert shown["note"] is None
    assert "alert.acknowledged" in shown["tampered"]
    assert alert["id"] in [a["id"] for a in api.get(INES, "/v1/alerts").json()["items"]]
    assert _open_count(api) >= before
    assert len(_tampered_about(api, alert["id"])) == 1
    # Shown again: alerted once an hour, not at every look.
    api.get(INES, f"/v1/alerts/{alert['id']}")
    assert len(_tampered_about(api, alert["id"])) == 1
    # Security can still acknowledge it for real.
    acked = api.post(INES, f"/v1/alerts/{alert['id']}/ack", {"comment": "seen"})
    assert acked.status_code == 200, acked.text
    assert api.get(INES, f"/v1/alerts/{alert['id']}").json()["state"] == "acknowledged"


def test_another_alerts_acknowledgement_copied_over_does_not_acknowledge(api: Api) -> None:
    first = _flagged(api)
    second = _flagged(api, "e-3003")
    assert api.post(INES, f"/v1/alerts/{first['id']}/ack", {"comment": "ok"}).status_code == 200
    tamper(
        api.world.services.database,
        "UPDATE alerts SET (acknowledged_at, acknowledged_by, acknowledgement_note,"
        " acknowledged_seq) = (SELECT acknowledged_at, acknowledged_by, acknowledgement_note,"
        " acknowledged_seq FROM alerts WHERE id = :first) WHERE id = :second",
        first=first["id"],
        second=second["id"],
    )

    assert api.get(INES, f"/v1/alerts/{first['id']}").json()["state"] == "acknowledged"
    shown = api.get(INES, f"/v1/alerts/{second['id']}").json()
    assert shown["state"] == "open"
    assert shown["tampered"]
    open_ids = [a["id"] for a in api.get(INES, "/v1/alerts").json()["items"]]
    assert second["id"] in open_ids
    assert first["id"] not in open_ids
    assert _tampered_about(api, second["id"])


def test_an_acknowledgement_note_edited_by_hand_is_not_believed(api: Api) -> None:
    alert = _flagged(api)
    assert api.post(INES, f"/v1/alerts/{alert['id']}/ack", {"comment": "odd"}).status_code == 200
    tamper(
        api.world.services.database,
        "UPDATE alerts SET acknowledgement_note = 'checked with Jo, fine' WHERE id = :id",
        id=alert["id"],
    )
    shown = api.get(INES, f"/v1/alerts/{alert['id']}").json()
    assert shown["state"] == "open"
    assert "comment" in shown["tampered"]
    console = api.get(INES, "/v1/alerts", params={"state": "acknowledged"}).json()["items"]
    assert all(a["state"] == "open" for a in console if a["id"] == alert["id"])


def test_an_acknowledgement_cleared_by_hand_only_reopens_the_alert(api: Api) -> None:
    alert = _flagged(api)
    assert api.post(INES, f"/v1/alerts/{alert['id']}/ack", {"comment": "ok"}).status_code == 200
    tamper(
        api.world.services.database,
        "UPDATE alerts SET acknowledged_at = NULL, acknowledged_by = NULL WHERE id = :id",
        id=alert["id"],
    )
    # Fails safe: open again (security looks once more), and can be acknowledged again.
    assert alert["id"] in [a["id"] for a in api.get(INES, "/v1/alerts").json()["items"]]
    assert api.post(INES, f"/v1/alerts/{alert['id']}/ack", {"comment": "x"}).status_code == 200


def test_an_event_column_edited_to_look_like_an_acknowledgement_is_not_believed(
    api: Api,
) -> None:
    """The DBA points the row at some event and edits that event's columns (which the tree
    does not cover) to read as an acknowledgement by Ines: its body says otherwise."""
    alert = _flagged(api)
    with api.world.services.database.transaction() as session:
        seq = session.scalar(select(func.min(EventRow.seq)))
    at = _stamp(api, api.world.clock.now)
    tamper(
        api.world.services.database,
        "UPDATE audit_events SET kind = 'alert.acknowledged', actor = :by WHERE seq = :seq",
        by=INES,
        seq=seq,
    )
    tamper(
        api.world.services.database,
        "UPDATE alerts SET acknowledged_at = :at, acknowledged_by = :by, acknowledged_seq = :seq"
        " WHERE id = :id",
        at=at,
        by=INES,
        seq=seq,
        id=alert["id"],
    )
    shown = api.get(INES, f"/v1/alerts/{alert['id']}").json()
    assert shown["state"] == "open"
    assert shown["tampered"]
    assert _tampered_about(api, alert["id"])


# --- an upgraded store ------------------------------------------------------------------------


def test_the_upgrade_fills_the_seqs_from_the_log_and_not_from_rows_written_in(api: Api) -> None:
    """Migration 0023 on a store with alerts: each real alert gets its events' seqs back (read
    from their bodies), acknowledged ones stay acknowledged; a row written in gets none."""
    database = api.world.services.database
    acked = _flagged(api)
    still_open = _flagged(api, "e-3003")
    assert api.post(INES, f"/v1/alerts/{acked['id']}/ack", {"comment": "ok"}).status_code == 200
    planted = _plant(
        api, "record_tampered", api.world.clock.now, staff_id=MEI, account_ref="foureyes:x"
    )
    migrate.downgrade(database, "0022_request_window_indexes")
    migrate.upgrade(database)

    shown = {
        a["id"]: a for a in api.get(INES, "/v1/alerts", params={"state": "all"}).json()["items"]
    }
    assert shown[acked["id"]]["state"] == "acknowledged"
    assert shown[acked["id"]]["tampered"] is None
    assert shown[still_open["id"]]["state"] == "open"
    assert shown[still_open["id"]]["tampered"] is None
    assert shown[planted]["state"] == "open"
    assert shown[planted]["tampered"]


def test_an_alerts_details_rewritten_by_hand_are_flagged(api: Api) -> None:
    """The evidence an alert carries (whom a name looks like, who asked) is what its event
    says: a `details` column rewritten in the table is flagged, with an `alert_tampered` alert
    (attack led7-F2)."""
    alert = _flagged(api)
    tamper(
        api.world.services.database,
        "UPDATE alerts SET details = :details WHERE id = :id",
        details='{"requester": "someone-else"}',
        id=alert["id"],
    )
    shown = api.get(INES, f"/v1/alerts/{alert['id']}").json()
    assert shown["tampered"], shown
    assert "details" in shown["tampered"]
    assert len(_tampered_about(api, alert["id"])) == 1
