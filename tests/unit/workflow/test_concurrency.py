"""Races on one PostgreSQL: no double execution, no lost review, every loser gets a conflict."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.races import race
from tests.worlds import World

from foureyes import worker
from foureyes.errors import Conflict
from foureyes.store.tables import ExecutionRow, ReviewRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

pytestmark = pytest.mark.pg_only


def deletion(world: World) -> str:
    """A request needing two trust & safety employees (the `deletion` rule), no step-up."""
    return operations.submit(
        world.services, world.actor("e-3001"), Submission("account.delete", "chirp:bob")
    )


def executions(world: World, request_id: str) -> int:
    with world.services.database.transaction() as session:
        return (
            session.scalar(select(func.count()).where(ExecutionRow.request_id == request_id)) or 0
        )


def test_two_approvals_at_once_are_both_kept(world: World) -> None:
    request_id = deletion(world)
    results = race(
        lambda: world.review("e-3002", request_id, step_up=False),
        lambda: world.review("e-3003", request_id, step_up=False),
    )
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(results) == ["pending", "scheduled"]  # whoever came second completed it
    with world.services.database.transaction() as session:
        reviews = session.scalar(select(func.count()).where(ReviewRow.request_id == request_id))
    assert reviews == 2
    assert operations.show(world.services, request_id)["state"] == "scheduled"


def test_two_workers_claiming_the_same_item_execute_it_once(world: World) -> None:
    request_id = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    results = race(
        lambda: operations.execute(world.services, request_id, worker="a", skip_locked=True),
        lambda: operations.execute(world.services, request_id, worker="b", skip_locked=True),
    )
    winners = [r for r in results if r is not None and not isinstance(r, Exception)]
    losers = [r for r in results if r is None or isinstance(r, Conflict)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert executions(world, request_id) == 1
    assert world.chirp("bob")["status"] == "locked"


def test_two_worker_passes_at_once_execute_each_item_once(world: World) -> None:
    ids = [
        operations.submit(
            world.services, world.actor("e-2001"), Submission("account.lock", f"chirp:{who}")
        )
        for who in ("bob", "alice")
    ]
    race(
        lambda: worker.run_once(world.services, "w1"),
        lambda: worker.run_once(world.services, "w2"),
    )
    for request_id in ids:
        assert executions(world, request_id) == 1
        assert operations.show(world.services, request_id)["state"] == "executed"


def test_execute_racing_cancel_has_one_winner(world: World) -> None:
    request_id = deletion(world)
    world.review("e-3002", request_id, step_up=False)
    world.review("e-3003", request_id, step_up=False)
    world.clock.advance(hours=25)  # the deletion's delay is over
    results = race(
        lambda: operations.execute(world.services, request_id, worker="w"),
        lambda: operations.cancel(world.services, world.actor("e-3001"), request_id, "stop"),
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1, results
    state = operations.show(world.services, request_id)["state"]
    if isinstance(results[0], Conflict):
        assert state == "cancelled"
        assert executions(world, request_id) == 0
        assert world.chirp("bob")["status"] == "active"
    else:
        assert state == "executed"
        assert executions(world, request_id) == 1
        assert world.chirp("bob")["status"] == "deleted"
