"""Attack on batch undo, F1 and F3 (both databases, the `world` fixture).

F1: the undo guards' re-checks at record time (`check_recordable` in the reverse batch's
transaction, `check_split_recordable` in a split-out request's) named the undo that won a race
to whoever lost it, and the loser's batch kept that name in its `split_requests` for good.
Now the refusal names it only to whoever may see it, and what a batch keeps names none.

F3: cancelling, declining or expiring an undo batch left its split-out undo request open: one
approval could then carry out the most sensitive part of an undo its requester withdrew or
its reviewers vetoed. Now those requests end with it, in its transaction, with their events."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from foureyes.errors import Conflict, FoureyesError
from foureyes.store.tables import BatchItemRow, BatchRow, EventRow, RequestRow
from foureyes.workflow import (
    batch_cancel,
    batch_events,
    batch_execute,
    batch_submit,
    batch_undo,
    batch_undo_guard,
    batch_views,
    batch_worker,
    execute,
)
from tests.batches import approved, review, seed_ring
from tests.dba import tamper
from tests.worlds import World


def _executed(world: World, ring: list[str]) -> str:
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    return batch_id


def _undo(
    world: World, batch_id: str, positions: list[int] | None = None, by: str = "e-3001"
) -> str:
    return batch_undo.undo_batch(world.services, world.actor(by), batch_id, positions=positions)


def _make_vit(world: World, ref: str) -> None:
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ref.split(":", 1)[1],
    )


def _batch(world: World, batch_id: str) -> BatchRow:
    with world.services.database.read() as session:
        row = session.get(BatchRow, batch_id)
        assert row is not None
        return row


def _request(world: World, request_id: str) -> RequestRow:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def _bodies(world: World, request_id: str) -> list[bytes]:
    with world.services.database.read() as session:
        return [
            bytes(b)
            for b in session.scalars(select(EventRow.body).where(EventRow.request_id == request_id))
        ]


def _kinds(world: World, request_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(EventRow.kind)
                .where(EventRow.request_id == request_id)
                .order_by(EventRow.seq)
            )
        )


# --- F1: who is told which undo won ---------------------------------------------------------


@pytest.mark.parametrize("sees", [False, True])
def test_an_undo_refused_at_its_recording_names_the_winner_only_to_whoever_may_see_it(
    world: World, monkeypatch: pytest.MonkeyPatch, sees: bool
) -> None:
    """Another person's undo of the same items is recorded between the caller's look and
    their write transaction (the race of F1 a, made deterministic): the 409 names it only
    if the caller may see it."""
    batch_id = _executed(world, seed_ring(world, 3))
    raced: list[str] = []
    resolve = batch_submit.resolve

    def racing_resolve(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append("")
            raced.append(_undo(world, batch_id, [0, 1], by="e-3002"))
        return resolve(*args, **kwargs)

    may_see = batch_views.may_see

    def filtered(services: Any, session: Any, batch: BatchRow, actor: Any) -> bool:
        if batch.id in raced:
            return sees
        return may_see(services, session, batch, actor)

    monkeypatch.setattr(batch_submit, "resolve", racing_resolve)
    monkeypatch.setattr(batch_views, "may_see", filtered)
    with pytest.raises(Conflict) as refused:
        _undo(world, batch_id, [0, 1])
    winner = raced[1]
    told = refused.value.message + str(refused.value.details)
    if sees:
        assert f"batch {winner} already undoes" in refused.value.message
        assert refused.value.details.get("batch_id") == winner
    else:
        assert winner not in told
        assert "another undo not yet ended" in refused.value.message


def test_a_split_out_undo_refused_at_its_submit_keeps_no_other_undos_id(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F1 b: the item is split out (its account protected since); another person's undo of
    it records its split-out request between the caller's batch and the caller's split-out
    submit. The caller's batch keeps why, naming no request of another person, in its row
    and in its `batch.split_out` event."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    other: list[str] = []
    split_out = batch_submit.split_out

    def racing_split_out(*args: Any, **kwargs: Any) -> Any:
        if not other:
            other.append("")
            other.append(_undo(world, batch_id, [1], by="e-3002"))
        return split_out(*args, **kwargs)

    monkeypatch.setattr(batch_submit, "split_out", racing_split_out)
    mine = _undo(world, batch_id, [1])
    (theirs,) = _batch(world, other[1]).split_requests
    assert theirs["request_id"]
    (kept,) = _batch(world, mine).split_requests
    assert kept["request_id"] is None
    assert kept["error"] == batch_undo_guard.OPEN_UNDO.format(batch=batch_id)
    assert all(str(theirs["request_id"]).encode() not in body for body in _bodies(world, mine))


def test_what_a_batch_keeps_of_a_conflict_names_nobody() -> None:
    """Any other Conflict (one pending request per account names the pending one to the
    caller if they may see it) is kept as a fixed text; the undo guards' own are kept."""
    named = Conflict("request 5af5516f (account.unsuspend) is already pending on chirp:x")
    assert batch_submit._kept(named) == batch_submit.SPLIT_CONFLICT
    guarded = batch_undo_guard.UndoRefused("item 2 of batch b is reverted")
    assert batch_submit._kept(guarded) == "item 2 of batch b is reverted"


# --- F3: an undo batch that ends takes its split-out requests with it -------------------------


def _undo_with_split(world: World) -> tuple[str, str, str, list[str]]:
    """A batch B suspended three accounts; the second is protected since; B's undo R is
    pending (items 0 and 2) with the split-out request Q for item 1. B, R, Q and the ring."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    undo = _undo(world, batch_id)
    (split,) = _batch(world, undo).split_requests
    assert _request(world, split["request_id"]).state == "pending"
    return batch_id, undo, str(split["request_id"]), ring


def _end(world: World, undo: str, how: str) -> None:
    if how == "cancel":
        batch_cancel.cancel_batch(world.services, world.actor("e-3001"), undo, "changed my mind")
    elif how == "decline":
        assert review(world, undo, "e-3002", decision="deny") == "declined"
    else:
        world.clock.advance(days=30)
        assert batch_worker.expire_batches(world.services) == [undo]


@pytest.mark.parametrize(
    ("how", "state"),
    [
        ("cancel", "cancelled"),
        ("decline", "declined"),
        ("expire", "expired"),
    ],
)
def test_an_undo_batch_that_ends_cancels_its_split_out_requests(
    world: World, how: str, state: str
) -> None:
    batch_id, undo, split_id, ring = _undo_with_split(world)
    _end(world, undo, how)
    assert _batch(world, undo).state == state
    request = _request(world, split_id)
    assert request.state == "cancelled"
    assert f"undo batch it was split out of, which was {state}" in (request.reason or "")
    assert undo not in (request.reason or "")  # its reviewers may not see the batch
    assert _kinds(world, split_id)[-1] == "request.cancelled"
    ended = [b for b in _bodies(world, undo) if f'"kind":"batch.{state}"'.encode() in b]
    assert len(ended) == 1
    assert f'"split_requests_cancelled":["{split_id}"]'.encode() in ended[0]
    # Nobody can carry it out now: the protected account stays as the batch left it.
    with pytest.raises(FoureyesError):
        world.review("e-3003", split_id)
    with pytest.raises(FoureyesError):
        execute.execute(world.services, split_id)
    assert str(world.chirp(ring[1].split(":", 1)[1])["status"]) == "suspended"
    with world.services.database.read() as session:
        item = session.scalar(
            select(BatchItemRow).where(
                BatchItemRow.batch_id == batch_id, BatchItemRow.position == 1
            )
        )
        assert item is not None
        assert item.state == "executed"


def test_a_split_out_request_of_an_undo_ended_before_it_was_kept_is_cancelled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo batch is cancelled after its split-out request was submitted, before the
    batch kept its id (the gap between `split_out`'s transactions): it is cancelled there."""
    ring = seed_ring(world, 3)
    batch_id = _executed(world, ring)
    _make_vit(world, ring[1])
    keep = batch_events.keep_split_requests

    def cancelled_first(services: Any, undo: str, made: Any, *, actor: str) -> None:
        batch_cancel.cancel_batch(services, world.actor("e-3001"), undo, "changed my mind")
        keep(services, undo, made, actor=actor)

    monkeypatch.setattr(batch_events, "keep_split_requests", cancelled_first)
    undo = _undo(world, batch_id)
    (split,) = _batch(world, undo).split_requests
    assert _batch(world, undo).state == "cancelled"
    assert _request(world, split["request_id"]).state == "cancelled"
    kept = [b for b in _bodies(world, undo) if b'"kind":"batch.split_out"' in b]
    assert f'"cancelled":["{split["request_id"]}"]'.encode() in kept[0]


def test_an_undo_batch_carried_out_leaves_its_split_out_requests_to_their_own_approval(
    world: World,
) -> None:
    """Only an end without carrying out takes them: the undo batch executed, its split-out
    request stays pending for its own approvers."""
    _, undo, split_id, _ = _undo_with_split(world)
    review(world, undo, "e-3002")
    assert review(world, undo, "e-3003") == "approved"
    batch_execute.execute_batch(world.services, undo)
    assert _batch(world, undo).state == "executed"
    assert _request(world, split_id).state == "pending"
