"""One pending request per account counts an account, not a spelling of it: a request is kept
under its platform's own reference (`Account.ref` as the connector answers), so another spelling
of the same account is either refused by the platform (no such account) or queued behind the
first (routing issue #21, second attack pass). SQLite and PostgreSQL.

A handle for an AT Protocol account is refused naming its DID
(tests/unit/connectors/test_atproto.py::test_a_handle_is_refused_naming_its_did), so a DID and
a handle never make two accounts either."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from tests.worlds import World, make_world

from foureyes.errors import BadInput, Conflict, NotFound
from foureyes.model import Account
from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.store.tables import RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: suspend-by-trust-safety
    effect: require
    actions: [account.suspend]
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
one_pending_per_account:
  actions: [account.suspend]
  mode: MODE
"""
SPELLINGS = ["chirp:Bob", "chirp:BOB", "chirp:@bob", "chirp:bob ", "chirp:\uff42ob", "chirp: bob"]


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture(params=["wait", "refuse"])
def world(request: pytest.FixtureRequest, database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", request.param))


def _submit(world: World, account: str, who: str = "e-2001") -> str:
    return operations.submit(
        world.services,
        world.actor(who),
        Submission("account.suspend", account, justification="spam"),
    )


def _refs(world: World) -> list[str]:
    with world.services.database.read() as session:
        return list(session.scalars(select(RequestRow.account_ref).order_by(RequestRow.created_at)))


def _mode(world: World) -> str:
    with world.services.database.read() as session:
        spec = world.services.policy_in_force(session)[1].document.one_pending_per_account
    assert spec is not None
    return spec.mode


def test_another_spelling_of_a_busy_account_is_no_second_account(world: World) -> None:
    _submit(world, "chirp:bob")
    # The demo platform knows the account by its id alone: any other spelling is no account,
    # so it can never start a second queue beside bob's.
    for spelling in SPELLINGS:
        with pytest.raises((NotFound, BadInput)):
            _submit(world, spelling, who="e-3001")
    assert _refs(world) == ["chirp:bob"]


@pytest.mark.parametrize("spelling", ["chirp:Bob", "chirp:BOB", "chirp:@bob"])
def test_a_platform_that_resolves_spellings_queues_them_on_its_own_reference(
    world: World, spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = world.services.connector("chirp")
    lookup = connector.lookup

    def folding(account_id: str) -> Account | None:
        # A platform whose ids are case-insensitive and take an "@": it answers its own id.
        return lookup(account_id.lower().removeprefix("@"))

    monkeypatch.setattr(connector, "lookup", folding)
    first = _submit(world, "chirp:bob")
    if _mode(world) == "refuse":
        with pytest.raises(Conflict, match="already pending on chirp:bob"):
            _submit(world, spelling, who="e-3001")
        assert _refs(world) == ["chirp:bob"]
        return
    second = _submit(world, spelling, who="e-3001")
    assert _refs(world) == ["chirp:bob", "chirp:bob"]  # kept under the platform's reference
    shown = operations.show(world.services, second)
    assert shown["account"] == "chirp:bob"
    routing = shown["routing"]
    assert isinstance(routing, dict)
    assert routing["held"] is True
    with pytest.raises(Conflict, match="waits for"):
        world.review("e-3002", second, step_up=False)
    world.review("e-3002", first, step_up=False)
