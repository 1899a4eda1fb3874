"""A ticket the policy requires because of the account's state *now* is asked for (routing
issue #21, attack F1): execution decides which tickets to ask about on the same fresh account
its re-check decides on, so a rule that matches only because the account changed since
submission (locked meanwhile) has its ticket checked, and the request is cancelled without it.
SQLite and PostgreSQL; the in-memory ticket system."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.worlds import World, make_world

from foureyes.connectors.tickets import MemoryTicketSystem
from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.workflow import operations, tickets
from foureyes.workflow.submit import Submission

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: lock-freely
    effect: allow
    actions: [account.lock]
  - id: email-active
    effect: require
    actions: [account.change_email]
    when: 'account.status == "active"'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
  - id: email-not-active-needs-ticket
    effect: require
    actions: [account.change_email]
    when: 'account.status != "active"'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    justification: {ticket: rt}
"""


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture
def world(database: Database) -> World:
    made = make_world(database, POLICY)
    rt = MemoryTicketSystem("rt")
    rt.add("7", "takeover report", ["bob"])
    rt.add("8", "another case", ["alice"])
    made.services.tickets = {"rt": rt}
    return made


def _change_email(world: World, justification: str) -> str:
    return operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission(
            "account.change_email",
            "chirp:bob",
            params={"email": "attacker@evil.example"},
            justification=justification,
        ),
    )


def _lock_bob(world: World) -> None:
    locked = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    if operations.show(world.services, locked)["state"] == "approved":
        operations.execute(world.services, locked)
    assert world.chirp("bob")["status"] == "locked"


def _show(world: World, request_id: str) -> dict[str, Any]:
    return dict(operations.show(world.services, request_id))


def _kinds(world: World, request_id: str) -> list[str]:
    return [event["kind"] for event in _show(world, request_id)["timeline"]]


def _email(world: World) -> str:
    return str(world.chirp("bob").get("email"))


@pytest.mark.parametrize("when", ["after approval", "before approval"])
@pytest.mark.parametrize(
    ("reason", "why"),
    [
        ("update contact", "needs a rt ticket"),
        ("update contact rt#8", "does not name this account"),
    ],
)
def test_a_ticket_required_because_the_account_changed_is_asked_at_execution(
    world: World, when: str, reason: str, why: str
) -> None:
    before = _email(world)
    made = _change_email(world, reason)
    assert _show(world, made)["state"] == "pending"  # active: no ticket asked at submission
    if when == "before approval":
        _lock_bob(world)
    assert world.review("e-3002", made, step_up=False) == "approved"
    if when == "after approval":
        _lock_bob(world)
    operations.execute(world.services, made)
    shown = _show(world, made)
    assert shown["state"] == "cancelled"
    assert "re-check at execution failed" in str(shown["reason"])
    assert why in str(shown["reason"])
    assert _email(world) == before  # nothing was carried out
    assert "request.executing" not in _kinds(world, made)


@pytest.mark.parametrize("when", ["after approval", "before approval"])
def test_naming_the_ticket_the_changed_account_requires_goes_through_checked(
    world: World, when: str
) -> None:
    made = _change_email(world, "update contact rt#7")
    if when == "before approval":
        _lock_bob(world)
    assert world.review("e-3002", made, step_up=False) == "approved"
    if when == "after approval":
        _lock_bob(world)
    operations.execute(world.services, made)
    assert _show(world, made)["state"] == "executed"
    assert "request.ticket_checked" in _kinds(world, made)
    [ticket] = _show(world, made)["tickets"]
    assert (ticket["system"], ticket["reference"], ticket["stage"]) == ("rt", "7", "execute")


def test_a_ticket_system_down_at_execution_fails_the_attempt_closed(world: World) -> None:
    made = _change_email(world, "update contact rt#7")
    assert world.review("e-3002", made, step_up=False) == "approved"
    _lock_bob(world)
    rt = world.services.tickets["rt"]
    assert isinstance(rt, MemoryTicketSystem)
    rt.down = True
    before = _email(world)
    operations.execute(world.services, made)
    assert _show(world, made)["state"] == "approved"  # retried later, never run unchecked
    assert _email(world) == before


def test_a_decision_requiring_a_ticket_the_recheck_did_not_ask_is_never_carried_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The re-check outside the lock and the decision under it disagree (the policy or pins
    # changed in between): the decision under the lock wins, and the attempt fails closed.
    made = _change_email(world, "update contact rt#7")
    assert world.review("e-3002", made, step_up=False) == "approved"
    _lock_bob(world)
    monkeypatch.setattr(tickets, "recheck", lambda *_a, **_k: tickets.Rechecked())
    before = _email(world)
    operations.execute(world.services, made)
    shown = _show(world, made)
    assert shown["state"] == "approved"  # this attempt failed; the next asks again
    assert "rt ticket the policy in force requires was not checked" in str(shown["reason"])
    assert _email(world) == before
    monkeypatch.undo()
    world.clock.advance(minutes=5)
    operations.execute(world.services, made)
    assert _show(world, made)["state"] == "executed"
