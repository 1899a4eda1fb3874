"""Attacks on undoing a batch (the attack run on issue #20, findings F0 and F3): racing undos
of the same items, a stale undo executed after a later, separate decision on the account, and
an undo steered by a DBA's edit of the original batch's rows. Each runs on SQLite and
PostgreSQL (the `world` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from foureyes.core.events import lock_request, move
from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.tables import AlertRow, BatchItemRow, BatchRow, RequestRow
from foureyes.workflow import (
    access,
    batch_execute,
    batch_submit,
    batch_undo,
    batch_undo_guard,
    execute,
    submit,
)
from tests.batches import approved, review, seed_ring
from tests.dba import tamper
from tests.worlds import World


def _undo(
    world: World, batch_id: str, positions: list[int] | None = None, by: str = "e-3001"
) -> str:
    return batch_undo.undo_batch(world.services, world.actor(by), batch_id, positions=positions)


def _undos(world: World, batch_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(session.scalars(select(BatchRow.id).where(BatchRow.reverts_id == batch_id)))


def _items(world: World, batch_id: str) -> list[BatchItemRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id)
                .order_by(BatchItemRow.position)
            )
        )


def _tampered(world: World, batch_id: str) -> list[AlertRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.detector == "batch_tampered", AlertRow.request_id == batch_id
                )
            )
        )


def _status(world: World, ref: str) -> str:
    return str(world.chirp(ref.split(":", 1)[1])["status"])


def _approve(world: World, batch_id: str) -> None:
    review(world, batch_id, "e-3002")
    assert review(world, batch_id, "e-3003") == "approved"


def _executed(world: World, ring: list[str]) -> str:
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    return batch_id


# --- racing undos --------------------------------------------------------------------------


def test_racing_undos_of_the_same_items_record_one(world: World) -> None:
    batch_id = _executed(world, seed_ring(world, 4))
    asked = [([0, 1], "e-3001"), ([0, 1], "e-3001"), ([0, 1], "e-3002"), ([1, 2], "e-3002")]
    actors = {by: world.actor(by) for _, by in asked}
    start = threading.Barrier(len(asked))
    made: list[str] = []
    refused: list[BaseException] = []

    def undo(positions: list[int], by: str) -> None:
        start.wait()
        try:
            made.append(
                batch_undo.undo_batch(world.services, actors[by], batch_id, positions=positions)
            )
        except BaseException as exc:  # every outcome is checked below
            refused.append(exc)

    threads = [threading.Thread(target=undo, args=a) for a in asked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1, refused
    assert all(isinstance(exc, Conflict) for exc in refused), refused
    assert _undos(world, batch_id) == made


def test_an_undo_that_passed_its_first_look_is_refused_in_its_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second undo is recorded between the first's look and its write transaction: the
    first, under the original batch's lock, sees it and records nothing."""
    batch_id = _executed(world, seed_ring(world, 3))
    resolve = batch_submit.resolve
    raced: list[str] = []

    def racing_resolve(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append("")
            raced.append(_undo(world, batch_id, [1, 2], by="e-3002"))
        return resolve(*args, **kwargs)

    monkeypatch.setattr(batch_submit, "resolve", racing_resolve)
    with pytest.raises(Conflict, match="already undoes"):
        _undo(world, batch_id, [0, 1])
    assert _undos(world, batch_id) == [raced[1]]


def test_a_keyed_retry_racing_its_first_call_is_answered_the_first_calls_undo(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7 (batch attack): the retry with the same key and body is recorded between the first
    call's key look-up and its write: the first is answered as a replay of it, not 409."""
    batch_id = _executed(world, seed_ring(world, 3))
    actor = world.actor("e-3001")
    resolve = batch_submit.resolve
    raced: list[tuple[str, bool]] = []

    def keyed() -> tuple[str, bool]:
        undone = batch_undo.undo_batch_or_replay(
            world.services, actor, batch_id, positions=[1], idempotency_key="retry-30"
        )
        return undone.batch_id, undone.replayed

    def racing_resolve(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(("", False))
            raced.append(keyed())
        return resolve(*args, **kwargs)

    monkeypatch.setattr(batch_submit, "resolve", racing_resolve)
    first = keyed()
    assert raced[1][1] is False
    assert first == (raced[1][0], True)
    assert _undos(world, batch_id) == [first[0]]
    # Another key asking for the same items is still refused.
    with pytest.raises(Conflict, match="already undoes"):
        batch_undo.undo_batch_or_replay(
            world.services, actor, batch_id, positions=[1], idempotency_key="other-31"
        )


def _two_stale_undos(
    world: World, monkeypatch: pytest.MonkeyPatch, ring: list[str]
) -> tuple[str, str, str]:
    """The original batch and two approved undos of its item 0, recorded as racing undos were
    before the fix (the recording guard out of the way)."""
    batch_id = _executed(world, ring)
    with monkeypatch.context() as patch:
        patch.setattr(batch_undo_guard, "check_recordable", lambda *a, **k: None)
        patch.setattr(batch_undo_guard, "refuse_open_undo", lambda *a, **k: None)
        first, second = _undo(world, batch_id, [0]), _undo(world, batch_id, [0])
    _approve(world, first)
    _approve(world, second)
    return batch_id, first, second


def test_a_stale_undo_never_undoes_an_item_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = seed_ring(world, 2)
    batch_id, first, second = _two_stale_undos(world, monkeypatch, ring)
    batch_execute.execute_batch(world.services, first)
    assert _items(world, batch_id)[0].state == "reverted"
    batch_execute.execute_batch(world.services, second)
    (item,) = _items(world, second)
    assert item.state == "failed"
    assert "undone already" in (item.reason or "")
    assert _status(world, ring[0]) == "active"


def test_a_stale_undo_never_reverses_a_later_separate_decision(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = seed_ring(world, 2)
    batch_id, first, second = _two_stale_undos(world, monkeypatch, ring)
    batch_execute.execute_batch(world.services, first)
    assert _items(world, batch_id)[0].state == "reverted"
    # A new incident: the account is suspended again by a later, separate batch.
    world.clock.advance(minutes=1)
    later = _executed(world, [ring[0]])
    assert _status(world, ring[0]) == "suspended"
    batch_execute.execute_batch(world.services, second)
    assert [i.state for i in _items(world, second)] == ["failed"]
    assert _status(world, ring[0]) == "suspended"
    assert [i.state for i in _items(world, later)] == ["executed"]


def test_an_undo_superseded_by_a_later_change_fails_alone(world: World) -> None:
    """No earlier undo: item 0 is still `executed`, but a later, separate batch lifted the
    suspension after the undo was approved. Carrying the undo out now would act on a state
    nobody approved it for: item 0 fails alone, item 1 is undone."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    undo = _undo(world, batch_id)
    _approve(world, undo)
    world.clock.advance(minutes=1)
    lifted = batch_submit.submit_batch(
        world.services,
        world.actor("e-3001"),
        batch_submit.BatchSubmission(
            action="account.unsuspend", accounts=[ring[0]], justification="CASE-77"
        ),
    )
    _approve(world, lifted)
    batch_execute.execute_batch(world.services, lifted)
    assert _status(world, ring[0]) == "active"
    world.clock.advance(minutes=1)
    batch_execute.execute_batch(world.services, undo)
    first, second = _items(world, undo)
    assert (first.state, second.state) == ("failed", "executed")
    assert "superseded" in (first.reason or "")
    assert [i.state for i in _items(world, batch_id)] == ["executed", "reverted"]


# --- an undo steered by a DBA's edit of the original batch -----------------------------------


def _nothing_undone(world: World, batch_id: str) -> None:
    assert _undos(world, batch_id) == []
    assert len(_tampered(world, batch_id)) == 1


def test_an_item_retargeted_by_a_dba_is_never_undone(world: World) -> None:
    """F3: item 1's account edited to one the batch never touched (suspended by a separate
    batch): the undo is refused, with the alert, and that account stays suspended."""
    ring = seed_ring(world, 3)
    bystander = seed_ring(world, 1, prefix="bystander")[0]
    _executed(world, [bystander])
    batch_id = _executed(world, ring)
    tamper(
        world.services.database,
        "UPDATE batch_items SET account_ref = :ref WHERE batch_id = :id AND position = 1",
        ref=bystander,
        id=batch_id,
    )
    with pytest.raises(batch_undo_guard.OriginalAltered, match="does not match its digest"):
        _undo(world, batch_id, [1])
    _nothing_undone(world, batch_id)
    assert _status(world, bystander) == "suspended"


def test_an_item_the_log_says_was_cancelled_is_never_undone(world: World) -> None:
    """F3, first variant: a cancelled item's row set to `executed`."""
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring)
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ring[1].split(":", 1)[1],
    )
    batch_execute.execute_batch(world.services, batch_id)
    assert [i.state for i in _items(world, batch_id)] == ["executed", "cancelled", "executed"]
    tamper(
        world.services.database,
        "UPDATE batch_items SET state = 'executed' WHERE batch_id = :id AND position = 1",
        id=batch_id,
    )
    with pytest.raises(batch_undo_guard.OriginalAltered, match="audit events say"):
        _undo(world, batch_id, [1, 2])
    _nothing_undone(world, batch_id)


def test_an_original_retargeted_after_the_undo_was_approved_is_not_undone(
    world: World,
) -> None:
    """The edit comes after the undo was recorded and approved: its execution re-checks the
    original, cancels the undo with the alert, and changes no account."""
    ring = seed_ring(world, 2)
    bystander = seed_ring(world, 1, prefix="bystander")[0]
    _executed(world, [bystander])
    batch_id = _executed(world, ring)
    undo = _undo(world, batch_id, [0])
    _approve(world, undo)
    tamper(
        world.services.database,
        "UPDATE batch_items SET account_ref = :ref WHERE batch_id = :id AND position = 0",
        ref=bystander,
        id=batch_id,
    )
    progress = batch_execute.execute_batch(world.services, undo)
    assert progress.state == "cancelled"
    assert len(_tampered(world, batch_id)) == 1
    assert _status(world, bystander) == "suspended"
    assert _status(world, ring[0]) == "suspended"


# --- an undo item split out as its own request (batch attack F1) -----------------------------


def _make_vit(world: World, ref: str) -> None:
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ref.split(":", 1)[1],
    )


def _split_request(world: World, undo_id: str) -> RequestRow:
    with world.services.database.read() as session:
        undo = session.get(BatchRow, undo_id)
        assert undo is not None
        (split,) = undo.split_requests
        request = session.get(RequestRow, split["request_id"])
        assert request is not None
        return request


def _single(world: World, action: str, ref: str, by: str, approvers: list[str]) -> str:
    """A separate, ordinary request on `ref`, approved and executed."""
    request_id = submit.submit(
        world.services,
        world.actor(by),
        submit.Submission(action=action, account=ref, justification="CASE-22"),
    )
    for approver in approvers:
        world.review(approver, request_id)
    assert execute.execute(world.services, request_id) is not None
    return request_id


def test_a_split_out_undo_is_bound_to_the_item_it_reverses(world: World) -> None:
    """The account became very important after the batch ran: its undo is split out as its
    own request, which names the item, holds it against a second undo, and reverts it."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    undo = _undo(world, batch_id, [1])
    split = _split_request(world, undo)
    original = _items(world, batch_id)[1]
    assert split.reverts_item_id == original.id
    with pytest.raises(Conflict, match=f"request {split.id} already undoes"):
        _undo(world, batch_id, [1], by="e-3002")
    world.review("e-3002", split.id)
    outcome = execute.execute(world.services, split.id)
    assert outcome is not None
    assert outcome.state.value == "executed"
    assert _status(world, ring[1]) == "active"
    assert [i.state for i in _items(world, batch_id)] == ["executed", "reverted", "executed"]
    with pytest.raises(Conflict, match="is reverted"):
        _undo(world, batch_id, [1])


def test_a_stale_split_out_undo_never_reverses_a_later_change(world: World) -> None:
    """The split-out undo is approved, then the account is unsuspended and suspended again
    by separate requests (a new incident): carrying the old undo out now would reverse that
    suspension. It is cancelled, saying why; the account stays suspended."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[0])
    split = _split_request(world, _undo(world, batch_id, [0]))
    world.review("e-3002", split.id)
    world.clock.advance(minutes=1)
    _single(world, "account.unsuspend", ring[0], "e-3002", ["e-3003"])
    _single(world, "account.suspend", ring[0], "e-3003", ["e-3001", "e-3002"])
    assert _status(world, ring[0]) == "suspended"
    outcome = execute.execute(world.services, split.id)
    assert outcome is not None
    assert outcome.state.value == "cancelled"
    assert "superseded" in (outcome.reason or "")
    assert _status(world, ring[0]) == "suspended"
    assert _items(world, batch_id)[0].state == "executed"


def test_the_link_of_a_split_out_undo_cannot_be_removed(world: World) -> None:
    """A DBA clears `reverts_item_id` (past the trigger) to free the item from its undo: the
    request no longer matches its `request.submitted` event and is cancelled at execution."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[0])
    split = _split_request(world, _undo(world, batch_id, [0]))
    world.review("e-3002", split.id)
    tamper(
        world.services.database,
        "UPDATE requests SET reverts_item_id = NULL WHERE id = :id",
        id=split.id,
    )
    outcome = execute.execute(world.services, split.id)
    assert outcome is not None
    assert outcome.state.value == "cancelled"
    assert "reverts_item" in (outcome.reason or "")
    assert _status(world, ring[0]) == "suspended"


# --- "later" is the log's order, not a time column (batch attack F2) --------------------------


def _later_lift_and_suspend(world: World, ring: list[str]) -> str:
    """Batch S suspends ring; ring[0] is then lifted and suspended again by separate batches;
    an undo of S's item 0 is recorded and approved. S's id and the undo's."""
    batch_id = _executed(world, ring)
    world.clock.advance(minutes=1)
    lifted = batch_submit.submit_batch(
        world.services,
        world.actor("e-3001"),
        batch_submit.BatchSubmission(
            action="account.unsuspend", accounts=[ring[0]], justification="CASE-21"
        ),
    )
    _approve(world, lifted)
    batch_execute.execute_batch(world.services, lifted)
    world.clock.advance(minutes=1)
    _executed(world, [ring[0]])
    assert _status(world, ring[0]) == "suspended"
    return batch_id


@pytest.mark.parametrize("edit", ["item", "requests"])
def test_a_moved_time_column_never_lets_an_undo_reverse_a_later_change(
    world: World, edit: str
) -> None:
    """The runtime role moves S's item 0 `finished_at` past the later changes (or the later
    changes' `finished_at` before it): the undo item still fails as superseded (the log's
    order decides), and a row that disagrees with its `batch.item.executed` event raises
    `batch_tampered`."""
    ring = seed_ring(world, 2)
    batch_id = _later_lift_and_suspend(world, ring)
    undo = _undo(world, batch_id, [0])
    _approve(world, undo)
    with world.services.database.transaction() as session:
        if edit == "item":
            session.execute(
                update(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.position == 0)
                .values(finished_at=world.clock() + timedelta(days=1))
            )
        else:
            session.execute(update(RequestRow).values(finished_at=datetime(2000, 1, 1, tzinfo=UTC)))
            session.execute(
                update(BatchItemRow)
                .where(BatchItemRow.batch_id != batch_id, BatchItemRow.batch_id != undo)
                .values(finished_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
    batch_execute.execute_batch(world.services, undo)
    (item,) = _items(world, undo)
    assert item.state == "failed"
    assert _status(world, ring[0]) == "suspended"
    assert _items(world, batch_id)[0].state == "executed"
    if edit == "item":
        # The row's time is not believed: the log's order decides (superseded), and the
        # difference is alerted once (session h2, F2).
        [alert] = _tampered(world, batch_id)
        assert "audit event says" in alert.summary
        assert "a later" in (item.reason or "")
    else:
        assert "superseded" in (item.reason or "")
    assert "the platform was not called" in (item.reason or "")


# --- what counts as a later change, found how (batch attack 2, G1-G3) ------------------------


def _view(world: World, ref: str, by: str = "e-2001") -> None:
    """A read of the account, carried out for its requester (support views a standard account
    alone)."""
    request_id = submit.submit(
        world.services,
        world.actor(by),
        submit.Submission(action="account.view", account=ref, justification="customer called"),
    )
    outcome = execute.execute(world.services, request_id, actor=world.actor(by))
    assert outcome is not None
    assert outcome.state.value == "executed"


def test_a_later_read_of_the_account_does_not_hold_its_undo(world: World) -> None:
    """A view changes nothing: the undo after it is carried out (G3)."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    world.clock.advance(minutes=1)
    _view(world, ring[0])
    undo = _undo(world, batch_id)
    _approve(world, undo)
    batch_execute.execute_batch(world.services, undo)
    assert [i.state for i in _items(world, undo)] == ["executed", "executed"]
    assert _status(world, ring[0]) == "active"
    assert [i.state for i in _items(world, batch_id)] == ["reverted", "reverted"]


def test_a_later_change_ended_by_reconciliation_holds_the_undo(world: World) -> None:
    """A later, separate unsuspend of the account was interrupted and reconciled as applied
    (its events as `reconcile._settle` writes them: `request.reconciled` to `executed`), and
    nothing else happened to the account: the stale undo fails as superseded (G2)."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    undo = _undo(world, batch_id, [0])
    _approve(world, undo)
    world.clock.advance(minutes=1)
    request_id = submit.submit(
        world.services,
        world.actor("e-3002"),
        submit.Submission(action="account.unsuspend", account=ring[0], justification="CASE-22"),
    )
    tamper(  # the platform applied it; foureyes never heard back
        world.services.database,
        "UPDATE chirp_accounts SET status = 'active' WHERE id = :id",
        id=ring[0].split(":", 1)[1],
    )
    with world.services.database.transaction() as session:
        row = lock_request(session, request_id)
        now = world.clock()
        for state, kind in (
            (RequestState.EXECUTING, "request.executing"),
            (RequestState.EXECUTED, "request.reconciled"),
        ):
            details = {"verdict": "applied"} if kind == "request.reconciled" else None
            move(
                world.services, session, row, state, actor=None, kind=kind, now=now, details=details
            )
    batch_execute.execute_batch(world.services, undo)
    (item,) = _items(world, undo)
    assert item.state == "failed"
    assert "superseded" in (item.reason or "")
    assert _items(world, batch_id)[0].state == "executed"


@pytest.mark.parametrize("column", ["account_ref", "kind"])
def test_moved_copy_columns_never_hide_a_later_change(world: World, column: str) -> None:
    """A DBA moves the indexed `account_ref` (or `kind`) copy of the later changes' events,
    which the tree does not cover: the guard reads the bodies, and the stale undo still fails
    as superseded (G1)."""
    ring = seed_ring(world, 2)
    batch_id = _later_lift_and_suspend(world, ring)
    undo = _undo(world, batch_id, [0])
    _approve(world, undo)
    value = f"{ring[0]} " if column == "account_ref" else "request.executing"
    tamper(
        world.services.database,
        f"UPDATE audit_events SET {column} = :value "
        "WHERE account_ref = :ref AND kind = 'batch.item.executed' AND request_id != :batch",
        value=value,
        ref=ring[0],
        batch=batch_id,
    )
    batch_execute.execute_batch(world.services, undo)
    (item,) = _items(world, undo)
    assert item.state == "failed"
    assert "superseded" in (item.reason or "")
    assert _status(world, ring[0]) == "suspended"


# Too many later changes hold the undo as unproven (and views never count toward that bound):
# tests/adversarial/test_batch_undo_lock.py (attack F2: the bound counted views).


def test_a_left_out_item_names_only_an_undo_its_caller_may_see(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Final attack, 2: the whole-batch undo's `left_out` named another person's split-out
    request that its caller could not open. It names it only to whoever may see it."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    split_id = _split_request(world, _undo(world, batch_id, [1])).id
    monkeypatch.setattr(access, "may_see", lambda *_: False)
    undone = batch_undo.undo_batch_or_replay(world.services, world.actor("e-3002"), batch_id)
    assert undone.left_out == [{"position": 1, "account": ring[1], "undone_by": {"request": None}}]
    with pytest.raises(Conflict) as refused:  # nor names it in the refusal of that item
        _undo(world, batch_id, [1], by="e-3002")
    assert "another undo not yet ended" in refused.value.message
    assert split_id not in str(refused.value.message) + str(refused.value.details)


def test_events_that_are_not_executions_never_count_toward_the_bound(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Final attack, 1: the bound counted every later event, so ordinary traffic (a view is
    three events, a denial one) or a large undo's own events made an older batch impossible to
    undo. Only executions count: with room for two, one later view (three events, one of them
    an execution, of a read) leaves the undo free to run."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    world.clock.advance(minutes=1)
    _view(world, ring[1])
    undo = _undo(world, batch_id, [0])
    _approve(world, undo)
    monkeypatch.setattr(batch_undo_guard, "MAX_LATER", 2)
    batch_execute.execute_batch(world.services, undo)
    (item,) = _items(world, undo)
    assert item.state == "executed", item.reason
    assert _status(world, ring[0]) == "active"


def test_a_whole_batch_undo_leaves_out_items_another_undo_carries(world: World) -> None:
    """A pending split-out undo of item 1 does not block the whole-batch undo (G4): it undoes
    items 0 and 2 and names item 1 as left out, with the request that carries it; once every
    item is carried, a whole-batch undo is refused (409)."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    split = _split_request(world, _undo(world, batch_id, [1]))
    undone = batch_undo.undo_batch_or_replay(world.services, world.actor("e-3002"), batch_id)
    assert undone.left_out == [
        {"position": 1, "account": ring[1], "undone_by": {"request": split.id}}
    ]
    with world.services.database.read() as session:
        carried = session.scalars(
            select(BatchItemRow.reverts_item_id).where(BatchItemRow.batch_id == undone.batch_id)
        )
        originals = _items(world, batch_id)
        assert sorted(carried) == sorted([originals[0].id, originals[2].id])
    with pytest.raises(Conflict, match="already undoes"):
        _undo(world, batch_id, by="e-3003")


def test_the_log_read_once_for_a_chunk_finds_changes_whatever_the_order_asked(
    world: World,
) -> None:
    """`Later` reads the log once for many items: asked first about a late seq, then about
    an earlier one, it reads the range in between too and finds the change there."""
    ring = seed_ring(world, 2)
    batch_id = _later_lift_and_suspend(world, ring)
    with world.services.database.transaction() as session:
        seqs = []
        for item in _items(world, batch_id):
            logged = batch_undo_guard._execution_event(session, item)
            assert not isinstance(logged, str)
            seqs.append(logged[0])
        later = batch_undo_guard.Later(world.services, session)
        assert later.held(ring[0], 10**9) is None
        assert later.held(ring[1], seqs[1]) is None
        held = later.held(ring[0], seqs[0])
        assert held is not None
        assert "superseded" in held.why


@pytest.mark.parametrize("positions", [None, [0]])
def test_items_set_reverted_in_the_store_are_caught_not_believed(
    world: World, positions: list[int] | None
) -> None:
    """Attack H5 (session 14): every executed item set `reverted` by a plain UPDATE (as
    foureyes' own database role may) made each undo answer "nothing to undo" (or "it was undone
    already"), with no alert. The items are compared with the log first: refused as altered,
    with the high `batch_tampered` alert."""
    batch_id = _executed(world, seed_ring(world, 2))
    with world.services.database.engine.begin() as connection:
        connection.execute(
            update(BatchItemRow).where(BatchItemRow.batch_id == batch_id).values(state="reverted")
        )
    with pytest.raises(Conflict, match="not what its log and approved manifest prove"):
        batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=positions)
    with world.services.database.read() as session:
        alerts = session.scalars(
            select(AlertRow).where(AlertRow.detector == "batch_tampered")
        ).all()
    assert alerts
