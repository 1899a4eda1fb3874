"""Need-to-know reads (foureyes.workflow.access) on the demo world, SQLite and PostgreSQL:
who may see a request, what a list holds, what an account's history tells whom, and who reads
the audit log's events and alerts."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.worlds import World

from foureyes import worker
from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.errors import Forbidden, NotFound
from foureyes.model import ReviewDecision
from foureyes.workflow import operations, views
from foureyes.workflow.alerts import list_alerts
from foureyes.workflow.submit import Submission

VIT = Submission("account.deactivate", "chirp:president", justification="CASE-1234")


def visible(world: World, staff_id: str, request_id: str) -> bool:
    """Whether the person sees it; else the refusal must be the unknown id's, word for word."""
    try:
        operations.show_to(world.services, world.actor(staff_id), request_id)
    except NotFound as exc:
        refusal = exc.message
    else:
        return True
    assert refusal == f"no request {request_id!r}"
    return False


def listed(world: World, staff_id: str) -> list[str]:
    items, _ = operations.list_requests(
        world.services, world.actor(staff_id), operations.ListFilter()
    )
    return [item["id"] for item in items]


def test_a_pending_request_is_for_its_requester_eligible_reviewers_and_oversight(
    world: World,
) -> None:
    request_id = operations.submit(world.services, world.actor("c-1001"), VIT)
    who = {
        staff_id: visible(world, staff_id, request_id)
        for staff_id in ("c-1001", "e-2001", "e-3001", "e-3002", "e-3003", "c-3004", "e-4001")
    }
    assert who == {
        "c-1001": True,  # Kim asked
        "e-2001": False,  # Ana (support): nothing to do with it
        "e-3001": False,  # Tomas: Kim's manager, not eligible
        "e-3002": True,  # Mei and Sam may review it
        "e-3003": True,
        "c-3004": False,  # Lee: a contractor, not eligible
        "e-4001": True,  # Ines: security oversees (and may review)
    }
    assert visible(world, "e-9001", request_id)  # Jo: leads oversees
    assert visible(world, "e-5001", request_id) is False  # Ravi (legal)


def test_while_the_delay_runs_whoever_may_cancel_sees_it_and_afterwards_only_those_involved(
    world: World,
) -> None:
    request_id = operations.submit(world.services, world.actor("c-1001"), VIT)
    for reviewer in ("e-3002", "e-9001", "e-4001"):
        world.review(reviewer, request_id)
    assert operations.show(world.services, request_id)["state"] == "scheduled"
    # Sam did not review, but may still cancel it during the delay: he sees it.
    assert visible(world, "e-3003", request_id)
    assert listed(world, "e-3003") == [request_id]
    world.clock.advance(minutes=11)
    worker.run_once(world.services)
    assert operations.show(world.services, request_id)["state"] == "executed"
    assert not visible(world, "e-3003", request_id)
    assert listed(world, "e-3003") == []
    assert visible(world, "e-3002", request_id)  # reviewed it


def test_someone_who_cancelled_it_still_sees_it(world: World) -> None:
    request_id = operations.submit(world.services, world.actor("c-1001"), VIT)
    for reviewer in ("e-3002", "e-9001", "e-4001"):
        world.review(reviewer, request_id)
    operations.cancel(world.services, world.actor("e-3003"), request_id, "wrong account")
    assert visible(world, "e-3003", request_id)


def test_eligible_post_reviewers_see_a_break_glass(world: World) -> None:
    tomas = world.actor("e-3001")
    glass = Submission("account.suspend", "chirp:president", break_glass=True)
    request_id = operations.submit(world.services, tomas, glass)
    operations.execute(world.services, request_id, actor=tomas)
    assert visible(world, "c-3004", request_id)  # Lee (trust & safety) may sign it off
    assert not visible(world, "e-2001", request_id)


def test_every_action_on_a_hidden_request_is_the_unknown_ids_not_found(world: World) -> None:
    request_id = operations.submit(world.services, world.actor("c-1001"), VIT)
    ana = world.actor("e-2001")
    digest = operations.show(world.services, request_id)["digest"]
    review = operations.ReviewInput(ReviewDecision.APPROVE, digest)
    for attempt in (
        lambda: operations.review(world.services, ana, request_id, review),
        lambda: operations.post_review(world.services, ana, request_id, review),
        lambda: operations.cancel(world.services, ana, request_id),
        lambda: operations.execute(world.services, request_id, actor=ana),
        lambda: operations.undo(world.services, ana, request_id, "x"),
        lambda: operations.step_up_options(world.services, ana, request_id, "approve"),
        lambda: views.can_review(world.services, ana, request_id),
    ):
        with pytest.raises(NotFound, match=rf"^no request '{request_id}'$"):
            attempt()
    assert operations.show(world.services, request_id)["state"] == "pending"


def test_an_accounts_history_is_whole_for_oversight_and_bare_for_others(world: World) -> None:
    operations.submit(world.services, world.actor("c-1001"), VIT)
    [bare] = views.account_history(world.services, world.actor("e-2001"), "chirp:president")
    assert bare["redacted"] is True
    assert bare["actor"] is None
    assert bare["event"] == {"action": "account.deactivate"}
    assert bare["kind"] == "request.submitted"
    [whole] = views.account_history(world.services, world.actor("e-4001"), "chirp:president")
    assert whole["redacted"] is False
    assert whole["actor"] == "c-1001"
    assert whole["event"]["justification"] == "CASE-1234"


def test_the_audit_logs_events_and_alerts_are_for_oversight(world: World) -> None:
    operations.submit(world.services, world.actor("c-1001"), VIT)
    filters = operations.EventFilter(limit=10)
    for staff_id in ("c-1001", "e-2001", "e-3002"):
        with pytest.raises(Forbidden, match="the audit log's events are for staff in leads or"):
            operations.audit_events(world.services, world.actor(staff_id), filters)
        with pytest.raises(Forbidden, match=r"^alerts are for staff in leads or security$"):
            list_alerts(world.services, world.actor(staff_id))
    for staff_id in ("e-4001", "e-9001"):
        assert operations.audit_events(world.services, world.actor(staff_id), filters)
        list_alerts(world.services, world.actor(staff_id))


def test_the_settings_oversight_groups_reach_the_services(tmp_path: Path) -> None:
    (tmp_path / "foureyes.toml").write_text('[access]\noversight_groups = ["legal"]\n')
    services = services_for(Settings.load(tmp_path, env={}))
    try:
        assert services.oversight_groups == frozenset({"legal"})
    finally:
        services.database.dispose()
