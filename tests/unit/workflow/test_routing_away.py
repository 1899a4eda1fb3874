"""Away and reachability over time: an away set in advance counts on its dates only; a request
that becomes unreachable after its submission (someone goes away, the day comes) is flagged to
oversight by the worker's reminder pass, once per reason; only people who could approve are
listed as away, never the requester (routing issue #21, second attack pass). SQLite and
PostgreSQL; the world's clock moved, never slept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.worlds import World, make_world

from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow
from foureyes.workflow import operations, reminders
from foureyes.workflow.away import set_away
from foureyes.workflow.submit import Submission

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: lock-by-legal-or-support
    effect: require
    actions: [account.lock]
    approvals: 1
    approvers: '"legal" in approver.groups || "support" in approver.groups'
"""
ANA, KIM, RAVI = "e-2001", "c-1001", "e-5001"  # support, support, legal


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY)


def _submit(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor(ANA),
        Submission("account.lock", "chirp:bob", justification="CASE-1"),
    )


def _away(world: World, who: str, starts_in: int, days: int) -> None:
    today = world.clock().date()
    start = today + timedelta(days=starts_in)
    set_away(world.services, world.actor(who), start, start + timedelta(days=days - 1))


def _routing(world: World, request_id: str) -> dict[str, Any]:
    routed = operations.show(world.services, request_id)["routing"]
    assert isinstance(routed, dict)
    return routed


def _flags(world: World, request_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow.summary).where(
                    AlertRow.request_id == request_id,
                    AlertRow.detector == "unreachable_approvers",
                )
            )
        )


def test_an_away_set_in_advance_counts_on_its_dates_and_is_flagged_then(world: World) -> None:
    _away(world, KIM, starts_in=1, days=2)
    _away(world, RAVI, starts_in=1, days=2)
    made = _submit(world)
    assert _routing(world, made)["reachable"] is True  # today both are here
    assert reminders.remind_due(world.services) == []
    assert _flags(world, made) == []
    world.clock.advance(days=1)  # their away begins
    reminders.remind_due(world.services)
    routed = _routing(world, made)
    assert routed["reachable"] is False
    assert routed["away"] == [KIM, RAVI]  # never the requester, who cannot approve anyway
    assert len(_flags(world, made)) == 1
    reminders.remind_due(world.services)
    world.clock.advance(hours=1)
    reminders.remind_due(world.services)
    assert len(_flags(world, made)) == 1  # told once for this reason
    world.clock.advance(days=2)  # back
    reminders.remind_due(world.services)
    assert _routing(world, made)["reachable"] is True


def test_going_away_after_a_submission_is_flagged_at_the_next_pass(world: World) -> None:
    made = _submit(world)
    assert _flags(world, made) == []
    _away(world, ANA, starts_in=0, days=3)  # the requester too: not listed
    _away(world, KIM, starts_in=0, days=3)
    _away(world, RAVI, starts_in=0, days=3)
    _away(world, "e-3001", starts_in=0, days=3)  # away, but could not approve it: not named
    reminders.remind_due(world.services)
    assert len(_flags(world, made)) == 1
    assert _routing(world, made)["away"] == [KIM, RAVI]
