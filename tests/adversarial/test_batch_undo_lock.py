"""Attack on batch undo, F0 and F2: a change committed between an undo's "later change" check
and its write must never be reversed, and only changes count toward the bound.

F0: the chunk's check read the log before the platform's rows were locked; on PostgreSQL a
request committing in between was invisible to it and the undo wrote over it. The check is
now made again under the accounts' lock, in the write's transaction (`batch_execute.
_undone_here`, `batch_undo_guard.unless_superseded` for a split-out undo). The races are made
deterministic by running the other change, in its own thread and transaction, at the exact
point between the check and the write (no sleeps). On a platform outside foureyes' database
an undo item is held while another execution on its account is in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from foureyes.core.events import lock_request, move
from foureyes.model import RequestState
from foureyes.store.tables import BatchItemRow, BatchRow, EventRow, RequestRow
from foureyes.workflow import batch_execute, batch_undo, batch_undo_guard, execute, submit
from tests.batches import approved, review, seed_ring
from tests.dba import tamper
from tests.worlds import World, as_remote


def _items(world: World, batch_id: str) -> list[BatchItemRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id)
                .order_by(BatchItemRow.position)
            )
        )


def _status(world: World, ref: str) -> str:
    return str(world.chirp(ref.split(":", 1)[1])["status"])


def _executed(world: World, ring: list[str]) -> str:
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    return batch_id


def _approved_undo(world: World, batch_id: str, positions: list[int] | None = None) -> str:
    undo = batch_undo.undo_batch(
        world.services, world.actor("e-3001"), batch_id, positions=positions
    )
    review(world, undo, "e-3002")
    assert review(world, undo, "e-3003") == "approved"
    return undo


def _state(world: World, request_id: str) -> str:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.state


def _single(world: World, action: str, ref: str, by: str, approvers: list[str]) -> str:
    """A separate request on `ref`, reviewed by `approvers` as long as it waits for them, and
    carried out."""
    request_id = submit.submit(
        world.services,
        world.actor(by),
        submit.Submission(action=action, account=ref, justification="CASE-99"),
    )
    for approver in approvers:
        if _state(world, request_id) == "pending":
            world.review(approver, request_id)
    if _state(world, request_id) == "approved":
        assert execute.execute(world.services, request_id) is not None
    assert _state(world, request_id) == "executed"
    return request_id


def _resuspend(world: World, ref: str) -> None:
    """A new incident: the account is lifted and suspended again by separate requests. An
    undo of the old suspension carried out after this would reverse the new one."""
    _single(world, "account.unsuspend", ref, "e-3002", ["e-3003"])
    _single(world, "account.suspend", ref, "e-3003", ["e-3001", "e-3002"])


def _in_another_transaction(work: Callable[[], None]) -> None:
    """`work` in its own thread (its own connection and transactions), waited for: it must
    commit while the caller's transaction is open, or the race is not the one tested."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported below
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the other change waited on a lock of the undo's transaction"
    assert not failed, failed


def _between_check_and_write(
    monkeypatch: pytest.MonkeyPatch, target: Any, name: str, work: Callable[[], None]
) -> list[str]:
    """Run `work` once, committed by another transaction, the first time `target.name` is
    called (the point after the undo's check and before its write)."""
    real = getattr(target, name)
    ran: list[str] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not ran:
            ran.append(name)
            _in_another_transaction(work)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, hooked)
    return ran


@pytest.mark.pg_only
def test_a_change_committed_between_a_chunks_check_and_its_write_is_never_reversed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F0, as reproduced: the reverse batch's chunk checked its items against the log; before
    it locks the accounts, another person re-suspends one of them for a new case and
    commits. That item fails (held under the lock, nothing changed on the platform), the new
    suspension stands, the original item stays executed; the chunk's other items are
    undone."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    undo = _approved_undo(world, batch_id)
    world.clock.advance(minutes=1)
    ran = _between_check_and_write(
        monkeypatch, batch_execute, "_local_results", lambda: _resuspend(world, ring[1])
    )
    progress = batch_execute.execute_batch(world.services, undo)
    assert ran
    assert (progress.executed, progress.failed) == (2, 1)
    states = [(i.state, i.reason) for i in _items(world, undo)]
    assert [s for s, _ in states] == ["executed", "failed", "executed"]
    reason = states[1][1] or ""
    assert "superseded" in reason
    assert batch_undo_guard.HELD_UNDER_LOCK in reason
    assert [_status(world, r) for r in ring] == ["active", "suspended", "active"]
    assert [i.state for i in _items(world, batch_id)] == ["reverted", "executed", "reverted"]
    with world.services.database.read() as session:
        kinds = list(
            session.scalars(
                select(EventRow.kind)
                .where(EventRow.request_id == undo, EventRow.account_ref == ring[1])
                .order_by(EventRow.seq)
            )
        )
    assert kinds == ["batch.item.failed"]  # never an execution of it


@pytest.mark.pg_only
def test_the_check_under_the_lock_is_what_catches_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race with the re-check under the lock taken away: the undo writes over the
    new suspension (the defect F0 reported), so the test above tests the fix."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    undo = _approved_undo(world, batch_id)
    world.clock.advance(minutes=1)
    monkeypatch.setattr(batch_undo_guard.Later, "catch_up", lambda self: None)
    _between_check_and_write(
        monkeypatch, batch_execute, "_local_results", lambda: _resuspend(world, ring[0])
    )
    batch_execute.execute_batch(world.services, undo)
    assert [i.state for i in _items(world, undo)] == ["executed", "executed"]
    assert _status(world, ring[0]) == "active"  # the new suspension reversed


@pytest.mark.pg_only
def test_a_change_committed_between_a_split_out_undos_check_and_its_write_is_never_reversed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F0 for an undo item split out as its own request (its account protected since): the
    change commits after `split_undo_problem` read the log and before the platform's row
    is locked. The request fails saying why; the new suspension stands."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ring[0].split(":", 1)[1],
    )
    undo = batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=[0])
    with world.services.database.read() as session:
        row = session.get(BatchRow, undo)
        assert row is not None
        (split,) = row.split_requests
        split_id = str(split["request_id"])
    world.review("e-3002", split_id)
    world.clock.advance(minutes=1)
    real = batch_undo_guard.split_undo_problem
    ran: list[str] = []

    def hooked(*args: Any, **kwargs: Any) -> str | None:
        found = real(*args, **kwargs)
        if not ran:
            ran.append("")
            _in_another_transaction(lambda: _resuspend(world, ring[0]))
        return found

    monkeypatch.setattr(batch_undo_guard, "split_undo_problem", hooked)
    outcome = execute.execute(world.services, split_id)
    assert ran
    assert outcome is not None
    assert outcome.state.value == "failed"
    with world.services.database.read() as session:
        request = session.get(RequestRow, split_id)
        assert request is not None
        assert "superseded" in (request.reason or "")
        assert batch_undo_guard.HELD_UNDER_LOCK in (request.reason or "")
    assert _status(world, ring[0]) == "suspended"
    assert _items(world, batch_id)[0].state == "executed"


def _blind_first_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk's first look at the log finds nothing (as if the later change committed
    after it); only the look under the accounts' lock (after `catch_up`) sees the log."""
    judged = batch_undo_guard.Later._judged
    looked: set[int] = set()
    catch_up = batch_undo_guard.Later.catch_up

    def blind(self: batch_undo_guard.Later, account_ref: str, seq: int) -> Any:
        return judged(self, account_ref, seq) if id(self) in looked else None

    def caught_up(self: batch_undo_guard.Later) -> None:
        looked.add(id(self))
        catch_up(self)

    monkeypatch.setattr(batch_undo_guard.Later, "_judged", blind)
    monkeypatch.setattr(batch_undo_guard.Later, "catch_up", caught_up)


def test_an_item_held_under_the_lock_changes_nothing_and_the_rest_go_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both databases: what the look under the lock finds undoes the platform's writes of
    the chunk (the savepoint), fails that item alone with its event, and carries out the
    others again; the counts add up."""
    ring = seed_ring(world, 4)
    batch_id = _executed(world, ring)
    undo = _approved_undo(world, batch_id)
    world.clock.advance(minutes=1)
    _resuspend(world, ring[1])
    _resuspend(world, ring[3])
    _blind_first_look(monkeypatch)
    progress = batch_execute.execute_batch(world.services, undo)
    assert (progress.executed, progress.failed) == (2, 2)
    items = _items(world, undo)
    assert [i.state for i in items] == ["executed", "failed", "executed", "failed"]
    assert all(batch_undo_guard.HELD_UNDER_LOCK in (items[n].reason or "") for n in (1, 3))
    assert [_status(world, r) for r in ring] == ["active", "suspended", "active", "suspended"]
    assert [i.state for i in _items(world, batch_id)] == [
        "reverted",
        "executed",
        "reverted",
        "executed",
    ]
    with world.services.database.read() as session:
        kinds = sorted(
            session.scalars(
                select(EventRow.kind).where(
                    EventRow.request_id == undo, EventRow.kind.like("batch.item.%")
                )
            )
        )
    assert kinds == ["batch.item.executed"] * 2 + ["batch.item.failed"] * 2


# --- a platform outside foureyes' database: an execution in flight holds the undo item -------


def _in_flight(world: World, action: str, ref: str, by: str, approvers: list[str]) -> str:
    """A request on `ref` claimed (`executing`): its call made or in flight, no outcome yet."""
    request_id = submit.submit(
        world.services,
        world.actor(by),
        submit.Submission(action=action, account=ref, justification="CASE-98"),
    )
    for approver in approvers:
        if _state(world, request_id) == "pending":
            world.review(approver, request_id)
    assert _state(world, request_id) == "approved"
    with world.services.database.transaction() as session:
        row = lock_request(session, request_id)
        move(
            world.services,
            session,
            row,
            RequestState.EXECUTING,
            actor=None,
            kind="request.executing",
            now=world.clock(),
        )
    return request_id


def test_a_remote_undo_item_is_held_while_another_execution_on_its_account_is_in_flight(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remote: an unsuspend of ring[0] is in flight (no event in the log yet); its undo item
    fails, the platform never called for it. A view in flight on ring[1] changes nothing
    and does not hold that item."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    undo = _approved_undo(world, batch_id)
    as_remote(monkeypatch, world.services.connector("chirp"))
    world.clock.advance(minutes=1)
    _in_flight(world, "account.unsuspend", ring[0], "e-3002", ["e-3003"])
    _in_flight(world, "account.view", ring[1], "e-2001", [])
    batch_execute.execute_batch(world.services, undo)
    first, second = _items(world, undo)
    assert first.state == "failed"
    assert "in flight" in (first.reason or "")
    assert "the platform was not called" in (first.reason or "")
    assert second.state == "executed", second.reason
    assert [_status(world, r) for r in ring] == ["suspended", "active"]
    assert [i.state for i in _items(world, batch_id)] == ["executed", "reverted"]


# --- F2: only changes count toward the bound --------------------------------------------------


def _view(world: World, ref: str) -> None:
    request_id = submit.submit(
        world.services,
        world.actor("e-2001"),
        submit.Submission(action="account.view", account=ref, justification="customer called"),
    )
    outcome = execute.execute(world.services, request_id, actor=world.actor("e-2001"))
    assert outcome is not None
    assert outcome.state.value == "executed"


def test_views_past_the_bound_never_hold_an_undo(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F2: views are executions (`request.executed`) of reads; more of them than the bound
    (2 here, 200,000 in use) leave the undo free to run."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    world.clock.advance(minutes=1)
    for _ in range(4):
        _view(world, ring[1])
    undo = _approved_undo(world, batch_id)
    monkeypatch.setattr(batch_undo_guard, "MAX_LATER", 2)
    batch_execute.execute_batch(world.services, undo)
    assert [i.state for i in _items(world, undo)] == ["executed", "executed"]
    assert [_status(world, r) for r in ring] == ["active", "active"]


def test_changes_past_the_bound_hold_the_undo_saying_what_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three changes of another account after the item, with room for two judged: the
    undo is held as unproven (fail closed), its reason saying changes are what count."""
    ring = seed_ring(world, 2)
    batch_id = _executed(
        world,
        ring,
    )
    world.clock.advance(minutes=1)
    _resuspend(world, ring[1])
    _single(world, "account.unsuspend", ring[1], "e-3002", ["e-3003"])
    undo = _approved_undo(world, batch_id, [0])
    monkeypatch.setattr(batch_undo_guard, "MAX_LATER", 2)
    batch_execute.execute_batch(world.services, undo)
    (item,) = _items(world, undo)
    assert item.state == "failed"
    assert "more than 2 changes to accounts" in (item.reason or "")
    assert "not reads" in (item.reason or "")
    assert _status(world, ring[0]) == "suspended"


def test_a_remote_split_out_undo_is_held_while_another_execution_on_its_account_is_in_flight(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for an undo item split out as its own request: cancelled at execution,
    saying why; the platform never called for it."""
    ring = seed_ring(world, 2)
    batch_id = _executed(world, ring)
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ring[0].split(":", 1)[1],
    )
    undo = batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=[0])
    with world.services.database.read() as session:
        row = session.get(BatchRow, undo)
        assert row is not None
        (split,) = row.split_requests
        split_id = str(split["request_id"])
    world.review("e-3002", split_id)
    as_remote(monkeypatch, world.services.connector("chirp"))
    world.clock.advance(minutes=1)
    _in_flight(world, "account.unsuspend", ring[0], "e-3002", ["e-3003"])
    outcome = execute.execute(world.services, split_id)
    assert outcome is not None
    assert outcome.state.value == "cancelled"
    assert "in flight" in (outcome.reason or "")
    assert _status(world, ring[0]) == "suspended"
    assert _items(world, batch_id)[0].state == "executed"
