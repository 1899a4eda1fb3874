"""The 2017 incident, end to end on the demo platform: the request that one contractor could
once carry out alone now waits for three independent colleagues, runs after its delay, can be
undone, and is refused outright on the contractor's last day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.worlds import World

from foureyes import worker
from foureyes.model import RequestState
from foureyes.workflow import operations
from foureyes.workflow.submit import Denied, Submission

DEACTIVATE = Submission("account.deactivate", "chirp:president", justification="CASE-1234")


def test_the_2017_story(world: World) -> None:
    kim = world.actor("c-1001", "kim.vendor")
    request_id = operations.submit(world.services, kim, DEACTIVATE)
    view = operations.show(world.services, request_id)
    assert view["state"] == "pending"
    assert view["decision"]["min_people"] == 4
    assert [f["missing"] for f in view["decision"]["factors"]] == [2, 1]

    assert world.review("e-3002", request_id) == "pending"  # Mei, trust & safety
    assert world.review("e-3003", request_id) == "pending"  # Sam, trust & safety
    assert world.review("e-4001", request_id) == "scheduled"  # Ines, security

    assert worker.run_once(world.services).executed == []  # the 10-minute delay runs
    assert world.chirp("president")["status"] == "active"
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [request_id]
    assert operations.show(world.services, request_id)["state"] == "executed"
    assert world.chirp("president")["status"] == "deactivated"

    # Mei, who approved it, undoes it (an undo is for those who may see the request).
    mei = world.actor("e-3002")
    undo_id = operations.undo(world.services, mei, request_id, "CASE-1234 restore")
    assert operations.show(world.services, undo_id)["state"] == "pending"
    assert world.review("e-3003", undo_id, step_up=False) == "approved"
    worker.run_once(world.services)
    assert world.chirp("president")["status"] == "active"
    assert operations.show(world.services, undo_id)["state"] == "executed"
    assert operations.show(world.services, request_id)["state"] == "reverted"

    kinds = [e["kind"] for e in operations.show(world.services, request_id)["timeline"]]
    assert kinds == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
        "request.reverted",
    ]


def test_the_same_contractor_on_the_last_day_is_refused(world: World) -> None:
    world.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    kim = world.actor("c-1001")
    with pytest.raises(Denied) as denied:
        operations.submit(world.services, kim, DEACTIVATE)
    assert "departing-contractors-read-only" in denied.value.message
    recorded = operations.show(world.services, denied.value.details["request_id"])
    assert recorded["state"] == RequestState.DENIED.value
    assert recorded["timeline"][0]["kind"] == "request.submitted"
