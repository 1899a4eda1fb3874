"""Tickets that are checked, not typed, against a real Request Tracker 5 (Debian's
request-tracker5, started by tests/tickets/harness.py): a rule with `justification: {ticket:
rt}` lets a request through only with an open RT ticket naming the same account, at submission,
approval and execution, and fails closed when RT cannot answer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foureyes.connectors.tickets import TicketSystemUnavailable
from foureyes.connectors.tickets_rt import RtTicketSystem
from foureyes.errors import BadInput, Conflict
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.http_server import free_port
from tests.tickets.harness import Rt
from tests.worlds import World

TOMAS, MEI = "e-3001", "e-3002"


def submit(world: World, justification: str, account: str = "chirp:alice") -> str:
    return operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.suspend", account, justification=justification),
    )


def events(world: World, kind: str) -> list[dict[str, object]]:
    with world.services.database.read() as session:
        bodies = session.scalars(
            select(EventRow.body).where(EventRow.kind == kind).order_by(EventRow.seq)
        ).all()
    return [json.loads(body) for body in bodies]


def requests(world: World) -> int:
    with world.services.database.read() as session:
        return len(session.scalars(select(RequestRow.id)).all())


def test_an_open_ticket_about_the_account_lets_the_request_through_and_is_shown(
    world: World, rt: Rt
) -> None:
    reference = rt.create_ticket("Spam wave from alice", ["alice"])
    request_id = submit(world, f"rt#{reference} spam wave")
    view = operations.show(world.services, request_id)
    assert view["state"] == RequestState.PENDING
    [ticket] = view["tickets"]
    assert ticket["reference"] == reference
    assert ticket["subject"] == "Spam wave from alice"
    assert ticket["status"] == "new"
    assert ticket["url"] == f"{rt.url}/Ticket/Display.html?id={reference}"
    [submitted] = events(world, "request.submitted")
    assert submitted["tickets"] == [
        {
            "system": "rt",
            "reference": reference,
            "status": "new",
            "open": True,
            "subject": "Spam wave from alice",
            "url": ticket["url"],
        }
    ]
    assert world.review(MEI, request_id) == RequestState.APPROVED
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state == RequestState.EXECUTED
    stages = [e["stage"] for e in events(world, "request.ticket_checked")]
    assert stages == ["approve", "execute"]


def test_the_full_account_reference_names_the_account_too(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Report", ["chirp:alice"], status="open")
    assert operations.show(world.services, submit(world, f"rt#{reference}."))["tickets"]


@pytest.mark.parametrize("status", ["resolved", "stalled"])
def test_a_ticket_that_is_not_open_is_refused(world: World, rt: Rt, status: str) -> None:
    reference = rt.create_ticket("Old case", ["alice"], status=status)
    with pytest.raises(BadInput, match=f"rt ticket {reference} is {status}, not open"):
        submit(world, f"rt#{reference} still bad")
    assert requests(world) == 0
    [refused] = events(world, "request.refused")
    assert "not open" in str(refused)


@pytest.mark.parametrize(
    "named",
    [
        ["bob"],  # another account
        ["alice2"],  # a longer id holding the account's (more: test_rt_system.py)
    ],
)
def test_a_ticket_about_another_account_is_refused(world: World, rt: Rt, named: list[str]) -> None:
    reference = rt.create_ticket("Another case", named)
    with pytest.raises(BadInput, match="does not name this account"):
        submit(world, f"rt#{reference} looks related")
    assert requests(world) == 0


@pytest.mark.parametrize(
    "justification",
    [
        "rt#999999 made up",  # no such ticket
        "rt#1/../2 traversal",  # more forms: test_rt_system.py
        "rt#1?x= query",
        "no ticket at all",
    ],
)
def test_made_up_or_malformed_references_are_refused(
    world: World, rt: Rt, justification: str
) -> None:
    rt.create_ticket("Real ticket about alice", ["alice"])  # ticket 1 may exist: still refused
    with pytest.raises(BadInput):
        submit(world, justification)
    assert requests(world) == 0


def test_two_different_tickets_in_one_reason_are_refused(world: World, rt: Rt) -> None:
    first = rt.create_ticket("Case", ["alice"])
    second = rt.create_ticket("Other case", ["bob"])
    with pytest.raises(BadInput, match="several rt tickets"):
        submit(world, f"rt#{first} and rt#{second}")


def test_a_ticket_closed_before_approval_blocks_the_approval(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    request_id = submit(world, f"rt#{reference} case")
    rt.set_status(reference, "resolved")
    with pytest.raises(Conflict, match="resolved, not open"):
        world.review(MEI, request_id)
    assert operations.show(world.services, request_id)["state"] == RequestState.PENDING


def test_a_ticket_closed_before_execution_cancels_it(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    request_id = submit(world, f"rt#{reference} case")
    assert world.review(MEI, request_id) == RequestState.APPROVED
    rt.set_status(reference, "rejected")
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state == RequestState.CANCELLED
    assert "rejected, not open" in str(outcome.reason)
    assert world.chirp("alice")["status"] == "active"


def test_an_allowed_request_checks_its_ticket_too(world: World, rt: Rt) -> None:
    with pytest.raises(BadInput, match="has no ticket"):
        operations.submit(
            world.services,
            world.actor(TOMAS),
            Submission("account.lock", "chirp:alice", justification="rt#424242 lock it"),
        )
    reference = rt.create_ticket("Lock", ["alice"])
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.lock", "chirp:alice", justification=f"rt#{reference} lock it"),
    )
    assert operations.show(world.services, request_id)["tickets"][0]["reference"] == reference


def test_rt_down_fails_closed_with_the_reason(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    world.services.tickets = {"rt": RtTicketSystem("rt", nobody, rt.reader_token, timeout=2.0)}
    with pytest.raises(TicketSystemUnavailable, match="cannot be reached"):
        submit(world, f"rt#{reference} case")
    assert requests(world) == 0
    [refused] = events(world, "request.refused")
    assert "cannot be reached" in str(refused)


def test_a_token_rt_refuses_fails_closed(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    world.services.tickets = {"rt": RtTicketSystem("rt", rt.url, "1-2-not-a-token")}
    with pytest.raises(TicketSystemUnavailable, match="refused foureyes' token") as refused:
        submit(world, f"rt#{reference} case")
    assert "not-a-token" not in str(refused.value)
    assert requests(world) == 0


def test_rt_down_at_execution_fails_the_attempt_and_runs_nothing(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    request_id = submit(world, f"rt#{reference} case")
    world.review(MEI, request_id)
    nobody = f"http://127.0.0.1:{free_port()}"
    world.services.tickets = {"rt": RtTicketSystem("rt", nobody, rt.reader_token, timeout=2.0)}
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state != RequestState.EXECUTED
    assert world.chirp("alice")["status"] == "active"


def test_no_configured_system_fails_closed(world: World, rt: Rt) -> None:
    reference = rt.create_ticket("Case", ["alice"])
    world.services.tickets = {}
    with pytest.raises(TicketSystemUnavailable, match="no ticket system 'rt' is configured"):
        submit(world, f"rt#{reference} case")


@pytest.mark.parametrize("reason", [".", "-", "...", "—", "?!", " . "])
def test_a_required_reason_of_punctuation_alone_is_refused(
    world: World, rt: Rt, reason: str
) -> None:
    with pytest.raises(BadInput, match="punctuation alone says nothing"):
        submit(world, reason)
    assert requests(world) == 0
