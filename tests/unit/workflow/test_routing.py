"""Reminders, escalation, away and delegation, one pending request per account: attempts to
make routing lower the bar or hand anyone power (SQLite and PostgreSQL; time moved with the
world's clock, never slept)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from tests.races import race
from tests.worlds import World, make_world

from foureyes import bootstrap
from foureyes.auth.webauthn import DEMO_RELYING_PARTY
from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, EventRow, OutboxRow, ReminderRow, RequestRow
from foureyes.workflow import operations, reminders
from foureyes.workflow.access import may_see
from foureyes.workflow.away import clear_away, my_away, set_away
from foureyes.workflow.submit import Submission

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: writes-need-two
    effect: require
    actions: [account.deactivate, account.lock]
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
    exclude: 'approver.id == requester.manager || approver.employment == "contractor"'
    escalate:
      after: 30m
      to: '"security" in approver.groups || "support" in approver.groups'
      remind_every: 15m
one_pending_per_account:
  actions: [account.deactivate, account.lock]
  mode: MODE
"""
NOBODY_POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: nobody-has-this-group
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"no-such-group" in approver.groups'
"""
DEACTIVATE = Submission("account.deactivate", "chirp:bob", justification="CASE-1")
LOCK = Submission("account.lock", "chirp:bob", justification="CASE-2")


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)  # no channel list: every notification is queued (what is asked is who)
    yield
    configure(None)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", "wait"))


@pytest.fixture
def refusing(database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", "refuse"))


def _approve(world: World, who: str, request_id: str) -> str:
    return world.review(who, request_id, step_up=False)


def _told(world: World, request_id: str, kind: str) -> list[str]:
    with world.services.database.transaction() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.kind == kind, OutboxRow.link.contains(request_id))
        )
        return sorted(row.to_staff or "" for row in rows)


def _submit(world: World, who: str = "e-2001", what: Submission = DEACTIVATE) -> str:
    return operations.submit(world.services, world.actor(who), what)


# --- escalation through the whole workflow ----------------------------------------------------


def test_an_escalation_approver_counts_only_after_the_delay(world: World) -> None:
    request_id = _submit(world)  # Ana (support; manager e-3001)
    with pytest.raises(Forbidden, match="would not count"):
        _approve(world, "e-4001", request_id)  # security: not yet
    world.clock.advance(minutes=30)
    assert _approve(world, "e-4001", request_id) == "pending"  # one approval is not two
    assert _approve(world, "e-3002", request_id) in ("approved", "scheduled", "executed")


@pytest.mark.parametrize("who", ["e-3001", "c-3004", "c-1001", "e-2001"])
def test_escalation_never_lets_the_excluded_count(world: World, who: str) -> None:
    # Ana's manager, a trust-safety contractor, a support contractor (in the escalation
    # group), the requester (in the escalation group): refused before and after escalation.
    request_id = _submit(world)
    for _ in range(2):
        with pytest.raises((Forbidden, NotFound)):  # not an approver: not even shown it
            _approve(world, who, request_id)
        world.clock.advance(hours=1)
    assert operations.show(world.services, request_id)["state"] == "pending"


def test_the_execution_recheck_counts_the_escalation_approval_it_was_given(world: World) -> None:
    request_id = _submit(world)
    world.clock.advance(minutes=31)
    _approve(world, "e-4001", request_id)
    world.clock.advance(minutes=5)
    state = _approve(world, "e-3002", request_id)
    assert state in ("approved", "scheduled", "executed")
    if state != "executed":
        operations.execute(world.services, request_id)
    assert operations.show(world.services, request_id)["state"] == "executed"


# --- reminders -------------------------------------------------------------------------------


def test_reminders_go_each_period_once_even_after_a_restart(
    world: World, database: Database
) -> None:
    request_id = _submit(world)
    assert _told(world, request_id, "review.needed") == ["e-3002", "e-3003", "e-9001"]
    assert reminders.remind_due(world.services) == []  # nothing due yet
    world.clock.advance(minutes=15)
    assert reminders.remind_due(world.services) == [f"{request_id}:1"]
    assert reminders.remind_due(world.services) == []  # the same round: not again
    # A restarted worker: new services on the same database, the same clock.
    restarted = bootstrap.build_services(
        database,
        connectors={"chirp": ("demo", {})},
        clock=world.clock,
        relying_party=DEMO_RELYING_PARTY,
    )
    assert reminders.remind_due(restarted) == []
    assert _told(world, request_id, "review.reminder") == ["e-3002", "e-3003", "e-9001"]
    world.clock.advance(minutes=15)  # 30m: the escalation notice, not reminder round 2
    assert reminders.remind_due(restarted) == [f"{request_id}:0"]
    assert reminders.remind_due(restarted) == []  # round 2 is folded into the notice
    told = _told(world, request_id, "review.escalated")
    assert "e-4001" in told  # security, eligible now: first told by the escalation notice
    assert "e-4001" not in _told(world, request_id, "review.reminder")
    assert not {"c-1001", "e-3001", "e-2001"} & set(told)  # excluded, requester: never
    world.clock.advance(minutes=15)  # 45m: round 3, to everyone who may approve now
    assert reminders.remind_due(restarted) == [f"{request_id}:3"]
    assert "e-4001" in _told(world, request_id, "review.reminder")
    with world.services.database.transaction() as session:
        rounds = session.scalars(
            select(ReminderRow.round).where(ReminderRow.request_id == request_id)
        )
        assert sorted(rounds) == [0, 1, 3]


def test_no_reminder_once_decided(world: World) -> None:
    request_id = _submit(world)
    operations.cancel(world.services, world.actor("e-2001"), request_id)
    world.clock.advance(hours=1)
    assert reminders.remind_due(world.services) == []


# --- away and delegation ---------------------------------------------------------------------


def _away(world: World, who: str, delegate: str | None = None) -> None:
    today = world.clock.now.date()
    set_away(world.services, world.actor(who), today, today + timedelta(days=3), delegate)


def test_away_people_are_not_told_nor_reminded(world: World) -> None:
    _away(world, "e-9001")
    request_id = _submit(world)
    assert _told(world, request_id, "review.needed") == ["e-3002", "e-3003"]
    world.clock.advance(minutes=15)
    reminders.remind_due(world.services)
    assert _told(world, request_id, "review.reminder") == ["e-3002", "e-3003"]


def test_an_eligible_delegate_is_told_for_the_away_person(world: World) -> None:
    _away(world, "e-9001", delegate="e-3003")  # Sam: trust-safety, eligible anyway
    request_id = _submit(world)
    assert _told(world, request_id, "review.needed") == ["e-3002", "e-3003"]
    with world.services.database.transaction() as session:
        to_sam = session.scalars(select(OutboxRow.body).where(OutboxRow.to_staff == "e-3003"))
        assert any("for e-9001, who is away" in body for body in to_sam)


@pytest.mark.parametrize("delegate", ["c-3004", "e-3001", "e-5001"])
def test_a_delegate_not_eligible_gets_nothing(world: World, delegate: str) -> None:
    # A contractor, the requester's manager, someone of no approving group: named delegate by
    # a trust-safety lead who is away. No message, no approval, no sight of the request.
    _away(world, "e-9001", delegate=delegate)
    request_id = _submit(world)
    assert delegate not in _told(world, request_id, "review.needed")
    world.clock.advance(minutes=15)
    reminders.remind_due(world.services)
    assert delegate not in _told(world, request_id, "review.reminder")
    with pytest.raises((Forbidden, NotFound)):
        _approve(world, delegate, request_id)
    actor = world.actor(delegate)
    with world.services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        assert not may_see(world.services, session, row, actor)


def test_away_cannot_be_set_for_someone_else(world: World) -> None:
    today = world.clock.now.date()
    for target in ("e-3002", "e-9001"):
        with pytest.raises(Forbidden, match="only themselves"):
            set_away(world.services, world.actor("e-4001"), today, today, None, staff_id=target)
        with pytest.raises(Forbidden):
            clear_away(world.services, world.actor("e-4001"), staff_id=target)
        assert my_away(world.services, world.actor(target)) is None


def test_setting_away_is_an_audit_event_and_bad_input_changes_nothing(world: World) -> None:
    today = world.clock.now.date()
    kim = world.actor("c-1001")
    for starts, ends, delegate, error in [
        (today, today - timedelta(days=1), None, BadInput),
        (date(2020, 1, 1), date(2020, 1, 2), None, BadInput),
        (today, today + timedelta(days=400), None, BadInput),
        (today, today, "c-1001", BadInput),
        (today, today, "nobody", NotFound),
    ]:
        with pytest.raises(error):
            set_away(world.services, kim, starts, ends, delegate)
    assert my_away(world.services, kim) is None
    set_away(world.services, kim, today, today + timedelta(days=1), "e-2001")
    assert clear_away(world.services, kim) is True
    assert clear_away(world.services, kim) is False
    with world.services.database.transaction() as session:
        kinds = list(
            session.scalars(
                select(EventRow.kind).where(EventRow.actor == "c-1001").order_by(EventRow.seq)
            )
        )
    assert kinds == ["staff.away_set", "staff.away_cleared"]


# --- a request nobody can approve is flagged at submission -------------------------------------


def _routing(world: World, request_id: str) -> dict[str, object]:
    routing = operations.show(world.services, request_id)["routing"]
    assert isinstance(routing, dict)
    return routing


def _unreachable_alerts(world: World, request_id: str) -> int:
    with world.services.database.transaction() as session:
        rows = session.scalars(
            select(AlertRow).where(
                AlertRow.detector == "unreachable_approvers", AlertRow.request_id == request_id
            )
        )
        return len(list(rows))


def test_a_request_nobody_can_approve_is_flagged_at_submission(database: Database) -> None:
    world = make_world(database, NOBODY_POLICY)
    request_id = _submit(world)
    routing = _routing(world, request_id)
    assert routing["reachable"] is False
    assert "nobody can approve it" in str(routing["reason"])
    assert _unreachable_alerts(world, request_id) == 1


def test_a_request_whose_approvers_are_all_away_is_flagged(world: World) -> None:
    # Eligible, escalation counted: e-3002, e-9001, e-3003 and security's e-4001 (support
    # is the requester, whose other members are contractors or excluded).
    for who in ("e-3002", "e-9001", "e-3003"):
        _away(world, who)
    request_id = _submit(world)
    assert _routing(world, request_id)["reachable"] is False
    assert "away" in str(_routing(world, request_id)["reason"])
    assert _unreachable_alerts(world, request_id) == 1
    clear_away(world.services, world.actor("e-3003"))
    assert _routing(world, request_id)["reachable"] is True


def test_a_reachable_request_raises_no_alert(world: World) -> None:
    request_id = _submit(world)
    assert _routing(world, request_id)["reachable"] is True
    assert _unreachable_alerts(world, request_id) == 0


# --- one pending request per account ---------------------------------------------------------


def test_a_second_request_waits_for_the_first_and_each_shows_the_other(world: World) -> None:
    first = _submit(world)
    second = _submit(world, "e-2001", LOCK)
    seen_first = _routing(world, first)
    seen_second = _routing(world, second)
    assert seen_first["held_by"] is None
    assert seen_second["held_by"] == first
    assert [p["id"] for p in seen_first["pending_on_account"]] == [second]  # type: ignore[index]
    assert [p["id"] for p in seen_second["pending_on_account"]] == [first]  # type: ignore[index]
    with pytest.raises(Conflict, match="waits for request"):
        _approve(world, "e-3002", second)
    # Not reminded while it waits.
    world.clock.advance(minutes=15)
    assert reminders.remind_due(world.services) == [f"{first}:1"]
    operations.cancel(world.services, world.actor("e-2001"), first)
    assert _routing(world, second)["held_by"] is None
    assert _approve(world, "e-3002", second) == "pending"


def test_another_account_or_action_is_not_held(world: World) -> None:
    _submit(world)
    other = _submit(
        world, "e-2001", Submission("account.deactivate", "chirp:alice", justification="C-3")
    )
    assert _routing(world, other)["held_by"] is None


def test_refuse_mode_refuses_a_second_pending_request(refusing: World) -> None:
    first = _submit(refusing)
    with pytest.raises(Conflict, match=f"request {first}"):
        _submit(refusing, "e-2001", LOCK)
    operations.cancel(refusing.services, refusing.actor("e-2001"), first)
    _submit(refusing, "e-2001", LOCK)


def test_two_concurrent_submissions_leave_exactly_one_pending(refusing: World) -> None:
    results = race(
        lambda: _submit(refusing, "e-2001", DEACTIVATE),
        lambda: _submit(refusing, "e-3003", LOCK),
    )
    made = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(made) == 1, results
    assert len(refused) == 1, results
    with refusing.services.database.transaction() as session:
        pending = session.scalars(
            select(RequestRow.id).where(
                RequestRow.account_ref == "chirp:bob", RequestRow.state == "pending"
            )
        )
        assert list(pending) == made
