"""A DBA who deletes `alerts` rows, re-points them at other alerts' events or swaps
acknowledgements between them, to silence an alert about a colleague (attack r4 F1): the log's
`alert.raised` and `alert.acknowledged` bodies say which alerts exist and which are open
(`foureyes.core.alert_ledger`), whatever the table holds.

Each variant checks what oversight reads: the alerts list (open and all), one alert, the open
count, `/healthz`, the console's alerts page, and the high `alert_tampered` alert (once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes import detect, worker
from foureyes.core import alert_ledger, alert_log
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store.tables import AlertRow, EventRow
from foureyes.workflow import alerts as alert_ops
from tests.api.conftest import Api
from tests.console.conftest import console_for
from tests.dba import tamper

TOMAS, MEI, INES = "e-3001", "e-3002", "e-4001"


def _raise(api: Api, summary: str, *, staff: str = TOMAS, severity: str = "high") -> int:
    services = api.world.services
    with services.database.transaction() as session:
        row = raise_alert(
            services,
            session,
            NewAlert("off_hours", severity, summary, staff, f"chirp:{summary}", None, {"n": 1}),
            now=services.clock(),
        )
        assert row is not None
        return int(row.id)


def _ack(api: Api, alert_id: int, note: str = "checked") -> None:
    answer = api.post(INES, f"/v1/alerts/{alert_id}/ack", {"comment": note})
    assert answer.status_code == 200, answer.text


def _listed(api: Api, state: str = "open") -> dict[int, dict[str, Any]]:
    items = api.get(INES, "/v1/alerts", params={"state": state}).json()["items"]
    return {int(a["id"]): a for a in items}


def _count(api: Api) -> int:
    found = alert_ops.open_count(api.world.services, api.world.actor(INES))
    assert found is not None
    return found


def _health(api: Api) -> dict[str, Any]:
    answer: dict[str, Any] = api.client.get("/healthz").json()
    return answer


def _tampered_about(api: Api, alert_id: int) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        rows = list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.detector == alert_log.TAMPERED,
                    AlertRow.account_ref == f"foureyes:alert/{alert_id}",
                )
            )
        )
        return alert_log.vouched(session, rows)


def _delete(api: Api, *ids: int) -> None:
    for alert_id in ids:
        tamper(api.world.services.database, "DELETE FROM alerts WHERE id = :id", id=alert_id)


def _raised_seq(api: Api, alert_id: int) -> int:
    with api.world.services.database.transaction() as session:
        found = session.scalar(select(AlertRow.raised_seq).where(AlertRow.id == alert_id))
        assert found is not None
        return int(found)


def _assert_shown_open_from_the_log(api: Api, alert_id: int, summary: str) -> None:
    """Open, flagged, as its `alert.raised` event says, in the list, alone and in /healthz."""
    shown = _listed(api)[alert_id]
    assert shown["state"] == "open"
    assert "audit event" in str(shown["tampered"])
    assert shown["summary"] == summary
    assert shown["staff"] == TOMAS
    assert shown["account"] == f"chirp:{summary}"
    assert shown["severity"] == "high"
    assert shown["detector"] == "off_hours"
    assert alert_id in _listed(api, "all")
    assert alert_id not in _listed(api, "acknowledged")
    alone = api.get(INES, f"/v1/alerts/{alert_id}")
    assert alone.status_code == 200
    assert alone.json()["summary"] == summary
    assert alone.json()["state"] == "open"
    health = _health(api)
    assert health["alerts"] == "tampered"
    assert health["status"] == "degraded"
    assert any(str(alert_id) in reason for reason in health["reasons"])


# --- deleted rows ---------------------------------------------------------------------------


@pytest.mark.parametrize("acknowledged", [False, True], ids=["open", "acknowledged"])
def test_a_deleted_alert_row_is_shown_open_from_its_event_and_alerted_once(
    api: Api, acknowledged: bool
) -> None:
    alert_id = _raise(api, "tomas-late-login")
    if acknowledged:
        _ack(api, alert_id)
    before = _count(api)
    _delete(api, alert_id)
    # Counted open (before any look raised alert_tampered, itself open).
    assert _count(api) == before + (1 if acknowledged else 0)

    _assert_shown_open_from_the_log(api, alert_id, "tomas-late-login")
    # Alerted, high, once: however many looks (list, one alert, /healthz, the worker).
    worker.run_once(api.world.services)
    _listed(api)
    _health(api)
    (tampered,) = _tampered_about(api, alert_id)
    assert tampered.severity == "high"
    assert str(alert_id) in tampered.summary


def test_the_worker_alone_notices_a_deleted_row(api: Api) -> None:
    alert_id = _raise(api, "tomas-late-login")
    _delete(api, alert_id)
    worker.run_once(api.world.services)
    assert len(_tampered_about(api, alert_id)) == 1


def test_several_deleted_rows_are_all_shown_and_counted(api: Api) -> None:
    ids = [_raise(api, f"late-{n}") for n in range(4)]
    kept = _raise(api, "kept")
    _ack(api, ids[3])
    before = _count(api)
    _delete(api, *ids)
    assert _count(api) == before + 1  # the acknowledged one counts open again

    listed = _listed(api)
    assert {*ids, kept} <= listed.keys()
    assert all(listed[i]["tampered"] for i in ids)
    assert listed[kept]["tampered"] is None
    worker.run_once(api.world.services)
    assert all(len(_tampered_about(api, i)) == 1 for i in ids)


def test_a_deleted_alert_tampered_row_is_itself_missing(api: Api) -> None:
    """The DBA deletes the alert, waits for `alert_tampered`, and deletes that too."""
    alert_id = _raise(api, "tomas-late-login")
    _delete(api, alert_id)
    worker.run_once(api.world.services)
    (tampered,) = _tampered_about(api, alert_id)
    _delete(api, tampered.id)
    listed = _listed(api)
    assert alert_id in listed
    assert tampered.id in listed
    assert listed[tampered.id]["tampered"]
    worker.run_once(api.world.services)
    assert _tampered_about(api, tampered.id)


def test_a_deleted_cursor_moved_alert_keeps_healthz_degraded(api: Api) -> None:
    """`/healthz` reports a moved cursor until its alert is acknowledged: deleting the alert's
    row is no acknowledgement."""
    services = api.world.services
    worker.run_once(services)
    with services.database.transaction() as session:
        raise_alert(
            services,
            session,
            NewAlert(detect.cursor.DETECTOR, "high", "the cursor moved"),
            now=services.clock(),
        )
    tamper(services.database, "DELETE FROM alerts WHERE detector = :d", d=detect.cursor.DETECTOR)
    health = _health(api)
    assert health["detectors"] == "cursor-moved"
    assert health["status"] == "degraded"


# --- re-pointed rows ------------------------------------------------------------------------


def test_a_row_re_pointed_at_another_alerts_event_is_shown_as_its_own_event_says(
    api: Api,
) -> None:
    first = _raise(api, "first")
    second = _raise(api, "second")
    _ack(api, first)
    # The DBA points the acknowledged first alert's row at the second's event, then deletes the
    # second's row: each row's raised_seq now names an alert.raised event.
    tamper(
        api.world.services.database,
        "UPDATE alerts SET raised_seq = :seq WHERE id = :id",
        seq=_raised_seq(api, second),
        id=first,
    )
    _delete(api, second)

    _assert_shown_open_from_the_log(api, second, "second")
    _assert_shown_open_from_the_log(api, first, "first")
    listed = _listed(api)
    assert [i for i in listed if i in (first, second)].count(first) == 1  # shown once
    worker.run_once(api.world.services)
    assert _tampered_about(api, first)
    assert _tampered_about(api, second)


def test_a_row_re_pointed_at_no_event_is_shown_from_its_own(api: Api) -> None:
    alert_id = _raise(api, "tomas-late-login")
    _ack(api, alert_id)
    tamper(
        api.world.services.database,
        "UPDATE alerts SET raised_seq = NULL WHERE id = :id",
        id=alert_id,
    )
    _assert_shown_open_from_the_log(api, alert_id, "tomas-late-login")


def test_a_row_deleted_and_inserted_back_changed_is_not_believed(api: Api) -> None:
    """Same id and raised_seq, another person, a milder severity, a calm summary, and an
    acknowledgement copied from another alert."""
    alert_id = _raise(api, "tomas-late-login")
    other = _raise(api, "other")
    _ack(api, other)
    seq = _raised_seq(api, alert_id)
    _delete(api, alert_id)
    tamper(
        api.world.services.database,
        "INSERT INTO alerts (id, detector, severity, staff_id, account_ref, request_id, summary,"
        " details, created_at, raised_seq, acknowledged_seq, acknowledged_by, acknowledged_at,"
        " acknowledgement_note) SELECT :id, 'off_hours', 'low', :mei, account_ref, NULL,"
        " 'routine', '{}', created_at, :seq, acknowledged_seq, acknowledged_by,"
        " acknowledged_at, acknowledgement_note FROM alerts WHERE id = :other",
        id=alert_id,
        mei=MEI,
        seq=seq,
        other=other,
    )
    shown = _listed(api)[alert_id]
    assert shown["state"] == "open"
    assert shown["tampered"]
    assert alert_id in [a["id"] for a in api.get(INES, "/v1/alerts").json()["items"]]
    assert _count(api) >= 1
    worker.run_once(api.world.services)
    assert _tampered_about(api, alert_id)


# --- acknowledgements swapped ----------------------------------------------------------------


def _swap_acknowledgements(api: Api, acked: int, still_open: int) -> None:
    """The open alert takes the acknowledged one's acknowledgement (its columns and its
    event's seq); the acknowledged one is left showing none."""
    database = api.world.services.database
    tamper(
        database,
        "UPDATE alerts SET (acknowledged_at, acknowledged_by, acknowledgement_note,"
        " acknowledged_seq) = (SELECT acknowledged_at, acknowledged_by, acknowledgement_note,"
        " acknowledged_seq FROM alerts WHERE id = :acked) WHERE id = :open",
        acked=acked,
        open=still_open,
    )
    tamper(
        database,
        "UPDATE alerts SET acknowledged_at = NULL, acknowledged_by = NULL,"
        " acknowledgement_note = NULL, acknowledged_seq = NULL WHERE id = :acked",
        acked=acked,
    )


def test_an_acknowledgement_swapped_between_alerts_hides_no_open_alert(api: Api) -> None:
    acked = _raise(api, "harmless")
    about_tomas = _raise(api, "tomas-late-login")
    _ack(api, acked)
    before = _count(api)
    _swap_acknowledgements(api, acked, about_tomas)

    listed = _listed(api)
    assert listed[about_tomas]["state"] == "open"
    assert listed[about_tomas]["tampered"]
    assert about_tomas not in _listed(api, "acknowledged")
    assert _count(api) >= before
    assert api.get(INES, f"/v1/alerts/{about_tomas}").json()["state"] == "open"
    assert _tampered_about(api, about_tomas)


def test_an_acknowledgement_swapped_with_its_events_columns_relabelled_hides_nothing(
    api: Api,
) -> None:
    """The DBA also relabels the columns of the open alert's own raised event to read as an
    acknowledgement by Ines (the old SQL filter read those columns)."""
    acked = _raise(api, "harmless")
    about_tomas = _raise(api, "tomas-late-login")
    _ack(api, acked)
    _swap_acknowledgements(api, acked, about_tomas)
    seq = _raised_seq(api, about_tomas)
    database = api.world.services.database
    tamper(
        database,
        "UPDATE audit_events SET kind = 'alert.acknowledged', actor = :by WHERE seq = :seq",
        by=INES,
        seq=seq,
    )
    tamper(
        database,
        "UPDATE alerts SET acknowledged_seq = :seq WHERE id = :id",
        seq=seq,
        id=about_tomas,
    )
    assert _listed(api)[about_tomas]["state"] == "open"
    assert _count(api) >= 1


# --- what oversight does about it --------------------------------------------------------------


def test_the_console_shows_a_deleted_alert_and_acknowledging_it_puts_it_back(
    api: Api, tmp_path: Path
) -> None:
    alert_id = _raise(api, "tomas-late-login")
    _delete(api, alert_id)
    console = console_for(api.world, tmp_path / "console")
    ines = console.signed_in(INES)
    page = ines.get("/console/alerts").text
    assert f'data-alert-id="{alert_id}"' in page
    assert "tomas-late-login" in page
    assert "data-tampered" in page
    assert ines.get("/console/alerts?state=all").text.count(f'data-alert-id="{alert_id}"') == 1

    answer = ines.post(f"/console/alerts/{alert_id}/ack", {"comment": "DBA-7 asked; restored"})
    assert answer.status_code == 303
    # The row is back as the log says, acknowledged, and nothing is missing any more.
    shown = api.get(INES, f"/v1/alerts/{alert_id}").json()
    assert shown["state"] == "acknowledged"
    assert shown["tampered"] is None
    assert shown["summary"] == "tomas-late-login"
    assert shown["staff"] == TOMAS
    assert alert_id not in _listed(api)
    assert _health(api)["alerts"] == "ok"
    assert _tampered_about(api, alert_id)  # what happened stays said


def test_nobody_acknowledges_a_deleted_alert_about_themselves(api: Api) -> None:
    alert_id = _raise(api, "about-ines", staff=INES)
    _delete(api, alert_id)
    assert api.post(INES, f"/v1/alerts/{alert_id}/ack", {"comment": "x"}).status_code == 403
    assert alert_id in _listed(api)


# --- the cost ---------------------------------------------------------------------------------


def test_each_event_is_read_once_per_process(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check reads only the events appended since the last one (never the whole log per
    request): counted by the events the ledger looks at."""
    _raise(api, "one")
    _listed(api)
    looked: list[int] = []
    original = alert_ledger.Ledger._note

    def note(self: alert_ledger.Ledger, seq: int, raw: bytes) -> None:
        looked.append(seq)
        original(self, seq, raw)

    monkeypatch.setattr(alert_ledger.Ledger, "_note", note)
    _listed(api)
    _count(api)
    _health(api)
    assert looked == []
    _raise(api, "two")
    _count(api)
    assert len(looked) == 1


def test_an_old_alert_relabelled_and_deleted_is_found_by_the_sweep(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's first look reads the history's alert events by their `kind` column (every
    body of a large log would hold the first `/healthz` for minutes); the rest of the history's
    bodies are swept a slice per look. An old `alert.raised` event relabelled to another kind,
    its row deleted, is found when the sweep reaches it, never left out for good."""
    alert_id = _raise(api, "tomas-late-login")
    for n in range(5):
        _raise(api, f"later-{n}", staff=MEI)
    seq = _raised_seq(api, alert_id)
    tamper(
        api.world.services.database,
        "UPDATE audit_events SET kind = 'detectors.read' WHERE seq = :seq",
        seq=seq,
    )
    _delete(api, alert_id)
    monkeypatch.setattr(alert_ledger, "SWEEP", 1)
    api.world.services.alert_ledger = None  # a process starting now
    looked: list[int] = []
    original = alert_ledger.Ledger._note

    def note(self: alert_ledger.Ledger, seq: int, raw: bytes) -> None:
        looked.append(seq)
        original(self, seq, raw)

    monkeypatch.setattr(alert_ledger.Ledger, "_note", note)
    with api.world.services.database.read() as session:
        head = int(session.scalar(select(func.max(EventRow.seq))) or 0) + 1
    _count(api)
    # The first look: the alert events by their column, and one event of the sweep.
    assert len(looked) <= 5 + 1 + 1
    for _ in range(head):
        if _health(api)["alerts"] == "tampered":
            break
    _assert_shown_open_from_the_log(api, alert_id, "tomas-late-login")
