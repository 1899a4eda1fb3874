"""The deciding review's cost, counted in statements (never timed): one transaction when no
ticket is needed (no look before it), the records decisions rest on read once between writes,
its answer read in it (no transaction of its own), and reading who took part in a request costs
the same however long the reviewer's history."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from tests.worlds import World, make_world

from foureyes.model import ReviewDecision
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.answered import review_and_show, submit_run_or_replay
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission

# What the deciding review of a VIT suspension and its answer's view make today (SQLite 36,
# PostgreSQL 39 on the day this was written); before the memo and the tickets-first review they
# made 73, before the answer was read in the review's transaction (SQLite only: on PostgreSQL
# it would hold the log's head lock, `answered.review_and_show`) 40 and 39. Reading the
# request's events by their bodies as well (`core.request_index`, led7-F3) added one read of
# the bodies appended since, per transaction that reads them (SQLite 38, PostgreSQL 40).
STATEMENTS = {"sqlite": 39, "postgresql": 41}
# The request's row is read under the review's lock, and on PostgreSQL again for the answer.
REQUEST_READS = {"sqlite": 1, "postgresql": 2}


@pytest.fixture
def world(database: Database) -> World:
    made = make_world(database)
    # Very important by their followers alone (as `bench/review.py`'s accounts).
    made.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [{"id": f"vit{n}", "followers": 5_000_000, "verified": True} for n in range(3)]
    )
    return made


def _waiting(world: World, account: str) -> tuple[str, str]:
    """A VIT suspension asked by e-2001 and approved once (by e-3001): one approval to go."""
    submitted, _ = submit_run_or_replay(
        world.services,
        world.actor("e-2001"),
        Submission("account.suspend", f"chirp:{account}", justification="CASE-1"),
    )
    request_id = submitted.request_id
    world.review("e-3001", request_id)
    return request_id, operations.show(world.services, request_id)["digest"]


def _deciding(world: World, request_id: str, digest: str) -> list[str]:
    return _answered(world, request_id, digest)[0]


def _answered(world: World, request_id: str, digest: str) -> tuple[list[str], dict[str, Any]]:
    engine = world.services.database.engine
    actor = world.actor("e-3002")
    given = ReviewInput(ReviewDecision.APPROVE, digest, "ok")
    made: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        made.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", executed)
    try:
        view = review_and_show(world.services, actor, request_id, given)
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    assert view["state"] == "executed"
    return made, view


def test_the_deciding_review_makes_few_statements(world: World) -> None:
    _deciding(world, *_waiting(world, "vit0"))  # first use: policy compiled, caches filled
    made = _deciding(world, *_waiting(world, "vit1"))
    dialect = world.services.database.engine.dialect.name
    assert len(made) <= STATEMENTS[dialect], "\n".join(made)
    # No look before the review's transaction (and on SQLite no transaction for the answer):
    # the policy in force is read once.
    reads = len([s for s in made if s.startswith("SELECT requests.id")])
    assert reads == REQUEST_READS[dialect], "\n".join(made)
    assert len([s for s in made if "max(policy_versions.version)" in s]) <= 1, "\n".join(made)


def test_who_took_part_is_read_by_the_request_not_by_the_person(world: World) -> None:
    """The participation check reads the request's events alone: never by the reviewer (whose
    events grow with every request they ever touched)."""
    made = _deciding(world, *_waiting(world, "vit1"))
    by_actor = [s for s in made if "audit_events.actor =" in s]
    assert not by_actor, "\n".join(by_actor)


def test_the_answer_read_in_the_transaction_is_what_the_reviewer_reads_after_it(
    world: World,
) -> None:
    """The deciding review's answer is read in its own transaction: it is the request as its
    reviewer reads it right after (`show_to`), timeline, reviews and approvals included."""
    request_id, digest = _waiting(world, "vit2")
    _, answered = _answered(world, request_id, digest)
    assert answered == operations.show_to(world.services, world.actor("e-3002"), request_id)
    assert [entry["kind"] for entry in answered["timeline"]][-2:] == [
        "request.executed",
        "account.suspended",
    ] or "request.executed" in [entry["kind"] for entry in answered["timeline"]]
    assert {r["reviewer"] for r in answered["reviews"]} == {"e-3001", "e-3002"}
