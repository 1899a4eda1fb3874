"""The detectors and batches: `batch_lookalike` flags a batch holding look-alikes of a pinned
account; `velocity` stays quiet for an approved batch carried out item by item, and still fires
on a flood of single requests nobody approved."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from foureyes import detect
from foureyes.detect.lookalikes import PinIndex, fold, keys, within
from foureyes.store.tables import AlertRow, PinRow
from foureyes.workflow import batch_execute, operations
from foureyes.workflow.submit import Submission
from tests.batches import CASE, approved, seed_ring, submit
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


# Each way an impersonator's name differs from the protected one's, and names that must not fire.
VARIANTS = [
    "persident",  # a transposition (Damerau: one edit)
    "presldent",
    "prezident",
    "pre\u0455ident",  # Cyrillic dze
    "\u03c1resident",  # Greek rho
    "\uff30RESIDENT",  # fullwidth, NFKC
    "president_official",
    "realpresident",
    "the.president",
    "pre.sident",  # a dot inside the name (a two-label "handle")
    "p.r.e.s.i.d.e.n.t",
    "president2024",
    "president.bsky.social",
    "president.example.com",
    "@president:matrix.example.org",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_of_a_pinned_name_is_near_it(variant: str) -> None:
    assert PinIndex({"chirp:p": ["president"]}, 1).matches([variant]) == {"chirp:p"}


@pytest.mark.parametrize(
    ("name", "pinned"),
    [("rnodern", "modem"), ("vvalrus", "walrus"), ("c1inton", "clinton"), ("l0g1n", "login")],
)
def test_letters_and_pairs_that_read_alike_are_folded(name: str, pinned: str) -> None:
    assert fold(name) == fold(pinned)


@pytest.mark.parametrize(
    "other",
    ["presidential", "resident-evil", "alice", "bot17", "vice.president.fan.club", "did:plc:pr"],
)
def test_unrelated_names_are_not_near(other: str) -> None:
    assert PinIndex({"chirp:p": ["president"]}, 1).matches([other]) == set()


def test_short_names_match_only_when_equal_and_dids_have_no_key() -> None:
    index = PinIndex({"bsky:did:plc:aaa": ["did:plc:aaa", "bob.bsky.social"]}, 1)
    assert index.matches(["rob.bsky.social", "did:plc:aab"]) == set()
    assert index.matches(["b0b.example.net"]) == {"bsky:did:plc:aaa"}
    assert keys("did:plc:abcdef") == frozenset()


def test_distance_counts_a_transposition_as_one_edit() -> None:
    assert within("abcd", "abdc", 1)
    assert not within("abcd", "badc", 1)
    assert within("abcd", "badc", 2)


def test_a_batch_naming_lookalikes_by_handle_is_flagged(world: World) -> None:
    """Opaque ids (as DIDs are): the handles the platform reported are what look alike. The
    pinned account's handle is known from a request on it."""
    world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [
            {"id": "k7q2x9", "handle": "thegazette", "followers": 9, "verified": True},
            {"id": "m3w8z1", "handle": "the_gazetle_official", "followers": 1, "verified": False},
            {"id": "r5t6y4", "handle": "gardening", "followers": 1, "verified": False},
        ]
    )
    pin(world, "chirp:k7q2x9")
    operations.submit(
        world.services,
        world.actor("e-3002"),
        Submission("account.suspend", "chirp:k7q2x9", {}, CASE),
    )
    batch_id = submit(world, [*seed_ring(world, 3), "chirp:m3w8z1", "chirp:r5t6y4"])
    [alert] = alerts(world, "batch_lookalike")
    assert (alert.account_ref, alert.request_id) == ("chirp:k7q2x9", batch_id)
    assert alert.details["lookalikes"] == ["chirp:m3w8z1"]


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
