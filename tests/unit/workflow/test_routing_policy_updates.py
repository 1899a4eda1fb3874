"""A policy update reaches requests already pending or approved: a ticket requirement or one
pending request per account added after submission is enforced at approval and at execution
(routing issue #21, second attack pass). SQLite and PostgreSQL; no ticket system process (the
in-memory one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.worlds import World, install_next_policy, make_world

from foureyes.connectors.tickets import MemoryTicketSystem
from foureyes.errors import Conflict
from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

BEFORE = """\
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
"""
WITH_TICKET = BEFORE + "    justification: {ticket: rt}\n"
ONE_PENDING = BEFORE + "one_pending_per_account:\n  actions: [account.suspend]\n  mode: wait\n"


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture
def world(database: Database) -> World:
    made = make_world(database, BEFORE)
    rt = MemoryTicketSystem("rt")
    rt.add("7", "spam ring", ["bob"])
    rt.add("8", "another case", ["alice"])
    made.services.tickets = {"rt": rt}
    return made


def _submit(world: World, justification: str, account: str = "chirp:bob") -> str:
    return operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission("account.suspend", account, justification=justification),
    )


def _update(world: World, text: str) -> None:
    install_next_policy(world.services, text, world.clock())


def _state(world: World, request_id: str) -> str:
    return str(operations.show(world.services, request_id)["state"])


def test_a_pending_request_cannot_be_approved_without_the_ticket_the_new_policy_requires(
    world: World,
) -> None:
    made = _submit(world, "spam wave")
    _update(world, WITH_TICKET)
    with pytest.raises(Conflict, match="needs a rt ticket"):
        world.review("e-3002", made, step_up=False)
    assert _state(world, made) == "pending"


@pytest.mark.parametrize(
    ("reason", "why"),
    [
        ("spam wave", "needs a rt ticket"),
        ("spam wave rt#8", "does not name this account"),
        ("spam wave rt#99", "no ticket 99"),
    ],
)
def test_an_approved_request_is_not_carried_out_once_the_policy_requires_a_ticket(
    world: World, reason: str, why: str
) -> None:
    made = _submit(world, reason)
    assert world.review("e-3002", made, step_up=False) == "approved"
    _update(world, WITH_TICKET)
    operations.execute(world.services, made)
    shown = operations.show(world.services, made)
    assert shown["state"] == "cancelled"
    assert "re-check at execution failed" in str(shown["reason"])
    assert why in str(shown["reason"])
    assert world.chirp("bob")["status"] == "active"  # nothing was carried out


def test_a_request_naming_the_ticket_the_new_policy_requires_goes_through(world: World) -> None:
    made = _submit(world, "spam wave rt#7")
    _update(world, WITH_TICKET)
    assert world.review("e-3002", made, step_up=False) in ("approved", "executed")
    if _state(world, made) == "approved":
        operations.execute(world.services, made)
    assert _state(world, made) == "executed"


def test_an_unreachable_ticket_system_fails_the_attempt_closed(world: World) -> None:
    made = _submit(world, "spam wave rt#7")
    assert world.review("e-3002", made, step_up=False) == "approved"
    _update(world, WITH_TICKET)
    rt = world.services.tickets["rt"]
    assert isinstance(rt, MemoryTicketSystem)
    rt.down = True
    operations.execute(world.services, made)
    assert _state(world, made) != "executed"  # retried later, never run unchecked
    assert world.chirp("bob")["status"] == "active"


def test_one_pending_per_account_added_later_holds_the_second_pending_request(
    world: World,
) -> None:
    first = _submit(world, "first")
    second = _submit(world, "second")
    _update(world, ONE_PENDING)
    with pytest.raises(Conflict, match="waits for"):
        world.review("e-3002", second, step_up=False)
    assert world.review("e-3002", first, step_up=False) in ("approved", "executed")
    assert world.review("e-3003", second, step_up=False) in ("approved", "executed")


def test_a_dry_run_says_a_ticket_is_required_and_asks_no_ticket_system(world: World) -> None:
    _update(world, WITH_TICKET)
    rt = world.services.tickets["rt"]
    assert isinstance(rt, MemoryTicketSystem)
    rt.down = True  # a dry run never calls out (docs/tickets.md): it still answers
    asked = Submission("account.suspend", "chirp:bob", justification="spam rt#7")
    decision = operations.dry_run(world.services, world.actor("e-2001"), asked)
    assert decision.options.justification_tickets == ("rt",)
    assert decision.options.to_dict()["justification_tickets"] == ["rt"]
