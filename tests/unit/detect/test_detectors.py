"""Each detector, triggered by real requests through the operations, and quiet on normal work.

The detector pass (`detect.run`, which the worker runs each tick) reads the audit events since
the last pass; `scan` runs it and answers the alerts one detector raised.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from foureyes import detect, worker
from foureyes.core.alerts import LOOKING_ONLY
from foureyes.detect import detectors as detectors_module
from foureyes.detect.detectors import BY_KIND
from foureyes.store.tables import AlertRow, EventRow, OutboxRow, PinRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Denied, Submission
from tests.unit.detect.policies import use_policy
from tests.worlds import World


def scan(world: World, detector: str) -> list[AlertRow]:
    detect.run(world.services)
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
            )
        )


def submit(world: World, staff_id: str, action: str, account: str, **kwargs: Any) -> str:
    submission = Submission(action, f"chirp:{account}", **kwargs)
    return operations.submit(world.services, world.actor(staff_id), submission)


# --- protected_touched ---------------------------------------------------------------------


def test_protected_touched_flags_any_request_on_a_vit_account(world: World) -> None:
    request_id = submit(world, "e-3001", "account.suspend", "president")
    [alert] = scan(world, "protected_touched")
    assert alert.severity == "high"
    assert alert.staff_id == "e-3001"
    assert alert.account_ref == "chirp:president"
    assert alert.request_id == request_id
    assert "tier vit" in alert.summary
    # ... and it went to the notifiers (the outbox), in the same transaction.
    with world.services.database.transaction() as session:
        kinds = list(session.scalars(select(OutboxRow.kind)))
    assert "alert.protected_touched" in kinds


def test_a_raised_alert_is_an_audit_event_in_the_same_transaction(world: World) -> None:
    request_id = submit(world, "e-3001", "account.suspend", "president")
    [alert] = scan(world, "protected_touched")
    with world.services.database.transaction() as session:
        [event] = session.scalars(select(EventRow).where(EventRow.kind == "alert.raised")).all()
        submitted = session.scalar(
            select(EventRow.seq).where(
                EventRow.kind == "request.submitted", EventRow.request_id == request_id
            )
        )
    body = json.loads(event.body)
    assert event.actor is None  # foureyes itself raised it
    # Alerts are for oversight staff: the event stays out of the request's timeline and the
    # account's history, which others read; what it is about is in its body.
    assert (event.account_ref, event.request_id) == (None, None)
    assert (body["alert_account"], body["alert_request"]) == ("chirp:president", request_id)
    timeline = operations.show(world.services, request_id)["timeline"]
    assert "alert.raised" not in [e["kind"] for e in timeline]
    assert body["alert"] == alert.id
    assert (body["detector"], body["severity"], body["staff"]) == (
        "protected_touched",
        "high",
        "e-3001",
    )
    assert body["summary"] == alert.summary
    assert body["event_seq"] == submitted  # the event that set it off
    # Deleting the alert row afterwards leaves the log saying it was raised.
    with world.services.database.transaction() as session:
        session.delete(session.get(AlertRow, alert.id))
    events = operations.audit_events(
        world.services, world.actor("e-4001"), operations.EventFilter(kind="alert.raised")
    )
    assert [json.loads(e.body)["alert"] for e in events] == [alert.id]


def test_protected_touched_flags_a_watchlisted_account(world: World) -> None:
    with world.services.database.transaction() as session:
        session.add(PinRow(account_ref="chirp:alice", pin="watchlist", created_at=world.clock.now))
    submit(world, "e-2001", "account.view", "alice")
    [alert] = scan(world, "protected_touched")
    assert "pinned watchlist" in alert.summary


def test_protected_touched_is_quiet_on_ordinary_accounts(world: World) -> None:
    submit(world, "e-2001", "account.lock", "bob")
    submit(world, "e-3001", "account.suspend", "newsdesk")
    assert scan(world, "protected_touched") == []


# --- departing_staff -----------------------------------------------------------------------


def test_departing_staff_flags_writes_near_the_end_of_a_contract(world: World) -> None:
    world.clock.now = datetime(2027, 6, 25, 12, tzinfo=UTC)  # Kim's contract ends 2027-06-30
    submit(world, "c-1001", "account.lock", "bob")
    [alert] = scan(world, "departing_staff")
    assert alert.staff_id == "c-1001"
    assert "leaves in 5 days" in alert.summary
    assert alert.details["ends"] == "2027-06-30"


def test_departing_staff_is_quiet_on_reads_and_on_staff_who_stay(world: World) -> None:
    world.clock.now = datetime(2027, 6, 25, 12, tzinfo=UTC)
    submit(world, "c-1001", "account.view", "bob")  # a read
    submit(world, "e-2001", "account.lock", "bob")  # no end date
    assert scan(world, "departing_staff") == []


# --- velocity ------------------------------------------------------------------------------


def test_velocity_flags_a_burst_of_writes_once(world: World) -> None:
    use_policy(world, detectors={"velocity": {"writes": 3, "window": "1h"}})
    for action in ["account.lock", "account.unlock"] * 3:
        submit(world, "e-2001", action, "bob")
        world.clock.advance(minutes=1)
    [alert] = scan(world, "velocity")
    assert alert.staff_id == "e-2001"
    assert "4 write requests in 1h (limit 3)" in alert.summary


def test_velocity_flags_many_people_on_one_account(world: World) -> None:
    use_policy(world, detectors={"velocity": {"account_staff": 2}})
    for staff_id in ("e-2001", "c-1001", "e-3001"):
        submit(world, staff_id, "account.view", "bob")
    [alert] = scan(world, "velocity")
    assert alert.account_ref == "chirp:bob"
    assert alert.details["staff"] == ["c-1001", "e-2001", "e-3001"]


def test_the_people_on_an_account_are_those_in_the_window_however_many_requests_each_made(
    world: World,
) -> None:
    # `people_on` steps from person to person (a skip scan), never reading each request: the
    # answer must still be exactly who made requests on this account in the window.
    use_policy(world, detectors={"velocity": {"account_staff": 2, "window": "1h"}})
    submit(world, "e-3001", "account.view", "bob")  # before the window: not counted
    submit(world, "c-1001", "account.view", "alice")  # another account: not counted
    world.clock.advance(minutes=90)
    for _ in range(40):  # one person's many requests count once
        submit(world, "e-2001", "account.view", "bob")
    assert scan(world, "velocity") == []  # e-2001 alone in the window: 1 person
    submit(world, "c-1001", "account.view", "bob")
    submit(world, "e-3002", "account.view", "bob")
    [alert] = scan(world, "velocity")
    assert alert.account_ref == "chirp:bob"
    assert alert.details["staff"] == ["c-1001", "e-2001", "e-3002"]


def test_velocity_is_quiet_on_a_normal_pace(world: World) -> None:
    use_policy(world, detectors={"velocity": {"writes": 3, "window": "1h"}})
    for action in ["account.lock", "account.unlock"] * 3:
        submit(world, "e-2001", action, "bob")
        world.clock.advance(minutes=25)
    submit(world, "c-1001", "account.view", "bob")
    assert scan(world, "velocity") == []


# --- denial_burst --------------------------------------------------------------------------


def test_denial_burst_flags_repeated_denials(world: World) -> None:
    for _ in range(3):
        with pytest.raises(Denied):
            submit(world, "c-1001", "account.read_dms", "bob")
    [alert] = scan(world, "denial_burst")
    assert alert.staff_id == "c-1001"
    assert "denied 3 times" in alert.summary


def test_denial_burst_is_quiet_on_an_occasional_denial(world: World) -> None:
    for _ in range(2):
        with pytest.raises(Denied):
            submit(world, "c-1001", "account.read_dms", "bob")
        world.clock.advance(minutes=45)
    assert scan(world, "denial_burst") == []


# --- fast_approval and pair_affinity -------------------------------------------------------


def test_fast_approval_flags_an_approval_right_after_the_request(world: World) -> None:
    request_id = submit(world, "e-3001", "account.suspend", "president")
    world.clock.advance(seconds=5)
    world.review("e-3002", request_id)
    [alert] = scan(world, "fast_approval")
    assert alert.staff_id == "e-3002"
    assert alert.details["requester"] == "e-3001"
    assert "5s after" in alert.summary


def test_fast_approval_is_quiet_when_the_reviewer_took_time(world: World) -> None:
    request_id = submit(world, "e-3001", "account.suspend", "president")
    world.clock.advance(minutes=5)
    world.review("e-3002", request_id)
    assert scan(world, "fast_approval") == []


def _approve_three(world: World, pairs: list[tuple[str, str]]) -> None:
    use_policy(world, detectors={"pair_affinity": {"min_requests": 3, "share": 0.8}})
    for account, (first, second) in zip(["president", "chirp", "president"], pairs, strict=True):
        request_id = submit(world, "e-3001", "account.suspend", account)
        world.clock.advance(minutes=5)
        world.review(first, request_id)
        world.review(second, request_id)


def test_pair_affinity_flags_an_approver_who_approves_everything_of_one_requester(
    world: World,
) -> None:
    _approve_three(world, [("e-3002", "e-3003"), ("e-3002", "c-3004"), ("e-3002", "e-9001")])
    [alert] = scan(world, "pair_affinity")
    assert alert.staff_id == "e-3002"
    assert alert.details == {"requester": "e-3001", "share": 1.0}


def test_pair_affinity_is_quiet_when_approvals_are_spread(world: World) -> None:
    _approve_three(world, [("e-3002", "e-3003"), ("c-3004", "e-9001"), ("e-3002", "c-3004")])
    assert scan(world, "pair_affinity") == []


# --- off_hours -----------------------------------------------------------------------------


def test_off_hours_flags_work_at_night_in_the_staff_members_region(world: World) -> None:
    use_policy(
        world,
        detectors={
            "off_hours": {"regions": {"eu": {"start": 8, "end": 18, "timezone": "Europe/Berlin"}}}
        },
    )
    world.clock.now = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)  # 19:30 in Berlin
    submit(world, "c-1001", "account.lock", "bob")  # region eu
    submit(world, "e-2001", "account.lock", "alice")  # region us: the default, 07-20 UTC
    [alert] = scan(world, "off_hours")
    assert alert.staff_id == "c-1001"
    assert "Europe/Berlin" in alert.summary


def test_off_hours_flags_weekends_and_is_quiet_in_working_hours(world: World) -> None:
    submit(world, "e-2001", "account.lock", "bob")  # Wednesday 15:00 UTC
    assert scan(world, "off_hours") == []
    world.clock.now = datetime(2026, 11, 28, 12, tzinfo=UTC)  # a Saturday
    submit(world, "e-2001", "account.unlock", "bob")
    [alert] = scan(world, "off_hours")
    assert alert.staff_id == "e-2001"


def test_off_hours_flags_a_person_once_per_window_whatever_the_accounts(world: World) -> None:
    world.clock.now = datetime(2026, 11, 25, 23, tzinfo=UTC)  # Wednesday night, UTC
    first = submit(world, "e-2001", "account.lock", "bob")
    submit(world, "e-2001", "account.lock", "alice")  # another account, same night: no second
    world.clock.advance(minutes=30)
    submit(world, "e-2001", "account.unlock", "bob")
    submit(world, "e-3001", "account.suspend", "bob")  # another person: their own alert
    alerts = scan(world, "off_hours")
    assert [(a.staff_id, a.request_id) for a in alerts if a.staff_id == "e-2001"] == [
        ("e-2001", first)
    ]
    assert sorted(a.staff_id for a in alerts) == ["e-2001", "e-3001"]
    world.clock.advance(hours=1)  # the window (1h by default) has run: the next one counts
    again = submit(world, "e-2001", "account.unlock", "alice")
    assert [a.request_id for a in scan(world, "off_hours")][-1] == again


# --- break_glass ---------------------------------------------------------------------------


def test_break_glass_flags_every_use_and_an_overdue_sign_off(world: World) -> None:
    request_id = submit(world, "e-3001", "account.suspend", "president", break_glass=True)
    [use] = scan(world, "break_glass")
    assert use.severity == "critical"
    assert use.request_id == request_id
    assert "broke the glass" in use.summary
    worker.run_once(world.services)  # carries it out
    world.clock.advance(hours=25)
    worker.run_once(world.services)  # flags the post-review overdue, and detects it
    _, overdue = scan(world, "break_glass")
    assert overdue.request_id == request_id
    assert "not signed off in time (0 of 2)" in overdue.summary


def test_break_glass_is_quiet_on_the_ordinary_path(world: World) -> None:
    submit(world, "e-3001", "account.suspend", "president")
    assert scan(world, "break_glass") == []


# --- generic_justification -----------------------------------------------------------------


def test_generic_justification_flags_text_without_a_ticket(world: World) -> None:
    submit(world, "e-2001", "account.lock", "bob", justification="as discussed")
    [alert] = scan(world, "generic_justification")
    assert alert.staff_id == "e-2001"
    assert "without a ticket" in alert.summary


def test_generic_justification_flags_the_same_ticket_over_and_over(world: World) -> None:
    for action in ("account.lock", "account.unlock", "account.lock"):
        submit(world, "e-2001", action, "bob", justification="CASE-7")
    [alert] = scan(world, "generic_justification")
    assert "the same justification 3 times" in alert.summary


def test_generic_justification_is_quiet_on_distinct_tickets(world: World) -> None:
    submit(world, "e-2001", "account.lock", "bob", justification="CASE-101")
    submit(world, "e-2001", "account.unlock", "bob", justification="INC-102: owner verified")
    submit(world, "e-2001", "account.view", "alice")  # none given, none required
    assert scan(world, "generic_justification") == []


# --- detector_silence ----------------------------------------------------------------------


def test_detector_silence_fires_once_when_the_pipeline_stopped(world: World) -> None:
    assert scan(world, "detector_silence") == []  # the first heartbeat
    world.clock.advance(minutes=20)
    assert detect.check_silence(world.services) is not None  # a health check notices
    [alert] = scan(world, "detector_silence")  # and the next pass does not repeat it
    assert "did not run" in alert.summary
    assert alert.details["gap_seconds"] == 1200


def test_detector_silence_is_quiet_while_the_pipeline_runs(world: World) -> None:
    for _ in range(4):
        worker.run_once(world.services)
        world.clock.advance(minutes=10)
    assert detect.check_silence(world.services) is None
    assert scan(world, "detector_silence") == []


# --- configuration -------------------------------------------------------------------------


def test_a_detector_can_be_turned_off(world: World) -> None:
    use_policy(world, detectors={"protected_touched": {"enabled": False}})
    submit(world, "e-3001", "account.suspend", "president")
    assert scan(world, "protected_touched") == []


def test_each_event_is_looked_at_once(world: World) -> None:
    submit(world, "e-3001", "account.suspend", "president")
    assert len(scan(world, "protected_touched")) == 1
    assert len(scan(world, "protected_touched")) == 1


def test_a_failing_pipeline_raises_detector_silence_on_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker.run_once(world.services)  # a heartbeat

    def broken(seen: object) -> None:
        raise RuntimeError("a bug in a detector")

    monkeypatch.setitem(BY_KIND, "request.submitted", (("protected_touched", broken),))
    submit(world, "e-3001", "account.suspend", "president")
    for _ in range(3):
        world.clock.advance(minutes=10)
        worker.run_once(world.services)  # logs the failure, does its other work
    with world.services.database.transaction() as session:
        alerts = list(session.scalars(select(AlertRow.detector)))
    assert alerts == ["detector_silence"]


def test_a_pass_failing_at_an_alert_the_database_refuses_goes_silent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DBA's trigger that refuses alerts about one person made every pass fail at that
    alert, while the look before it (SQLite) beat the heartbeat: no alert about anyone, and
    `/healthz` said ok (attack led7-F7). The heartbeat is beaten only by a whole pass, so the
    silence is seen and raised."""
    worker.run_once(world.services)  # a heartbeat, and the pass's own record after the cursor
    stored = detectors_module.raise_alert

    def refused(services: Any, session: Any, alert: Any, **kwargs: Any) -> Any:
        if session.info.get(LOOKING_ONLY) or alert.detector != "protected_touched":
            return stored(services, session, alert, **kwargs)
        raise RuntimeError("the database refused the row (a trigger)")

    monkeypatch.setattr(detectors_module, "raise_alert", refused)
    submit(world, "e-3001", "account.suspend", "president")
    for _ in range(3):
        world.clock.advance(minutes=10)
        worker.run_once(world.services)
    assert detect.check_silence(world.services) is not None
    with world.services.database.transaction() as session:
        alerts = list(session.scalars(select(AlertRow.detector)))
    assert alerts == ["detector_silence"]


def test_pair_affinity_counts_nothing_once_the_approver_was_flagged_in_the_window(
    world: World,
) -> None:
    """Once flagged, the approver's next alert within the window would be deduplicated: the
    count over the requester's whole window (a busy requester's thousands of approvals, at
    each approval) is not made. Counted in statements, never timed."""
    _approve_three(world, [("e-3002", "e-3003"), ("e-3002", "c-3004"), ("e-3002", "e-9001")])
    [flagged] = scan(world, "pair_affinity")
    request_id = submit(world, "e-3001", "account.suspend", "chirp")
    world.clock.advance(minutes=5)
    world.review("e-3002", request_id)
    world.review("c-3004", request_id)
    made: list[tuple[str, str]] = []

    def executed(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        made.append((" ".join(statement.split()), repr(parameters)))

    engine = world.services.database.engine
    event.listen(engine, "before_cursor_execute", executed)
    try:
        assert [a.id for a in scan(world, "pair_affinity")] == [flagged.id]
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    counts = [args for s, args in made if "count(DISTINCT reviews.request_id)" in s]
    # c-3004's approval is counted (not flagged); e-3002's is not.
    assert len(counts) == 1, counts
    assert "c-3004" in counts[0], counts
    assert "e-3002" not in counts[0], counts


def test_pair_affinity_counts_again_when_the_alert_that_silenced_it_is_gone(
    world: World,
) -> None:
    """A DBA who deletes the alert row does not keep the approver from being flagged again:
    with no alert the log vouches for in the window, the count is made and the alert raised."""
    _approve_three(world, [("e-3002", "e-3003"), ("e-3002", "c-3004"), ("e-3002", "e-9001")])
    scan(world, "pair_affinity")
    with world.services.database.transaction() as session:
        session.execute(delete(AlertRow).where(AlertRow.detector == "pair_affinity"))
    request_id = submit(world, "e-3001", "account.suspend", "chirp")
    world.clock.advance(minutes=5)
    world.review("e-3002", request_id)
    world.review("c-3004", request_id)
    raised = [a for a in scan(world, "pair_affinity") if a.request_id == request_id]
    assert [a.staff_id for a in raised] == ["e-3002"]
