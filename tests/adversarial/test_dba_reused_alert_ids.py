"""A DBA who lets a new alert take an old alert's id, or edits who an alert is about around
its acknowledgement (attack ledger F1, F3).

F1: the DBA deletes the newest alert row (acknowledged); SQLite (no AUTOINCREMENT) gives the
next alert its id, PostgreSQL does after `setval`; the DBA then writes the old row back. An
alert is its `alert.raised` event, not its id: two events naming one id are two alerts, the one
no row shows is open, counted, in `/healthz` and `alert_tampered`; an acknowledgement counts
only for the raise before it. `raise_alert` never gives an id the log has raised.

F3: who may acknowledge is decided from the `alert.raised` body, never the row's columns; a row
that differs from its event is not acknowledged; `alert_tampered` names the staff of the alert
it is about, who may not acknowledge it either.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.core import alert_log
from foureyes.core import alerts as core_alerts
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store.tables import AlertRow
from foureyes.workflow import alerts as alert_ops
from tests.api.conftest import Api
from tests.dba import dba, tamper

TOMAS, MEI, INES, JO = "e-3001", "e-3002", "e-4001", "e-9001"
_COLUMNS = (
    "detector, severity, staff_id, account_ref, request_id, summary, details, event_seq,"
    " created_at, raised_seq, acknowledged_seq, acknowledged_by, acknowledged_at,"
    " acknowledgement_note"
)


def _raise(api: Api, summary: str, staff: str = TOMAS) -> int:
    services = api.world.services
    with services.database.transaction() as session:
        row = raise_alert(
            services,
            session,
            NewAlert("off_hours", "high", summary, staff, f"chirp:{summary}"),
            now=services.clock(),
        )
        assert row is not None
        return int(row.id)


def _ack(api: Api, alert_id: int, by: str = INES) -> None:
    answer = api.post(by, f"/v1/alerts/{alert_id}/ack", {"comment": "checked"})
    assert answer.status_code == 200, answer.text


def _open(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(INES, "/v1/alerts").json()["items"]
    return items


def _count(api: Api) -> int:
    found = alert_ops.open_count(api.world.services, api.world.actor(INES))
    assert found is not None
    return found


def _tampered_about(api: Api, alert_id: int) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        rows = session.scalars(
            select(AlertRow).where(
                AlertRow.detector == alert_log.TAMPERED,
                AlertRow.account_ref == f"foureyes:alert/{alert_id}",
            )
        )
        return alert_log.vouched(session, list(rows))


def _saved(api: Api, alert_id: int) -> dict[str, Any]:
    with dba(api.world.services.database) as connection:
        row = connection.exec_driver_sql(
            f"SELECT {_COLUMNS} FROM alerts WHERE id = {int(alert_id)}"
        ).one()
    return dict(zip([c.strip() for c in _COLUMNS.split(",")], row, strict=True))


def _write_back(api: Api, alert_id: int, saved: dict[str, Any]) -> None:
    """The DBA's UPDATE: every column of the row as saved (the table as it was before)."""
    values = {**saved, "details": _json(saved["details"])}
    sets = ", ".join(f"{name} = :{name}" for name in values)
    tamper(
        api.world.services.database,
        f"UPDATE alerts SET {sets} WHERE id = :id",
        id=alert_id,
        **values,
    )


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _delete_newest(api: Api, alert_id: int) -> None:
    """The DBA deletes the newest row; on PostgreSQL also moves the sequence back to it (SQLite
    gives the highest id + 1 again by itself)."""
    database = api.world.services.database
    tamper(database, "DELETE FROM alerts WHERE id = :id", id=alert_id)
    if database.dialect == "postgresql":
        tamper(
            database,
            "SELECT setval(pg_get_serial_sequence('alerts', 'id'), :id, false)",
            id=alert_id,
        )


def _reusing_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database's id stands (as before this fix, or with the guard fooled): the ledger
    must hold whatever ids the table reuses."""
    monkeypatch.setattr(core_alerts, "_fresh_id", lambda services, session, row: None)


def _assert_the_new_alert_is_open(api: Api, alert_id: int, summary: str, staff: str) -> None:
    shown = [a for a in _open(api) if a["id"] == alert_id and a["summary"] == summary]
    assert len(shown) == 1, _open(api)
    assert shown[0]["staff"] == staff
    assert shown[0]["state"] == "open"
    assert shown[0]["tampered"]
    health = api.client.get("/healthz").json()
    assert health["alerts"] == "tampered"
    assert health["status"] == "degraded"


# --- F1: the attacker's sequence -----------------------------------------------------------------


def test_an_alert_given_an_old_alerts_id_and_the_old_row_written_back_is_open(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reusing_ids(monkeypatch)
    old = _raise(api, "c-1001-account-walk")
    _ack(api, old)
    before = _count(api)
    saved = _saved(api, old)
    _delete_newest(api, old)
    new = _raise(api, "mei-account-walk", staff=MEI)
    assert new == old  # the database gave the id again
    _write_back(api, old, saved)  # the table is as it was

    assert _count(api) == before + 1
    _assert_the_new_alert_is_open(api, old, "mei-account-walk", MEI)
    shown = api.get(INES, f"/v1/alerts/{old}").json()
    assert shown["summary"] == "mei-account-walk"  # what acknowledging it would acknowledge
    worker.run_once(api.world.services)
    (tampered,) = _tampered_about(api, old)
    assert tampered.details["alert_staff"] == [MEI]
    # A process starting now reads the same from the log.
    api.world.services.alert_ledger = None
    _assert_the_new_alert_is_open(api, old, "mei-account-walk", MEI)

    # Mei cannot acknowledge it; someone else can, in the log alone (its id's row shows the
    # old alert), and then it is no longer open and /healthz is ok again.
    assert api.post(MEI, f"/v1/alerts/{old}/ack", {"comment": "x"}).status_code in (403, 404)
    _ack(api, old, by=JO)
    assert not [a for a in _open(api) if a["summary"] == "mei-account-walk"]
    assert api.client.get("/healthz").json()["alerts"] == "ok"
    assert api.get(INES, f"/v1/alerts/{old}").json()["summary"] == "c-1001-account-walk"


def test_the_old_acknowledgement_copied_onto_the_new_alert_acknowledges_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row left naming the new alert's event, with the old acknowledgement's columns and
    seq: an acknowledgement recorded before the raise acknowledges nothing."""
    _reusing_ids(monkeypatch)
    old = _raise(api, "c-1001-account-walk")
    _ack(api, old)
    saved = _saved(api, old)
    _delete_newest(api, old)
    assert _raise(api, "mei-account-walk", staff=MEI) == old
    tamper(
        api.world.services.database,
        "UPDATE alerts SET acknowledged_seq = :seq, acknowledged_by = :by,"
        " acknowledged_at = created_at, acknowledgement_note = :note WHERE id = :id",
        seq=saved["acknowledged_seq"],
        by=saved["acknowledged_by"],
        note=saved["acknowledgement_note"],
        id=old,
    )
    shown = {a["summary"]: a for a in _open(api) if a["id"] == old}
    assert shown["mei-account-walk"]["state"] == "open"
    assert "another raise" in shown["mei-account-walk"]["tampered"]
    # The old one, whose id was given again, is shown too: its row shows another raise.
    assert shown["c-1001-account-walk"]["tampered"]
    worker.run_once(api.world.services)
    assert _tampered_about(api, old)


def test_an_acknowledgement_recorded_before_the_raise_acknowledges_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old row deleted; its acknowledgement must not cover the new alert of its id, even
    with the row never written back (the old raise is then the missing one: its id is
    repeated, and its acknowledgement was given before anyone could see that)."""
    _reusing_ids(monkeypatch)
    old = _raise(api, "c-1001-account-walk")
    _ack(api, old)
    _delete_newest(api, old)
    assert _raise(api, "mei-account-walk", staff=MEI) == old
    api.world.services.alert_ledger = None
    shown = {a["summary"]: a for a in _open(api) if a["id"] == old}
    assert shown["mei-account-walk"]["state"] == "open"
    assert shown["c-1001-account-walk"]["state"] == "open"  # its row is gone: missing
    assert shown["c-1001-account-walk"]["tampered"]
    assert api.client.get("/healthz").json()["alerts"] == "tampered"
    _ack(api, old, by=JO)  # the old one, seen again: in the log alone
    assert [a["summary"] for a in _open(api) if a["id"] == old] == ["mei-account-walk"]
    assert api.client.get("/healthz").json()["alerts"] == "ok"
    _ack(api, old, by=JO)  # then the new one, its row
    assert not [a for a in _open(api) if a["id"] == old]


def test_the_next_alert_never_takes_a_deleted_rows_id(api: Api) -> None:
    old = _raise(api, "c-1001-account-walk")
    _ack(api, old)
    _count(api)  # this process's ledger has read the log
    tamper(api.world.services.database, "DELETE FROM alerts WHERE id = :id", id=old)
    new = _raise(api, "mei-account-walk", staff=MEI)
    assert new > old
    # A process that has not read the log yet, and the rows deleted again.
    api.world.services.alert_ledger = None
    tamper(api.world.services.database, "DELETE FROM alerts WHERE id >= :id", id=old)
    again = _raise(api, "tomas-account-walk")
    assert again > new
    assert _raise(api, "next") > again  # the database's numbering goes on past it


@pytest.mark.pg_only
def test_a_sequence_moved_back_gives_no_raised_id_again(api: Api) -> None:
    old = _raise(api, "c-1001-account-walk")
    _ack(api, old)
    tamper(api.world.services.database, "DELETE FROM alerts WHERE id = :id", id=old)
    tamper(
        api.world.services.database,
        "SELECT setval(pg_get_serial_sequence('alerts', 'id'), :back)",
        back=max(old - 1, 1),
    )
    new = _raise(api, "mei-account-walk", staff=MEI)
    assert new > old
    # The sequence was moved past it: the next alerts are raised, no id taken twice.
    assert len({new, _raise(api, "one"), _raise(api, "two")}) == 3


# --- F3: whom an alert is about, by its event ---------------------------------------------------


def test_staff_edited_around_the_acknowledgement_does_not_let_its_subject_acknowledge(
    api: Api,
) -> None:
    alert_id = _raise(api, "ines-account-walk", staff=INES)
    assert api.post(INES, f"/v1/alerts/{alert_id}/ack", {"comment": "x"}).status_code == 403
    tamper(
        api.world.services.database,
        "UPDATE alerts SET staff_id = :other WHERE id = :id",
        other=MEI,
        id=alert_id,
    )
    refused = api.post(INES, f"/v1/alerts/{alert_id}/ack", {"comment": "ok"})
    assert refused.status_code == 403, refused.text
    # Someone else is told the row differs from its event, and it stays open.
    other = api.post(JO, f"/v1/alerts/{alert_id}/ack", {"comment": "ok"})
    assert other.status_code == 409, other.text
    assert "staff" in other.text
    assert alert_id in [a["id"] for a in _open(api)]
    tamper(
        api.world.services.database,
        "UPDATE alerts SET staff_id = :ines WHERE id = :id",
        ines=INES,
        id=alert_id,
    )
    assert api.post(INES, f"/v1/alerts/{alert_id}/ack", {"comment": "x"}).status_code == 403
    _ack(api, alert_id, by=JO)


def test_an_acknowledgement_by_its_subject_in_the_log_does_not_count(api: Api) -> None:
    """One given before this fix (the attacker's F3): the log holds Ines's acknowledgement of
    the alert about her; the row shows it, and matches every event."""
    services = api.world.services
    alert_id = _raise(api, "ines-account-walk", staff=INES)
    with services.database.transaction() as session:
        row = session.get(AlertRow, alert_id)
        assert row is not None
        now = services.clock()
        row.acknowledged_by, row.acknowledged_at, row.acknowledgement_note = INES, now, None
        event = services.audit.append(
            session,
            kind=alert_log.ACKNOWLEDGED,
            actor=INES,
            account_ref=None,
            request_id=None,
            payload={**core_alerts.about(row), "comment": ""},
            at=now,
        )
        row.acknowledged_seq = event.seq
    shown = api.get(JO, f"/v1/alerts/{alert_id}").json()
    assert shown["state"] == "open"
    assert "person it is about" in shown["tampered"]
    assert alert_id in [a["id"] for a in _open(api)]
    _ack(api, alert_id, by=JO)  # acknowledged for real by someone else
    assert api.get(JO, f"/v1/alerts/{alert_id}").json()["state"] == "acknowledged"


@pytest.mark.parametrize("how", ["deleted", "edited"])
def test_nobody_acknowledges_the_alert_tampered_about_their_own_alert(api: Api, how: str) -> None:
    alert_id = _raise(api, "ines-account-walk", staff=INES)
    if how == "deleted":
        tamper(api.world.services.database, "DELETE FROM alerts WHERE id = :id", id=alert_id)
    else:
        tamper(
            api.world.services.database,
            "UPDATE alerts SET staff_id = :other WHERE id = :id",
            other=MEI,
            id=alert_id,
        )
    worker.run_once(api.world.services)
    _open(api)  # an edited row is reported when shown
    (tampered,) = _tampered_about(api, alert_id)
    assert INES in tampered.details["alert_staff"]
    refused = api.post(INES, f"/v1/alerts/{tampered.id}/ack", {"comment": "fine"})
    assert refused.status_code == 403, refused.text
    # Nor once the row of the alert_tampered is edited to name nobody.
    tamper(
        api.world.services.database,
        "UPDATE alerts SET details = '{}' WHERE id = :id",
        id=tampered.id,
    )
    assert api.post(INES, f"/v1/alerts/{tampered.id}/ack", {"comment": "x"}).status_code == 403
    tamper(
        api.world.services.database,
        "DELETE FROM alerts WHERE id = :id",
        id=tampered.id,
    )
    assert api.post(INES, f"/v1/alerts/{tampered.id}/ack", {"comment": "x"}).status_code == 403
    _ack(api, tampered.id, by=JO)
