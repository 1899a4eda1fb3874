"""The detectors and batches: `batch_lookalike` flags a batch holding look-alikes of a pinned
account; `velocity` stays quiet for an approved batch carried out item by item, and still fires
on a flood of single requests nobody approved."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from foureyes import detect
from foureyes.detect.lookalikes import fold, within
from foureyes.store.tables import AlertRow, PinRow
from foureyes.workflow import batch_execute, operations
from foureyes.workflow.submit import Submission
from tests.batches import approved, seed_ring, submit
from tests.worlds import World


def alerts(world: World, detector: str) -> list[AlertRow]:
    detect.run(world.services)
    with world.services.database.read() as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.detector == detector)))


def pin(world: World, ref: str, name: str = "protected") -> None:
    with world.services.database.transaction() as session:
        session.add(PinRow(account_ref=ref, pin=name, created_at=world.clock()))


LOOKALIKES = ["pres1dent", "President_", "presidnt", "pr\u0435sident", "\uff50resident"]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_folding_and_distance_find_each_lookalike(lookalike: str) -> None:
    assert fold(lookalike) == fold("president") or within(fold(lookalike), fold("president"), 1)


@pytest.mark.parametrize("other", ["presidential", "resident-evil", "alice", "bot17"])
def test_unrelated_ids_are_not_lookalikes(other: str) -> None:
    assert fold(other) != fold("president")
    assert not within(fold(other), fold("president"), 1)


def test_a_batch_of_lookalikes_of_a_pinned_account_is_flagged(world: World) -> None:
    pin(world, "chirp:newsdesk")
    seeded = world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [
            {"id": i, "followers": 1, "verified": False}
            for i in ("newsd3sk", "news_desk", "newsdesc")
        ]
    )
    ring = seed_ring(world, 5)
    batch_id = submit(world, [*ring, *(f"chirp:{i}" for i in seeded)])
    [alert] = alerts(world, "batch_lookalike")
    assert (alert.account_ref, alert.request_id, alert.staff_id) == (
        "chirp:newsdesk",
        batch_id,
        "e-3001",
    )
    assert sorted(alert.details["lookalikes"]) == sorted(f"chirp:{i}" for i in seeded)
    assert alert.severity == "high"


def test_a_batch_with_no_lookalike_is_not_flagged(world: World) -> None:
    pin(world, "chirp:newsdesk")
    submit(world, seed_ring(world, 5))
    assert alerts(world, "batch_lookalike") == []


def test_velocity_is_quiet_for_an_approved_batch(world: World) -> None:
    batch_id = approved(world, seed_ring(world, 60))
    assert batch_execute.execute_batch(world.services, batch_id).executed == 60
    assert alerts(world, "velocity") == []


def test_velocity_fires_on_a_flood_of_single_requests(world: World) -> None:
    for ref in seed_ring(world, 25, prefix="flood"):
        operations.submit(world.services, world.actor("e-3001"), Submission("account.suspend", ref))
    flagged = alerts(world, "velocity")
    assert flagged
    assert all(a.staff_id == "e-3001" for a in flagged if a.staff_id)
