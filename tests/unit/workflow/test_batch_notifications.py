"""Batch notifications, in the outbox: the eligible approvers of a pending batch are asked
for a review; its requester hears of the decision and of the end (with how many items
failed and were cancelled). No card names an account of the manifest or a param value, nor what
an integrity check found."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from tests.batches import approved, review, seed_ring, submit
from tests.dba import tamper
from tests.worlds import World

from foureyes.errors import Conflict
from foureyes.store.tables import BatchItemRow, OutboxRow
from foureyes.workflow import batch_cancel, batch_execute, batch_notify
from foureyes.workflow.away import set_away


def outbox(world: World, kind: str | None = None) -> list[OutboxRow]:
    with world.services.database.read() as session:
        query = select(OutboxRow).order_by(OutboxRow.id)
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        return list(session.scalars(query))


def to_people(world: World, kind: str) -> list[OutboxRow]:
    """The messages of `kind` to people (the batch rule's channels hear of it too)."""
    return [row for row in outbox(world, kind) if row.to_staff is not None]


def assert_names_no_item(rows: list[OutboxRow], ring: list[str]) -> None:
    for row in rows:
        text = row.subject + row.body + json.dumps(row.details)
        assert not [ref for ref in ring if ref in text or ref.partition(":")[2] in text]


def test_approvers_are_asked_and_the_requester_hears_of_the_approval_and_the_end(
    world: World,
) -> None:
    ring = seed_ring(world, 4, prefix="quiet")
    batch_id = approved(world, ring)
    asked = outbox(world, batch_notify.REVIEW_NEEDED)
    people = {row.to_staff for row in asked}
    assert {"e-3002", "e-3003"} <= people
    assert "e-3001" not in people  # never the requester
    card = asked[0].details
    assert card is not None
    assert (card["request_id"], card["action"], card["requester"]) == (
        batch_id,
        "account.suspend",
        "e-3001",
    )
    assert card["link"] == f"/console/batches/{batch_id}"
    assert card["account"] == f"4 account(s) in batch {batch_id}"
    assert card["params"] == []
    [told] = to_people(world, "batch.approved")
    assert told.to_staff == "e-3001"
    assert batch_execute.execute_batch(world.services, batch_id).executed == 4
    [ended] = to_people(world, "batch.executed")
    assert ended.to_staff == "e-3001"
    assert ended.details is not None
    assert ended.details["reason"] == "4 executed, 0 failed, 0 cancelled"
    assert_names_no_item(outbox(world), ring)


def test_the_requester_hears_of_a_decline(world: World) -> None:
    ring = seed_ring(world, 2, prefix="declined")
    batch_id = submit(world, ring)
    review(world, batch_id, "e-3002", decision="deny")
    [told] = to_people(world, "batch.declined")
    assert (told.to_staff, told.details["request_id"] if told.details else None) == (
        "e-3001",
        batch_id,
    )
    assert_names_no_item([told], ring)


def test_an_approver_away_is_not_asked_their_eligible_delegate_is(world: World) -> None:
    today = world.clock.now.date()
    set_away(world.services, world.actor("e-3002"), today, today, "e-3003")
    ring = seed_ring(world, 2, prefix="awaybatch")
    submit(world, ring)
    asked = {row.to_staff: row.body for row in outbox(world, batch_notify.REVIEW_NEEDED)}
    assert "e-3002" not in asked
    assert "for e-3002, who is away" in asked["e-3003"]


def test_the_batch_rules_notify_channel_hears_of_every_step(world: World) -> None:
    # The example batch rule says `notify: [security]`, as request rules do.
    ring = seed_ring(world, 3, prefix="watched")
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    other = submit(world, seed_ring(world, 2, prefix="dropped"))
    batch_cancel.cancel_batch(world.services, world.actor("e-3001"), other)
    told = [row for row in outbox(world) if row.channel == "security"]
    kinds = [(row.kind, row.details and row.details["request_id"]) for row in told]
    assert [k for k, b in kinds if b == batch_id] == [
        "batch.pending",
        "batch.approved",
        "batch.executed",
    ]
    assert [k for k, b in kinds if b == other] == ["batch.pending", "batch.cancelled"]
    assert_names_no_item(told, ring)


def _make_vit(world: World, ref: str) -> None:
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ref.partition(":")[2],
    )


def test_a_cancellation_by_foureyes_names_no_item(world: World) -> None:
    """An account turned vit between two approvals cancels the batch: its requester hears that
    foureyes cancelled it, not which account no longer rides (nor that it became vit)."""
    ring = seed_ring(world, 3, prefix="turned")
    batch_id = submit(world, ring)
    review(world, batch_id, "e-3002")
    _make_vit(world, ring[1])
    with pytest.raises(Conflict):
        review(world, batch_id, "e-3003")
    [told] = to_people(world, "batch.cancelled")
    assert told.details is not None
    assert told.details["reason"].startswith("cancelled by foureyes")
    assert_names_no_item([told], ring)


def test_a_batch_stopped_by_an_integrity_check_says_only_that(world: World) -> None:
    """A re-targeted item stops the batch: its items are all settled cancelled, and its
    requester is told an integrity check stopped it, nothing of what was found."""
    ring = seed_ring(world, 3, prefix="stopped")
    batch_id = approved(world, ring)
    tamper(
        world.services.database,
        "UPDATE batch_items SET account_ref = :ref WHERE batch_id = :id AND position = 2",
        ref="chirp:elsewhere",
        id=batch_id,
    )
    assert batch_execute.execute_batch(world.services, batch_id).state == "cancelled"
    with world.services.database.read() as session:
        states = set(
            session.scalars(select(BatchItemRow.state).where(BatchItemRow.batch_id == batch_id))
        )
    assert states == {"cancelled"}
    [told] = to_people(world, "batch.cancelled")
    assert told.details is not None
    assert told.details["reason"] == "stopped by an integrity check; oversight was told"
    assert "digest" not in told.body
    assert_names_no_item([told], [*ring, "chirp:elsewhere"])


def test_items_a_re_check_cancels_are_counted_cancelled_not_failed(world: World) -> None:
    ring = seed_ring(world, 3, prefix="counted")
    batch_id = approved(world, ring)
    _make_vit(world, ring[0])
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert (progress.executed, progress.failed) == (2, 0)
    [ended] = to_people(world, "batch.executed")
    assert ended.details is not None
    assert ended.details["reason"] == "2 executed, 0 failed, 1 cancelled"
