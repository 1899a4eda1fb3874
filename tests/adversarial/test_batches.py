"""Attacks on batches: a protected account hidden in a manifest (plainly, pinned, by another
spelling or name), a manifest edited in the store after approval (re-targeted, re-digested,
shortened, approved by a forged review), a forged digest, approvals by the requester or twice,
a batch over a quota, a batch by a departing contractor. Each runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from foureyes.errors import Conflict, Forbidden, NotFound
from foureyes.store.database import Database
from foureyes.store.tables import (
    AlertRow,
    BatchItemRow,
    BatchRow,
    PinRow,
    QuotaUsageRow,
    RequestRow,
)
from foureyes.workflow import batch_execute, batch_manifest, batch_quota
from foureyes.workflow.batch_manifest import ManifestRefused
from tests.batches import approved, counts, review, seed_ring, show, submit
from tests.conftest import EXAMPLES
from tests.dba import tamper
from tests.worlds import World, make_world

PRESIDENT = "chirp:president"


def _nothing_recorded(world: World) -> None:
    with world.services.database.read() as session:
        assert session.scalar(select(func.count()).select_from(BatchRow)) == 0
        assert session.scalar(select(func.count()).select_from(BatchItemRow)) == 0


def _untouched(world: World, ref: str) -> None:
    assert world.chirp(ref.split(":", 1)[1])["status"] == "active"


# --- a protected account hidden in a batch ----------------------------------------------------


def test_a_vit_account_never_rides_in_a_batch(world: World) -> None:
    ring = seed_ring(world, 5)
    batch_id = submit(world, [*ring[:2], PRESIDENT, *ring[2:]])
    view = show(world, batch_id)
    assert [i["account"] for i in view["items"]] == ring
    assert [s["account"] for s in view["split_out"]] == [PRESIDENT]
    # It became its own request, decided and approved one by one.
    (made,) = view["split_requests"]
    with world.services.database.read() as session:
        request = session.get(RequestRow, made["request_id"])
        assert request is not None
        assert (request.account_ref, request.state) == (PRESIDENT, "pending")
    review(world, batch_id, "e-3002")
    review(world, batch_id, "e-3003")
    batch_execute.execute_batch(world.services, batch_id)
    _untouched(world, PRESIDENT)


def test_a_pinned_account_is_split_out_too(world: World) -> None:
    ring = seed_ring(world, 3)
    with world.services.database.transaction() as session:
        session.add(PinRow(account_ref=ring[1], pin="protected", created_at=world.clock()))
    view = show(world, submit(world, ring))
    assert [s["account"] for s in view["split_out"]] == [ring[1]]
    assert ring[1] not in [i["account"] for i in view["items"]]


@pytest.mark.parametrize(
    ("hidden", "why"),
    [
        ("chirp:President", "unknown account"),  # another case
        ("chirp:pres\u0456dent", "unknown account"),  # a Cyrillic i
        ("chirp:president\u200b", "invisible"),  # a zero-width space
        ("chirp: president", "spaces"),
        ("chirp:@president", "unknown account"),  # a handle, not the id
    ],
)
def test_a_vit_account_by_another_spelling_is_refused(world: World, hidden: str, why: str) -> None:
    ring = seed_ring(world, 3)
    with pytest.raises(ManifestRefused) as refused:
        submit(world, [*ring, hidden])
    (error,) = refused.value.details["errors"]
    assert error["line"] == 4
    assert why in error["error"]
    _nothing_recorded(world)


def test_the_same_account_twice_under_two_spellings_is_refused(world: World) -> None:
    # Fullwidth letters are the same reference once normalised: a duplicate, not a new item.
    with pytest.raises(ManifestRefused) as refused:
        submit(world, [PRESIDENT, "\uff43hirp:president"])
    assert refused.value.details["errors"][0]["error"] == "duplicate of line 1"
    _nothing_recorded(world)


# --- the store edited after approval ------------------------------------------------------------


def _cancelled_for_tampering(world: World, batch_id: str) -> None:
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert progress.executed == 0
    view = show(world, batch_id)
    assert view["state"] == "cancelled", view
    assert "re-check at execution failed" in view["reason"]
    with world.services.database.read() as session:
        detectors = set(session.scalars(select(AlertRow.detector)))
    assert "batch_tampered" in detectors
    _untouched(world, PRESIDENT)


def test_an_item_retargeted_after_approval_is_caught(world: World) -> None:
    batch_id = approved(world, seed_ring(world, 4))
    tamper(
        world.services.database,
        "UPDATE batch_items SET account_ref = :ref WHERE batch_id = :id AND position = 2",
        ref=PRESIDENT,
        id=batch_id,
    )
    _cancelled_for_tampering(world, batch_id)


def test_a_retargeted_item_with_digests_rewritten_to_match_is_caught(world: World) -> None:
    ring = seed_ring(world, 4)
    batch_id = approved(world, ring)
    database = world.services.database
    with database.read() as session:
        batch = session.get(BatchRow, batch_id)
        items = list(
            session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id)
                .order_by(BatchItemRow.position)
            )
        )
        assert batch is not None
        session.expunge_all()
    items[2].account_ref = PRESIDENT
    digests = []
    for item in items:
        digests.append(
            batch_manifest.item_digest(
                item_id=item.id,
                position=item.position,
                account=item.account_ref,
                action=batch.action,
                params=batch.params,
                justification=batch.justification,
                requester=batch.requester_id,
                reverts=None,
            )
        )
    tamper(
        database,
        "UPDATE batch_items SET account_ref = :ref, digest = :digest WHERE id = :id",
        ref=PRESIDENT,
        digest=digests[2],
        id=items[2].id,
    )
    # The reviews were bound to the old root: rewrite the batch's and the reviews' too.
    root = batch_manifest.root(digests)
    tamper(database, "UPDATE batches SET digest = :root WHERE id = :id", root=root, id=batch_id)
    tamper(
        database,
        "UPDATE batch_reviews SET digest = :root WHERE batch_id = :id",
        root=root,
        id=batch_id,
    )
    _cancelled_for_tampering(world, batch_id)


def test_an_item_removed_after_approval_is_caught(world: World) -> None:
    batch_id = approved(world, seed_ring(world, 4))
    tamper(
        world.services.database,
        "DELETE FROM batch_items WHERE batch_id = :id AND position = 3",
        id=batch_id,
    )
    _cancelled_for_tampering(world, batch_id)


def test_a_forged_approval_row_is_caught(world: World) -> None:
    batch_id = submit(world, seed_ring(world, 3))
    review(world, batch_id, "e-3002")
    digest = show(world, batch_id)["digest"]
    tamper(
        world.services.database,
        "INSERT INTO batch_reviews (batch_id, reviewer_id, identity, decision, comment, digest, "
        "created_at) VALUES (:id, 'e-3003', 'sam', 'approve', '', :digest, :at)",
        id=batch_id,
        digest=digest,
        at=datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
    )
    tamper(
        world.services.database, "UPDATE batches SET state = 'approved' WHERE id = :id", id=batch_id
    )
    _cancelled_for_tampering(world, batch_id)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE batch_items SET account_ref = 'chirp:president' WHERE batch_id = :id",
        "UPDATE batch_items SET digest = 'x' WHERE batch_id = :id",
        "UPDATE batches SET digest = 'x' WHERE id = :id",
        "UPDATE batches SET action = 'account.delete' WHERE id = :id",
        # 0019's columns, written once at submission (0020).
        "UPDATE batches SET idempotency_key = 'another' WHERE id = :id",
        "UPDATE batches SET idempotency_digest = 'x' WHERE id = :id",
        "UPDATE batch_items SET names = '[\"president\"]' WHERE batch_id = :id",
        "UPDATE batch_items SET names = NULL WHERE batch_id = :id",
        "DELETE FROM batch_items WHERE batch_id = :id",
        "DELETE FROM batches WHERE id = :id",
    ],
)
def test_foureyes_own_connection_cannot_edit_what_was_asked(world: World, statement: str) -> None:
    batch_id = submit(world, seed_ring(world, 2))
    with (
        pytest.raises((IntegrityError, DBAPIError)),
        world.services.database.transaction() as session,
    ):
        session.execute(text(statement), {"id": batch_id})


# --- reviews --------------------------------------------------------------------------------


def test_a_forged_digest_is_refused(world: World) -> None:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    other = show(world, submit(world, seed_ring(world, 3, prefix="other")))["digest"]
    for digest in (other, "00" * 32, show(world, batch_id)["digest"].upper()):
        with pytest.raises(Conflict, match="digest mismatch"):
            review(world, batch_id, "e-3002", digest=digest)
    assert show(world, batch_id)["reviews"] == []


def test_the_requester_cannot_approve_and_nobody_approves_twice(world: World) -> None:
    batch_id = submit(world, seed_ring(world, 3))
    with pytest.raises(Forbidden, match="requester"):
        review(world, batch_id, "e-3001")
    review(world, batch_id, "e-3002")
    with pytest.raises(Conflict, match="already reviewed"):
        review(world, batch_id, "e-3002")
    # A contractor (not an eligible approver of the batch rule) may not even see it: the
    # answer of an unknown id, never its state or digest check.
    with pytest.raises(NotFound, match="no batch"):
        review(world, batch_id, "c-3004")
    with pytest.raises(NotFound, match="no batch"):
        review(world, batch_id, "c-3004", digest="x")
    # Oversight sees it, but its review would not count.
    with pytest.raises(Forbidden, match="would not count"):
        review(world, batch_id, "e-4001")
    assert show(world, batch_id)["state"] == "pending"


def test_a_decline_by_an_eligible_approver_vetoes(world: World) -> None:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    assert review(world, batch_id, "e-3002", "deny") == "declined"
    assert batch_execute.execute_batch(world.services, batch_id).executed == 0
    for ref in ring:
        _untouched(world, ref)


# --- quotas and departing staff -------------------------------------------------------------------


QUOTA_POLICY = (
    (EXAMPLES / "policy.yaml")
    .read_text()
    .replace(
        "quotas:\n",
        "quotas:\n  - id: suspensions-per-person\n    actions: [account.suspend]\n"
        "    per: staff\n    limit: 10\n    window: 1h\n",
        1,
    )
)


def test_a_batch_over_a_quota_is_refused_whole(database: Database) -> None:
    world = make_world(database, QUOTA_POLICY)
    ring = seed_ring(world, 11)
    with pytest.raises(batch_quota.BatchOverQuota, match="suspensions-per-person"):
        submit(world, ring)
    _nothing_recorded(world)
    first = submit(world, ring[:6])
    with pytest.raises(batch_quota.BatchOverQuota, match="has 6"):
        submit(world, ring[6:])
    with world.services.database.read() as session:
        assert session.scalar(select(func.count()).select_from(QuotaUsageRow)) == 6
    assert show(world, first)["item_count"] == 6
    submit(world, ring[6:10])  # exactly at the limit


def test_a_departing_contractor_batch_carries_nothing(world: World) -> None:
    ring = seed_ring(world, 3)
    # Lee Park's contract ends 2027-03-31: two days before, every suspension is denied.
    world.clock.now = datetime(2027, 3, 29, 12, 0, tzinfo=UTC)
    view = show(world, submit(world, ring, by="c-3004"))
    assert view["item_count"] == 0
    assert view["state"] == "empty"
    assert {d["account"] for d in view["denied"]} == set(ring)


def test_a_contract_that_ends_before_execution_stops_the_batch(world: World) -> None:
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring, by="c-3004")
    world.clock.now = datetime(2027, 4, 1, 12, 0, tzinfo=UTC)  # past Lee Park's contract
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert (progress.executed, progress.cancelled) == (0, 3)
    view = show(world, batch_id)
    assert view["state"] == "cancelled"
    assert "c-3004" in view["reason"]
    assert counts(view) == (0, 0, 3, 0)
    for ref in ring:
        _untouched(world, ref)


def test_an_item_the_platform_refuses_fails_alone(world: World) -> None:
    ring = seed_ring(world, 4)
    locked = world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [{"id": "already-locked", "followers": 1, "verified": False, "status": "locked"}]
    )
    batch_id = approved(world, [*ring[:2], f"chirp:{locked[0]}", *ring[2:]])
    progress = batch_execute.execute_batch(world.services, batch_id)
    assert (progress.state, progress.executed, progress.failed) == ("executed", 4, 1)
    view = show(world, batch_id)
    (failed,) = [i for i in view["items"] if i["state"] == "failed"]
    assert failed["account"] == "chirp:already-locked"
    assert "refused by the platform" in failed["reason"]
