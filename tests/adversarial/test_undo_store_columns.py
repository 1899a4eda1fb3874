"""A DBA edits what the undo believes of the request it reverses, or writes an undo in (attacker
h2: F2, F3), on SQLite and PostgreSQL (`database`; `tests.dba` plays the DBA).

F2: the original's `result` (the platform's report: `already_applied` says it changed nothing)
and `finished_at` are not guarded by the write-once trigger; setting `already_applied` made
the honest undo 409 "nothing of foureyes' to undo" for good, with no alert, and hid the
console's Undo. Now both are compared with the execution's event first: a difference is one
high `request_tampered` alert, and the undo (and its offer) goes by the log. A batch item's
row is held to its `batch.item.executed` event the same way (`batch_tampered`).

F3: a pending undo row with no audit event ("request X already undoes ...: cancel it first")
blocked the honest undo with no alert, and cancelling it was an ordinary `request.cancelled`.
Now a row the log never recorded is refused as tampered wherever it would block or be acted
on: the undo's open-undo guard and cancel.

The cast: Tomas (e-3001) suspends the president; Mei (e-3002) and Sam (e-3003) approve; an
undo (`account.unsuspend`) needs one trust & safety employee's approval."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from foureyes import worker
from foureyes.connectors.base import ExecutionResult
from foureyes.errors import Conflict
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, BatchItemRow, EventRow, RequestRow
from foureyes.workflow import (
    batch_execute,
    batch_integrity,
    batch_undo,
    execute,
    integrity,
    operations,
    undo,
    undo_offer,
)
from foureyes.workflow.submit import Submission
from tests.batches import approved, review, seed_ring
from tests.dba import dba, tamper
from tests.worlds import World, make_world

ACCOUNT = "chirp:president"
TOMAS, MEI, SAM = "e-3001", "e-3002", "e-3003"


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _row(world: World, request_id: str) -> RequestRow:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def _suspended(world: World) -> str:
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission(action="account.suspend", account=ACCOUNT, justification="CASE-3"),
    )
    world.review(MEI, request_id)
    world.review(SAM, request_id)
    if _row(world, request_id).state == "approved":
        execute.execute(world.services, request_id)
    assert _row(world, request_id).state == "executed"
    assert world.chirp("president")["status"] == "suspended"
    return request_id


def _alerts(world: World, request_id: str, detector: str = integrity.DETECTOR) -> list[AlertRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.request_id == request_id, AlertRow.detector == detector
                )
            )
        )


def _set_result(world: World, request_id: str, result: Any) -> None:
    changed = tamper(
        world.services.database,
        "UPDATE requests SET result = :result WHERE id = :id",
        id=request_id,
        result=None if result is None else json.dumps(result),
    )
    assert changed == 1


def _undo(world: World, request_id: str, by: str = MEI) -> str:
    return undo.undo(world.services, world.actor(by), request_id, "CASE-4")


def _undone(world: World, original: str, undo_id: str) -> None:
    """The undo, approved by Sam, carried out: the president is active again."""
    world.review(SAM, undo_id)
    if _row(world, undo_id).state == "approved":
        execute.execute(world.services, undo_id)
    assert _row(world, undo_id).state == "executed", _row(world, undo_id).reason
    assert _row(world, original).state == "reverted"
    assert world.chirp("president")["status"] == "active"


# --- F2: the original's result and finished_at ----------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: {**r, "already_applied": True},  # the attack as found
        lambda r: {"already_applied": True},  # the whole report replaced
        lambda r: {**r, "already_applied": "true"},  # not a JSON true: still not the log's
        lambda r: {**r, "note": "edited"},  # another key: not what the platform reported
        lambda r: None,  # emptied
    ],
    ids=["already-applied", "replaced", "string-true", "extra-key", "emptied"],
)
def test_an_edited_result_is_alerted_and_the_honest_undo_goes_by_the_log(
    world: World, edit: Any
) -> None:
    original = _suspended(world)
    _set_result(world, original, edit(_row(world, original).result or {}))
    assert undo_offer.undo_offered(world.services, world.actor(MEI), original) is True
    undo_id = _undo(world, original)
    [alert] = _alerts(world, original)  # once, for the look and the undo both
    assert alert.severity == "high"
    assert "its stored result" in alert.summary
    _undone(world, original, undo_id)


def test_a_result_cleared_of_already_applied_still_refuses_to_undo_what_changed_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way: the platform reported the suspension changed nothing (someone else had
    suspended the president). A DBA clears `already_applied` so that foureyes would lift a
    suspension it did not make: refused still, as the log says, with the alert."""
    connector: Any = world.services.connector("chirp")
    real = connector._execute_in

    def applied_already(session: Any, order: Any) -> ExecutionResult:
        result: ExecutionResult = real(session, order)
        return dataclasses.replace(result, summary={**result.summary, "already_applied": True})

    monkeypatch.setattr(connector, "_execute_in", applied_already)
    original = _suspended(world)
    monkeypatch.setattr(connector, "_execute_in", real)
    assert (_row(world, original).result or {}).get("already_applied") is True
    assert undo_offer.undo_offered(world.services, world.actor(MEI), original) is False
    _set_result(world, original, {**(_row(world, original).result or {}), "already_applied": False})
    assert undo_offer.undo_offered(world.services, world.actor(MEI), original) is False
    with pytest.raises(Conflict, match="changed nothing on chirp"):
        _undo(world, original)
    [alert] = _alerts(world, original)
    assert "the log says it changed nothing" in alert.summary
    assert world.chirp("president")["status"] == "suspended"


@pytest.mark.parametrize("moved", [timedelta(seconds=1), -timedelta(days=3), None])
def test_a_moved_finished_at_is_alerted_and_the_undo_goes_ahead(
    world: World, moved: timedelta | None
) -> None:
    original = _suspended(world)
    ended = _row(world, original).finished_at
    assert ended is not None
    changed = tamper(
        world.services.database,
        "UPDATE requests SET finished_at = :at WHERE id = :id",
        id=original,
        at=None if moved is None else ended + moved,
    )
    assert changed == 1
    undo_id = _undo(world, original)
    [alert] = _alerts(world, original)
    assert "it says it ended at" in alert.summary
    _undone(world, original, undo_id)


def test_an_untouched_original_raises_no_alert(world: World) -> None:
    """The comparison is exact on both stores (times, JSON): no false alarm."""
    original = _suspended(world)
    assert undo_offer.undo_offered(world.services, world.actor(MEI), original) is True
    _undone(world, original, _undo(world, original))
    assert _alerts(world, original) == []


def test_a_state_set_reverted_hides_the_offer_with_an_alert(world: World) -> None:
    """H9's edit seen from the console: the Undo is not offered, and security is told."""
    original = _suspended(world)
    tamper(
        world.services.database,
        "UPDATE requests SET state = 'reverted' WHERE id = :id",
        id=original,
    )
    assert undo_offer.undo_offered(world.services, world.actor(MEI), original) is False
    [alert] = _alerts(world, original)
    assert "its state is reverted" in alert.summary


# --- F3: an undo written in -------------------------------------------------------------------


def _forged_undo(world: World, original: str, state: str = "pending", **extra: Any) -> str:
    """The attacker's forge.py: a copy of the original's row as an open undo, no event."""
    with dba(world.services.database) as connection:
        row = dict(
            connection.execute(text("SELECT * FROM requests WHERE id = :id"), {"id": original})
            .mappings()
            .one()
        )
        row.update(
            id=str(uuid.uuid4()),
            state=state,
            action="account.unsuspend",
            reverts_id=original,
            params="{}",
            idempotency_key=None,
            idempotency_digest=None,
            undo_params=None,
            finished_at=None,
            result=None,
            **extra,
        )
        # JSON columns as text (PostgreSQL adapts no dict); the rest as read.
        row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        columns = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        connection.execute(text(f"INSERT INTO requests ({columns}) VALUES ({values})"), row)
    return str(row["id"])


def _kinds(world: World, request_id: str) -> list[str]:
    with world.services.database.read() as session:
        return [
            json.loads(bytes(body))["kind"]
            for body in session.scalars(
                select(EventRow.body)
                .where(EventRow.request_id == request_id)
                .order_by(EventRow.seq)
            )
        ]


@pytest.mark.parametrize("state", ["pending", "approved", "scheduled"])
def test_a_forged_open_undo_does_not_block_the_honest_one_and_is_refused(
    world: World, state: str
) -> None:
    original = _suspended(world)
    forged = _forged_undo(world, original, state)
    undo_id = _undo(world, original)
    assert _row(world, forged).state == "cancelled"
    assert "no request.submitted audit event" in (_row(world, forged).reason or "")
    [alert] = _alerts(world, forged)
    assert alert.severity == "high"
    _undone(world, original, undo_id)


def test_a_forged_executing_undo_does_not_block_the_honest_one(world: World) -> None:
    """Executing: the worker's to fail (its claim may be calling the platform); it does not
    count as an open undo meanwhile: the honest undo is recorded, and carried out once the
    worker has failed the forgery with its alert."""
    original = _suspended(world)
    forged = _forged_undo(world, original, "executing")
    undo_id = _undo(world, original)
    assert _row(world, forged).state == "executing"
    world.clock.advance(minutes=10)  # past any lease the forgery could claim
    worker.run_once(world.services)
    assert _row(world, forged).state == "failed"
    assert len(_alerts(world, forged)) == 1
    _undone(world, original, undo_id)


def test_a_genuine_open_undo_still_blocks(world: World) -> None:
    original = _suspended(world)
    first = _undo(world, original)
    with pytest.raises(Conflict, match=f"request {first} already undoes"):
        _undo(world, original, by=SAM)
    assert _alerts(world, first) == []


def test_cancelling_a_forged_request_is_refused_as_tampering(world: World) -> None:
    """The forgery names Tomas as its requester; his cancel is not an ordinary cancel: the row
    is refused as altered (cancelled with the reason, the high alert), and he is told so."""
    original = _suspended(world)
    forged = _forged_undo(world, original)
    with pytest.raises(Conflict, match="your cancel was not recorded: re-check at cancel"):
        operations.cancel(world.services, world.actor(TOMAS), forged, "x")
    row = _row(world, forged)
    assert row.state == "cancelled"
    assert "no request.submitted audit event" in (row.reason or "")
    assert _kinds(world, forged) == ["request.cancelled"]
    [alert] = _alerts(world, forged)
    assert alert.details["found_during"] == "cancel"
    _undone(world, original, _undo(world, original))


def test_cancelling_a_request_whose_params_were_edited_is_refused_as_tampering(
    world: World,
) -> None:
    """Not only forged rows: a pending request altered in the store is not cancelled quietly."""
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission(action="account.suspend", account=ACCOUNT, justification="CASE-9"),
    )
    tamper(
        world.services.database,
        "UPDATE requests SET justification = 'CASE-10' WHERE id = :id",
        id=request_id,
    )
    with pytest.raises(Conflict, match="justification"):
        operations.cancel(world.services, world.actor(TOMAS), request_id)
    assert _row(world, request_id).state == "cancelled"
    assert len(_alerts(world, request_id)) == 1


# --- batch items ------------------------------------------------------------------------------


def _executed_batch(world: World) -> tuple[str, list[str]]:
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    return batch_id, ring


def _item(world: World, batch_id: str, position: int) -> BatchItemRow:
    with world.services.database.read() as session:
        item = session.scalar(
            select(BatchItemRow).where(
                BatchItemRow.batch_id == batch_id, BatchItemRow.position == position
            )
        )
        assert item is not None
        return item


@pytest.mark.parametrize("column", ["result", "finished_at"])
def test_an_edited_batch_item_is_alerted_at_the_undo_and_undone_as_the_log_says(
    world: World, column: str
) -> None:
    batch_id, ring = _executed_batch(world)
    item = _item(world, batch_id, 1)
    value: Any = (
        json.dumps({**(item.result or {}), "already_applied": True})
        if column == "result"
        else (item.finished_at or world.clock.now) - timedelta(hours=1)
    )
    assert (
        tamper(
            world.services.database,
            f"UPDATE batch_items SET {column} = :value WHERE id = :id",
            id=item.id,
            value=value,
        )
        == 1
    )
    reverse = batch_undo.undo_batch(world.services, world.actor(TOMAS), batch_id)
    alerts = _alerts(world, batch_id, batch_integrity.DETECTOR)
    assert len(alerts) == 1
    assert f"item {item.position}" in alerts[0].summary
    review(world, reverse, MEI)
    assert review(world, reverse, SAM) == "approved"
    batch_execute.execute_batch(world.services, reverse)
    assert _item(world, batch_id, 1).state == "reverted"
    assert all(world.chirp(ref.split(":", 1)[1])["status"] == "active" for ref in ring)
    assert len(_alerts(world, batch_id, batch_integrity.DETECTOR)) == 1  # not again
