"""Batches on the demo world (SQLite and PostgreSQL): submission, the manifest's errors, the
split-out and denied items, approval, execution item by item, and the membership proofs."""

from __future__ import annotations

import pytest
from tests.batches import event_kinds, review, seed_ring, show, submit
from tests.worlds import World

from foureyes.audit.merkle import MerkleVerificationError
from foureyes.workflow import batch_execute, batch_manifest, batch_views


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
