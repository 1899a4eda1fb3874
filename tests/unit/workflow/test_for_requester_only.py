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
        tick = operations.run_once(world.services)
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
    assert request_id not in operations.run_once(world.services).expired
    world.clock.advance(hours=1, seconds=1)
    assert operations.run_once(world.services).expired == [request_id]
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
