"""A DBA who hides a batch's events from the look-up by column (attack hide-F2): a declined
batch's `batch.reviewed`, `batch.declined` and item events get their `request_id` column
cleared or re-pointed (or their `kind` relabelled), its review rows are deleted and its rows set
back to pending; or an executed batch's execution events are hidden and its rows set back to
approved; or rows among a batch's events are swapped (seq moved) or deleted. The bodies still
say whose events they are (`core.request_index`): the batch is refused with a high
`batch_tampered` alert, put back where its log says, and nothing reaches the platform again.
Each runs on SQLite and PostgreSQL, with the index warm ("running") and cold ("restarted": a
process started after the edit)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, text

from foureyes.core import request_index
from foureyes.errors import FoureyesError
from foureyes.store.tables import AlertRow, EventRow
from foureyes.workflow import batch_execute
from tests.batches import review, seed_ring, show, submit
from tests.dba import dba, tamper
from tests.worlds import World

# Ways to keep an event from a look-up by the request and kind columns.
_HIDE = {
    "request-cleared": "UPDATE audit_events SET request_id = NULL WHERE seq = :seq",
    "request-re-pointed": "UPDATE audit_events SET request_id = :other WHERE seq = :seq",
    "kind-relabelled": "UPDATE audit_events SET kind = 'request.viewed' WHERE seq = :seq",
}
_FRESH = pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
_EXECUTION = ("batch.executing", "batch.item.executed", "batch.executed")


def _by_column(world: World, batch_id: str) -> list[tuple[int, str]]:
    """(seq, kind) of the batch's events found by the request column."""
    with world.services.database.read() as session:
        rows = session.execute(
            select(EventRow.seq, EventRow.kind)
            .where(EventRow.request_id == batch_id)
            .order_by(EventRow.seq)
        )
        return [(int(seq), str(kind)) for seq, kind in rows]


def _by_body(world: World, batch_id: str, kind: str) -> int:
    """How many events whose bodies name the batch, of `kind` (whatever their columns say)."""
    with world.services.database.read() as session:
        found = 0
        for (raw,) in session.execute(select(EventRow.body)):
            body = json.loads(bytes(raw))
            found += body.get("request") == batch_id and body.get("kind") == kind
        return found


def _tampered(world: World, batch_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow.summary).where(
                    AlertRow.detector == "batch_tampered",
                    AlertRow.request_id == batch_id,
                    AlertRow.severity == "high",
                )
            )
        )


def _statuses(world: World, ring: list[str]) -> list[str]:
    return [str(world.chirp(ref.split(":")[1])["status"]) for ref in ring]


def _fresh_process() -> None:
    """As a process started after the DBA's edit: no index of the bodies yet."""
    request_index._INDEXES.clear()


def _unrelated(world: World) -> str:
    """Another batch: events after the tampered batch's (to swap with, or to keep a deletion
    off the head of the log)."""
    return submit(world, seed_ring(world, 1, prefix="other"), by="e-3002")


def _reset_pending(world: World, batch_id: str) -> None:
    db = world.services.database
    tamper(db, "DELETE FROM batch_reviews WHERE batch_id = :b", b=batch_id)
    tamper(db, "UPDATE batches SET state = 'pending', reason = NULL WHERE id = :b", b=batch_id)
    tamper(
        db,
        "UPDATE batch_items SET state = 'pending', reason = NULL, finished_at = NULL "
        "WHERE batch_id = :b",
        b=batch_id,
    )


def _reset_approved(world: World, batch_id: str) -> None:
    db = world.services.database
    tamper(db, "UPDATE batches SET state = 'approved', reason = NULL WHERE id = :b", b=batch_id)
    tamper(
        db,
        "UPDATE batch_items SET state = 'pending', reason = NULL, finished_at = NULL "
        "WHERE batch_id = :b",
        b=batch_id,
    )


def _declined(world: World) -> tuple[str, list[str]]:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    assert review(world, batch_id, "e-3002", "deny") == "declined"
    return batch_id, ring


def _executed(world: World) -> tuple[str, list[str]]:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    review(world, batch_id, "e-3002")
    assert review(world, batch_id, "e-3003") == "approved"
    assert batch_execute.execute_batch(world.services, batch_id).state == "executed"
    assert _statuses(world, ring) == ["suspended"] * 3
    for ref in ring:  # reinstated meanwhile: a second run would suspend them again
        tamper(
            world.services.database,
            "UPDATE chirp_accounts SET status = 'active' WHERE id = :i",
            i=ref.split(":")[1],
        )
    return batch_id, ring


def _approve_after_veto(world: World, batch_id: str) -> list[Any]:
    """e-3003 and e-3002 (who vetoed it) approve; then it is run. What each answered."""
    said: list[Any] = []
    for who in ("e-3003", "e-3002"):
        try:
            said.append(review(world, batch_id, who))
        except FoureyesError as refused:
            said.append(refused)
    said.append(batch_execute.execute_batch(world.services, batch_id))
    return said


def _swap(world: World, a: int, b: int) -> None:
    with dba(world.services.database) as c:
        c.execute(text("UPDATE audit_events SET seq = 999999999 WHERE seq = :a"), {"a": a})
        c.execute(text("UPDATE audit_events SET seq = :a WHERE seq = :b"), {"a": a, "b": b})
        c.execute(text("UPDATE audit_events SET seq = :b WHERE seq = 999999999"), {"b": b})


@_FRESH
@pytest.mark.parametrize("how", list(_HIDE), ids=list(_HIDE))
def test_a_declined_batch_with_its_veto_hidden_is_not_carried_out(
    world: World, how: str, fresh: bool
) -> None:
    batch_id, ring = _declined(world)
    other = _unrelated(world)
    veto = [
        seq
        for seq, kind in _by_column(world, batch_id)
        if kind in ("batch.reviewed", "batch.declined") or kind.startswith("batch.item.")
    ]
    assert len(veto) >= 2
    for seq in veto:
        tamper(world.services.database, _HIDE[how], seq=seq, other=other)
    _reset_pending(world, batch_id)
    if fresh:
        _fresh_process()
    said = _approve_after_veto(world, batch_id)
    assert "approved" not in said, said
    assert isinstance(said[0], FoureyesError), said
    assert said[-1].executed == 0
    assert _statuses(world, ring) == ["active"] * 3
    assert _by_body(world, batch_id, "batch.item.executed") == 0
    shown = show(world, batch_id)
    assert shown["state"] == "declined", shown  # put back as its log has it
    assert {i["state"] for i in shown["items"]} == {"cancelled"}
    (alert,) = _tampered(world, batch_id)
    assert "not found under it in the store" in alert
    assert any(str(seq) in alert for seq in veto), (veto, alert)


@_FRESH
@pytest.mark.parametrize("how", ["request-cleared", "kind-relabelled"])
def test_only_the_declined_event_hidden_still_stops_it(world: World, how: str, fresh: bool) -> None:
    """The review left where it was (its row deleted), only the state's event hidden."""
    batch_id, ring = _declined(world)
    (declined,) = [s for s, k in _by_column(world, batch_id) if k == "batch.declined"]
    tamper(world.services.database, _HIDE[how], seq=declined, other=None)
    _reset_pending(world, batch_id)
    if fresh:
        _fresh_process()
    said = _approve_after_veto(world, batch_id)
    assert "approved" not in said, said
    assert _statuses(world, ring) == ["active"] * 3
    assert show(world, batch_id)["state"] == "declined"
    assert _tampered(world, batch_id)


@_FRESH
@pytest.mark.parametrize("how", list(_HIDE), ids=list(_HIDE))
def test_an_executed_batch_with_its_execution_hidden_is_not_run_again(
    world: World, how: str, fresh: bool
) -> None:
    batch_id, ring = _executed(world)
    other = _unrelated(world)
    hidden = [seq for seq, kind in _by_column(world, batch_id) if kind in _EXECUTION]
    assert len(hidden) == 5
    for seq in hidden:
        tamper(world.services.database, _HIDE[how], seq=seq, other=other)
    _reset_approved(world, batch_id)
    if fresh:
        _fresh_process()
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert progress.executed == 0, progress
    assert _statuses(world, ring) == ["active"] * 3
    assert _by_body(world, batch_id, "batch.item.executed") == 3  # the first run's only
    shown = show(world, batch_id)
    assert shown["state"] == "executed", shown
    assert {i["state"] for i in shown["items"]} == {"executed"}
    (alert,) = _tampered(world, batch_id)
    assert "not found under it in the store" in alert


@_FRESH
def test_a_declined_batch_whose_veto_rows_were_deleted_is_not_carried_out(
    world: World, fresh: bool
) -> None:
    """Its review and decline rows deleted outright (not the log's last): the approvals are
    refused (the log's head no longer matches, or the gap is named), nothing runs."""
    batch_id, ring = _declined(world)
    veto = [s for s, k in _by_column(world, batch_id) if k != "batch.submitted"]
    assert veto
    _unrelated(world)  # the deleted rows are not the log's last
    with dba(world.services.database) as c:
        for seq in veto:
            c.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
    _reset_pending(world, batch_id)
    if fresh:
        _fresh_process()
    said = _approve_after_veto(world, batch_id)
    assert all(isinstance(s, FoureyesError) for s in said[:2]), said
    assert said[-1].executed == 0
    assert _statuses(world, ring) == ["active"] * 3
    assert show(world, batch_id)["state"] != "approved"
    for alert in _tampered(world, batch_id):
        assert "rows moved, deleted or edited" in alert


@_FRESH
@pytest.mark.parametrize("with_what", ["its own", "another's"])
def test_rows_swapped_among_a_batch_s_events_stop_it(
    world: World, with_what: str, fresh: bool
) -> None:
    """An executed batch whose `batch.executed` row trades seqs with its `batch.approved` one
    (its log then ending "approved" by seq and column) or with a later event of another
    batch (its log then ending "executing"); set back to approved: not run again."""
    batch_id, ring = _executed(world)
    _unrelated(world)
    seqs = {kind: seq for seq, kind in _by_column(world, batch_id)}
    swapped = seqs["batch.executed"]
    partner = seqs["batch.approved"] if with_what == "its own" else swapped + 1
    _swap(world, swapped, partner)
    _reset_approved(world, batch_id)
    if fresh:
        _fresh_process()
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert progress.executed == 0, progress
    assert _statuses(world, ring) == ["active"] * 3
    assert _by_body(world, batch_id, "batch.item.executed") == 3
    assert {i["state"] for i in show(world, batch_id)["items"]} == {"executed"}
    alerts = _tampered(world, batch_id)
    assert alerts
    assert "rows moved, deleted or edited" in alerts[0], alerts
    assert str(swapped) in alerts[0]


@_FRESH
def test_a_batch_whose_events_are_intact_is_still_carried_out(world: World, fresh: bool) -> None:
    """The checks name nothing on an untouched log: another batch's events hidden do not stop
    this one."""
    decoy, _ = _declined(world)
    for seq, _kind in _by_column(world, decoy)[1:]:
        tamper(world.services.database, _HIDE["request-cleared"], seq=seq)
    ring = seed_ring(world, 2, prefix="fine")
    batch_id = submit(world, ring)
    if fresh:
        _fresh_process()
    review(world, batch_id, "e-3002")
    assert review(world, batch_id, "e-3003") == "approved"
    assert batch_execute.execute_batch(world.services, batch_id).executed == 2
    assert _statuses(world, ring) == ["suspended"] * 2
    assert not _tampered(world, batch_id)
