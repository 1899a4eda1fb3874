"""An action whose answer is for its requester alone (`ActionSpec.for_requester_only`): reads, and
writes that reveal private data such as `account.login_as`, whose answer is a session token on
the account. Once approved it waits for its requester: the worker never carries it out (the
token would be thrown away, the session opened for nobody), nobody else may, and it expires if
they never ask."""

from __future__ import annotations

import hashlib
from datetime import UTC

import pytest
from sqlalchemy import select
from tests.worlds import IMPERSONATION_POLICY, World, make_world

from foureyes import worker
from foureyes.connectors.demo import DemoConnector
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.demo_tables import ChirpSessionRow
from foureyes.errors import Conflict, Forbidden, NotFound
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

LOGIN_AS = Submission("account.login_as", "chirp:alice", justification="CASE-77")
REQUESTER, APPROVER = "e-3001", "e-4001"  # Tomas (trust & safety), Ines (security, oversight)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, IMPERSONATION_POLICY)


def impersonations(world: World) -> list[ChirpSessionRow]:
    """The sessions login_as opened on the demo platform."""
    chirp = world.services.connector("chirp")
    assert isinstance(chirp, DemoConnector)
    with chirp.database.transaction() as session:
        return list(
            session.scalars(select(ChirpSessionRow).where(ChirpSessionRow.request_key.is_not(None)))
        )


def approved_login_as(world: World) -> str:
    request_id = operations.submit(world.services, world.actor(REQUESTER), LOGIN_AS)
    assert operations.show(world.services, request_id)["state"] == "pending"
    world.review(APPROVER, request_id, step_up=False)
    assert operations.show(world.services, request_id)["state"] == "approved"
    return request_id


def test_reads_and_actions_that_reveal_private_data_are_for_their_requester_only() -> None:
    only = {spec.name for spec in DEMO_ACTIONS if spec.for_requester_only}
    assert only == {
        "account.view",
        "account.view_private",
        "account.read_dms",
        "account.login_as",
    }


def test_the_worker_never_carries_out_an_approved_login_as(world: World) -> None:
    request_id = approved_login_as(world)
    for _ in range(2):
        tick = worker.run_once(world.services)
        assert request_id not in tick.executed
        world.clock.advance(minutes=30)
    assert operations.show(world.services, request_id)["state"] == "approved"
    assert impersonations(world) == []  # no session on Alice's account for nobody


@pytest.mark.parametrize("staff_id", [APPROVER, "e-9001"])  # the approver; oversight (leads)
def test_nobody_but_the_requester_may_carry_it_out(world: World, staff_id: str) -> None:
    request_id = approved_login_as(world)
    assert operations.show_to(world.services, world.actor(staff_id), request_id)  # they see it
    with pytest.raises(Forbidden, match="only for its requester"):
        operations.execute(world.services, request_id, actor=world.actor(staff_id))
    assert operations.show(world.services, request_id)["state"] == "approved"
    assert impersonations(world) == []


def test_someone_who_may_not_see_it_gets_the_unknown_id(world: World) -> None:
    request_id = approved_login_as(world)
    with pytest.raises(NotFound):
        operations.execute(world.services, request_id, actor=world.actor("e-5001"))


def test_the_requester_carries_it_out_and_gets_a_working_session_once(world: World) -> None:
    request_id = approved_login_as(world)
    outcome = operations.execute(world.services, request_id, actor=world.actor(REQUESTER))
    assert outcome is not None
    assert outcome.data is not None
    token = outcome.data["session_token"]
    [opened] = impersonations(world)
    assert opened.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert (opened.account_id, opened.impersonated_by) == ("alice", REQUESTER)
    assert opened.request_key == request_id
    assert opened.revoked_at is None
    assert opened.expires_at.replace(tzinfo=UTC) > world.clock.now
    view = operations.show(world.services, request_id)
    assert view["state"] == "executed"
    assert token not in str(view)  # never stored
    with pytest.raises(Conflict):
        operations.execute(world.services, request_id, actor=world.actor(REQUESTER))


def test_an_approved_login_as_never_asked_for_expires(world: World) -> None:
    request_id = approved_login_as(world)
    world.clock.advance(hours=3)
    assert request_id not in worker.run_once(world.services).expired
    world.clock.advance(hours=1, seconds=1)
    assert worker.run_once(world.services).expired == [request_id]
    assert operations.show(world.services, request_id)["state"] == "expired"
    with pytest.raises(Conflict):
        operations.execute(world.services, request_id, actor=world.actor(REQUESTER))
    assert impersonations(world) == []


def test_allowed_at_once_it_is_carried_out_for_the_requester_at_once(world: World) -> None:
    # The path that already worked: submit_and_run carries it out for its requester.
    request_id, outcome = operations.submit_and_run(world.services, world.actor("e-4001"), LOGIN_AS)
    assert outcome is not None
    assert outcome.data is not None
    [opened] = impersonations(world)
    assert opened.token_sha256 == hashlib.sha256(outcome.data["session_token"].encode()).hexdigest()
    assert (opened.impersonated_by, opened.request_key) == ("e-4001", request_id)


# --- with a delay: it waits for its requester once the delay has run -----------------------

DELAYED_POLICY = IMPERSONATION_POLICY.replace(
    "    expires: 4h\n", "    expires: 4h\n    delay: 1h\n"
)


@pytest.fixture
def delayed(database: Database) -> World:
    return make_world(database, DELAYED_POLICY)


def scheduled_login_as(world: World, *, approved_after_hours: float) -> str:
    request_id = operations.submit(world.services, world.actor(REQUESTER), LOGIN_AS)
    world.clock.advance(hours=approved_after_hours)
    world.review(APPROVER, request_id, step_up=False)
    assert operations.show(world.services, request_id)["state"] == "scheduled"
    return request_id


def test_a_delay_stops_the_clock_the_requester_keeps_their_time_to_carry_it_out(
    delayed: World,
) -> None:
    # Approved 3 hours in, with 1 hour left of its 4: the delay runs to 4 hours in, past the
    # request's first deadline; the requester still has the hour they had left.
    request_id = scheduled_login_as(delayed, approved_after_hours=3)
    delayed.clock.advance(hours=1, minutes=30)  # the delay has run; 4h30 since submission
    tick = worker.run_once(delayed.services)
    assert request_id not in tick.executed + tick.expired  # the worker leaves it to Tomas
    outcome = operations.execute(delayed.services, request_id, actor=delayed.actor(REQUESTER))
    assert outcome is not None
    assert outcome.data is not None
    assert "session_token" in outcome.data


def test_a_scheduled_login_as_never_asked_for_expires_after_its_delay(delayed: World) -> None:
    request_id = scheduled_login_as(delayed, approved_after_hours=3)
    delayed.clock.advance(hours=1, minutes=59)  # delay run, 59 of the 60 minutes left gone
    assert request_id not in worker.run_once(delayed.services).expired
    delayed.clock.advance(minutes=1, seconds=1)
    assert worker.run_once(delayed.services).expired == [request_id]
    view = operations.show(delayed.services, request_id)
    assert view["state"] == "expired"
    assert view["timeline"][-1]["kind"] == "request.expired"
    with pytest.raises(Conflict):
        operations.execute(delayed.services, request_id, actor=delayed.actor(REQUESTER))
    assert impersonations(delayed) == []


def test_a_scheduled_write_is_carried_out_not_expired_whatever_its_deadline(
    database: Database,
) -> None:
    # The example policy's deletion: a 24-hour delay and the default 24-hour expiry.
    delayed_delete = make_world(database)
    request_id = operations.submit(
        delayed_delete.services,
        delayed_delete.actor("e-3001"),
        Submission("account.delete", "chirp:alice", justification="CASE-9"),
    )
    for approver in ("e-3002", "e-3003"):
        delayed_delete.review(approver, request_id, step_up=False)
    assert operations.show(delayed_delete.services, request_id)["state"] == "scheduled"
    delayed_delete.clock.advance(hours=30)
    tick = worker.run_once(delayed_delete.services)
    assert tick.expired == []
    assert tick.executed == [request_id]
