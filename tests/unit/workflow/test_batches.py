"""Batches on the demo world (SQLite and PostgreSQL): submission, the manifest's errors, the
split-out and denied items, approval, execution item by item, and the membership proofs."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.batches import (
    approved,
    counts,
    event_kinds,
    make_big_vit,
    review,
    seed_big,
    seed_ring,
    show,
    submit,
)
from tests.worlds import World, as_remote

from foureyes.audit.merkle import MerkleVerificationError
from foureyes.connectors.base import ExecutionOrder, ExecutionResult
from foureyes.connectors.demo_tables import ChirpAccountRow, ChirpAppliedRow
from foureyes.store.tables import BatchItemRow, BatchRow
from foureyes.workflow import batch_execute, batch_integrity, batch_manifest, batch_views


def test_a_batch_runs_item_by_item_once_approved(world: World) -> None:
    bots = seed_ring(world, 20)
    batch_id = submit(world, bots)
    assert show(world, batch_id)["state"] == "pending"
    assert review(world, batch_id, "e-3002") == "pending"
    assert review(world, batch_id, "e-3003") == "approved"
    progress = batch_execute.execute_batch(world.services, batch_id, chunk=7)
    assert (progress.state, progress.executed, progress.failed) == ("executed", 20, 0)
    shown = show(world, batch_id)
    assert shown["executed"] == 20
    assert shown["progress"]["percent"] == 100
    assert {i["state"] for i in shown["items"]} == {"executed"}
    for bot in bots:
        assert world.chirp(bot.split(":")[1])["status"] == "suspended"
    kinds = event_kinds(world, batch_id)
    assert kinds.count("batch.item.executed") == 20
    assert {"batch.submitted", "batch.approved", "batch.executing", "batch.executed"} <= set(kinds)
    # Once done, nothing runs twice.
    again = batch_execute.execute_batch(world.services, batch_id)
    assert again.executed == 0


def test_every_item_has_a_membership_proof_the_log_verifier_accepts(world: World) -> None:
    bots = seed_ring(world, 11)
    batch_id = submit(world, bots)
    digest = show(world, batch_id)["digest"]
    for position in range(11):
        proof = batch_views.prove(world.services, world.actor("e-3001"), batch_id, position)
        assert proof["root"] == digest
        batch_manifest.verify_membership(proof)
    forged = batch_views.prove(world.services, world.actor("e-3001"), batch_id, 3)
    forged["item_digest"] = "00" * 32
    with pytest.raises(MerkleVerificationError):
        batch_manifest.verify_membership(forged)
    moved = batch_views.prove(world.services, world.actor("e-3001"), batch_id, 3)
    moved["leaf_index"] = 4
    with pytest.raises(MerkleVerificationError):
        batch_manifest.verify_membership(moved)


def test_a_chunk_is_carried_out_in_bulk_and_a_refused_item_fails_alone(world: World) -> None:
    bots = seed_ring(world, 6)
    batch_id = approved(world, bots)
    # Suspended on the platform after approval: the platform refuses to suspend it again.
    with world.services.database.transaction() as session:
        session.execute(
            update(ChirpAccountRow).where(ChirpAccountRow.id == "bot2").values(status="suspended")
        )
    progress = batch_execute.execute_batch(world.services, batch_id, chunk=4)
    assert (progress.state, progress.executed, progress.failed) == ("executed", 5, 1)
    items = {i["account"]: i for i in show(world, batch_id)["items"]}
    assert items["chirp:bot2"]["state"] == "failed"
    assert "it is suspended" in items["chirp:bot2"]["reason"]
    kinds = event_kinds(world, batch_id)
    assert (kinds.count("batch.item.executed"), kinds.count("batch.item.failed")) == (5, 1)
    with world.services.database.read() as session:
        keys = set(session.scalars(select(ChirpAppliedRow.idempotency_key)))
    executed = {i["id"] for i in items.values() if i["state"] == "executed"}
    assert executed <= keys
    assert items["chirp:bot2"]["id"] not in keys  # the refused item left no platform record


def test_a_policy_change_between_chunks_stops_the_items_it_no_longer_allows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = seed_ring(world, 3, prefix="small")
    big = seed_big(world, 3)
    batch_id = approved(world, [*small, *big])
    # After the first chunk, a policy under which accounts of 50 followers are very important.
    real = batch_execute._chunk
    between: list[tuple[int, int, int, int]] = []

    def chunk_then_change(*args: Any, **kwargs: Any) -> bool:
        done = real(*args, **kwargs)
        if not between:
            between.append(counts(show(world, batch_id)))
            make_big_vit(world)
        return done

    monkeypatch.setattr(batch_execute, "_chunk", chunk_then_change)
    progress = batch_execute.execute_batch(world.services, batch_id, chunk=2)
    assert (progress.state, progress.executed, progress.cancelled) == ("executed", 3, 3)
    # Mid-run, the items not yet carried out count as pending; at the end, as cancelled.
    assert between == [(2, 0, 0, 4)]
    assert counts(show(world, batch_id)) == (3, 0, 3, 0)
    items = {i["account"]: i for i in show(world, batch_id)["items"]}
    assert {items[r]["state"] for r in small} == {"executed"}
    assert {items[r]["state"] for r in big} == {"cancelled"}
    assert all("re-check at execution" in items[r]["reason"] for r in big)
    for ref in big:
        assert world.chirp(ref.split(":")[1])["status"] == "active"
    kinds = event_kinds(world, batch_id)
    assert kinds.count("batch.item.cancelled") == 3
    assert kinds.index("batch.item.cancelled") > kinds.index("batch.executing")  # per chunk


def test_the_start_of_runs_cancellations_are_counted_with_the_rest(world: World) -> None:
    small = seed_ring(world, 4, prefix="small")
    big = seed_big(world, 2)
    batch_id = approved(world, [small[0], big[0], *small[1:], big[1]])
    # One item the platform refuses (already suspended), and a policy that, before the run
    # starts, makes the big accounts very important: they no longer ride in the batch.
    with world.services.database.transaction() as session:
        session.execute(
            update(ChirpAccountRow).where(ChirpAccountRow.id == "small2").values(status="suspended")
        )
    make_big_vit(world)
    progress = batch_execute.execute_batch(world.services, batch_id, chunk=2)
    assert (progress.state, progress.executed, progress.failed, progress.cancelled) == (
        "executed",
        3,
        1,
        2,
    )
    view = show(world, batch_id)
    assert counts(view) == (3, 1, 2, 0)
    kinds = event_kinds(world, batch_id)
    assert kinds.count("batch.item.cancelled") == 2
    # Both cancelled by the start's re-check, before the batch moved to executing.
    assert kinds.index("batch.executing") > len(kinds) - 1 - kinds[::-1].index(
        "batch.item.cancelled"
    )
    # The batch's end (its `batch.executed` event, its messages) says the same counts.
    with world.services.database.read() as session:
        row = session.get(BatchRow, batch_id)
        assert row is not None
        assert batch_integrity.counts(row) == {
            "items": 6,
            "executed": 3,
            "failed": 1,
            "cancelled": 2,
        }


def test_a_remote_items_lease_is_renewed_while_its_call_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bots = seed_ring(world, 2)
    chirp = world.services.connector("chirp")
    as_remote(monkeypatch, chirp)
    monkeypatch.setattr(world.services, "execution_lease", timedelta(milliseconds=300))
    batch_id = approved(world, bots)
    real = chirp.execute
    seen: list[bool] = []

    def slow_call(order: ExecutionOrder) -> ExecutionResult:
        if not seen:
            # The call outlives its first lease; the heartbeat must hold the item meanwhile.
            world.clock.advance(seconds=60)
            deadline = time.monotonic() + 30
            while True:
                with world.services.database.transaction() as session:
                    taken = batch_execute._next_items(session, batch_id, world.clock(), 10)
                    held = order.idempotency_key not in {i.id for i in taken}
                if held or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            seen.append(held)
        return real(order)

    monkeypatch.setattr(chirp, "execute", slow_call)
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert seen == [True]  # no other worker could take the item while its call ran
    assert (progress.state, progress.executed) == ("executed", 2)


def test_a_forged_extra_item_never_shows_more_than_done(world: World) -> None:
    """Batch attack F6: an item row added behind foureyes to an executed batch showed `done 3`
    of `total 2`, `percent 150`. The share is capped and the view says what it found."""
    ring = seed_ring(world, 2)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    with world.services.database.transaction() as session:
        session.add(
            BatchItemRow(
                id="forged-item",
                batch_id=batch_id,
                position=2,
                account_ref="chirp:president",
                digest="0" * 64,
                state="executed",
                attempt=1,
            )
        )
    progress = show(world, batch_id)["progress"]
    assert progress["percent"] == 100
    assert progress["problem"] == "the store holds 3 items for this batch, submitted with 2"


def test_csv_errors_name_the_files_line_after_a_cell_spanning_two() -> None:
    """Batch attack F6: after a quoted cell holding a line break, errors named the CSV record
    (one less than the file's line an editor shows)."""
    text = 'account\n"chirp:a\nb"\nchirp:ok\nnot-a-ref\n'
    good, errors = batch_manifest.parse(None, text)
    assert [line.line for line in good] == [4]
    assert [(e["line"], e["error"]) for e in errors] == [
        (2, "holds spaces, control or invisible characters"),
        (5, "not of the form platform:id"),
    ]
