"""Who a ticket re-check is made for (attack run on #21, F3 and F4), against a real HTTP ticket
system (uvicorn on a loopback port) that counts what it is asked.

- A stranger (not the requester, no part in the request, not eligible, not oversight) who
  knows the id of an approved or scheduled request whose rule requires a ticket gets, for
  execute, review, cancel and undo, the NotFound of an unknown id: nothing is asked of the
  ticket system, nothing recorded, and they still cannot see it afterwards.
- Refused approvals (the requester's own, another digest, a reviewer who does not count)
  ask nothing of the ticket system and record nothing naming their author; a refused
  colleague stops seeing the request once it has moved on.
- A ticket system that holds its answer holds no database lock: the request moves on
  meanwhile.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import anyio
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from foureyes.connectors.tickets_http import HttpTicketSystem
from foureyes.errors import Conflict, Forbidden, FoureyesError, NotFound
from foureyes.model import RequestState, ReviewDecision
from foureyes.store.database import Database
from foureyes.store.tables import EventRow
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
from tests.http_server import serving_app
from tests.tickets.conftest import TICKET_POLICY
from tests.worlds import World, make_world

TOMAS, MEI, SAM = "e-3001", "e-3002", "e-3003"
STRANGERS = ["c-1001", "e-2001", "e-5001"]  # support contractor, support, legal
DESK_POLICY = TICKET_POLICY.replace("ticket: rt", "ticket: desk")
DELAYED_POLICY = DESK_POLICY.replace(
    "    approvals: 1\n    approvers: '\"trust-safety\" in approver.groups'\n"
    "    justification: {ticket: desk}",
    "    approvals: 1\n    approvers: '\"trust-safety\" in approver.groups'\n"
    "    justification: {ticket: desk}\n    delay: 1h",
    1,
)


class Desk:
    """Answers an open ticket naming alice for every reference, and counts the lookups. With
    `hold` set, a lookup waits (after `arrived` is set) until `release`."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.hold = False
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def ticket(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        self.seen.append(reference)
        if self.hold:
            self.arrived.set()
            while not self.release.is_set():
                await anyio.sleep(0.02)
        body = {
            "reference": reference,
            "status": "open",
            "open": True,
            "subject": "Spam wave",
            "accounts": ["alice"],
            "url": f"https://desk.example/{reference}",
        }
        return Response(json.dumps(body), media_type="application/json")


@pytest.fixture
def desk() -> Iterator[tuple[Desk, str]]:
    made = Desk()
    with serving_app(Starlette(routes=[Route("/tickets/{reference}", made.ticket)])) as url:
        yield made, url
        made.release.set()


def world_with(database: Database, url: str, policy: str = DESK_POLICY) -> World:
    world = make_world(database, policy)
    world.services.tickets = {"desk": HttpTicketSystem("desk", url, timeout=30)}
    return world


def submit(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.suspend", "chirp:alice", justification="desk#A-17 spam wave"),
    )


def trail(world: World, request_id: str) -> list[tuple[str, str | None]]:
    with world.services.database.read() as session:
        rows = session.execute(
            select(EventRow.kind, EventRow.actor)
            .where(EventRow.request_id == request_id)
            .order_by(EventRow.seq)
        ).all()
    return [(kind, actor) for kind, actor in rows]


def unknown_answer(world: World, stranger: str) -> str:
    with pytest.raises(NotFound) as unknown:
        operations.show_to(world.services, world.actor(stranger), "no-such-request")
    return str(unknown.value).replace("no-such-request", "{id}")


def attempts(world: World, request_id: str, who: str) -> dict[str, Callable[[], object]]:
    actor = world.actor(who)
    digest = operations.show(world.services, request_id)["digest"]
    return {
        "execute": lambda: operations.execute(world.services, request_id, actor=actor),
        "approve": lambda: operations.review(
            world.services, actor, request_id, ReviewInput(ReviewDecision.APPROVE, digest)
        ),
        "cancel": lambda: operations.cancel(world.services, actor, request_id, "mine now"),
        "undo": lambda: operations.undo(world.services, actor, request_id, "desk#A-17 oops"),
    }


def approved(world: World) -> str:
    request_id = submit(world)
    world.review(MEI, request_id)
    return request_id


@pytest.mark.parametrize("state", ["approved", "scheduled-due", "scheduled-not-due"])
@pytest.mark.parametrize("stranger", STRANGERS)
@pytest.mark.parametrize("attempt", ["execute", "approve", "cancel", "undo"])
def test_a_stranger_gets_the_unknown_ids_answer_and_changes_nothing(
    database: Database, desk: tuple[Desk, str], state: str, stranger: str, attempt: str
) -> None:
    server, url = desk
    world = world_with(database, url, DESK_POLICY if state == "approved" else DELAYED_POLICY)
    request_id = approved(world)
    expected = RequestState.APPROVED if state == "approved" else RequestState.SCHEDULED
    assert operations.show(world.services, request_id)["state"] == expected
    if state == "scheduled-due":
        world.clock.advance(hours=2)
    lookups, before = list(server.seen), trail(world, request_id)

    with pytest.raises(NotFound) as refused:
        attempts(world, request_id, stranger)[attempt]()

    assert str(refused.value) == unknown_answer(world, stranger).format(id=request_id)
    assert server.seen == lookups  # nothing asked of the ticket system on their behalf
    assert trail(world, request_id) == before  # nothing recorded
    with pytest.raises(NotFound):
        operations.show_to(world.services, world.actor(stranger), request_id)
    # Still the requester's request, untouched, and carried out for someone who may.
    assert operations.show(world.services, request_id)["state"] == expected


def test_executing_as_allowed_records_the_check_with_the_claim(
    database: Database, desk: tuple[Desk, str]
) -> None:
    _, url = desk
    world = world_with(database, url)
    request_id = approved(world)
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state == RequestState.EXECUTED
    kinds = [kind for kind, _ in trail(world, request_id)]
    checked = kinds.index("request.ticket_checked", kinds.index("request.approved"))
    assert kinds[checked + 1] == "request.executing"
    assert ("request.ticket_checked", TOMAS) in trail(world, request_id)


def _refused_approvals(world: World, request_id: str) -> list[tuple[str, Callable[[], object]]]:
    digest = operations.show(world.services, request_id)["digest"]

    def approve(who: str, with_digest: str) -> Callable[[], object]:
        return lambda: operations.review(
            world.services,
            world.actor(who),
            request_id,
            ReviewInput(ReviewDecision.APPROVE, with_digest),
        )

    return [
        (TOMAS, approve(TOMAS, digest)),  # the requester's own
        (TOMAS, approve(TOMAS, "0" * 64)),
        (SAM, approve(SAM, "0" * 64)),  # another digest
        (SAM, approve(SAM, digest.upper())),
        (SAM, approve(SAM, "")),
    ]


def test_refused_approvals_ask_nothing_and_record_nothing(
    database: Database, desk: tuple[Desk, str]
) -> None:
    server, url = desk
    world = world_with(database, url)
    request_id = submit(world)
    lookups, before = list(server.seen), trail(world, request_id)
    for _who, attempt in _refused_approvals(world, request_id):
        with pytest.raises((Conflict, Forbidden)):
            attempt()
    assert server.seen == lookups
    assert trail(world, request_id) == before

    # A reviewer whose approval does not count (already reviewed) is refused the same way.
    assert world.review(MEI, request_id) == RequestState.APPROVED
    lookups, before = list(server.seen), trail(world, request_id)
    with pytest.raises((Conflict, Forbidden, NotFound)):
        world.review(MEI, request_id)
    assert (server.seen, trail(world, request_id)) == (lookups, before)

    # Sam, refused while it was pending, took no part: once it moved on, he no longer sees it.
    with pytest.raises(NotFound):
        operations.show_to(world.services, world.actor(SAM), request_id)
    assert all(actor != SAM for _, actor in trail(world, request_id))


def test_a_recorded_approval_keeps_its_check_with_the_review(
    database: Database, desk: tuple[Desk, str]
) -> None:
    _, url = desk
    world = world_with(database, url)
    request_id = submit(world)
    world.review(MEI, request_id)
    kinds = trail(world, request_id)
    review = kinds.index(("review.recorded", MEI))
    assert kinds[review + 1] == ("request.ticket_checked", MEI)


def test_a_ticket_system_that_holds_its_answer_holds_no_lock(
    database: Database, desk: tuple[Desk, str]
) -> None:
    """While the approval's lookup waits on the ticket system, the requester cancels the
    request (a write on the same row): it goes through at once; the approval then finds the
    request cancelled and records nothing."""
    server, url = desk
    world = world_with(database, url)
    request_id = submit(world)
    server.hold = True
    errors: list[FoureyesError] = []

    def approve() -> None:
        try:
            world.review(MEI, request_id)
        except FoureyesError as exc:
            errors.append(exc)

    reviewer = threading.Thread(target=approve)
    reviewer.start()
    assert server.arrived.wait(30), "the approval never asked the ticket system"
    assert operations.cancel(world.services, world.actor(TOMAS), request_id) == "cancelled"
    server.release.set()
    reviewer.join(60)
    assert not reviewer.is_alive()
    assert [type(e) for e in errors] in ([NotFound], [Conflict])
    assert [kind for kind, _ in trail(world, request_id)][-1] == "request.cancelled"


def test_the_deciding_approval_asks_the_ticket_system_again_to_carry_it_out(
    database: Database, desk: tuple[Desk, str]
) -> None:
    """Mei's approval completes a request whose rule requires a ticket: it is carried out in
    her call, after her review's COMMIT (never with a network call inside a transaction), and
    the ticket is asked about once more for the execution, checked for it, as the worker's
    execution would."""
    made, url = desk
    world = world_with(database, url)
    request_id = submit(world)
    digest = operations.show(world.services, request_id)["digest"]
    outcome = operations.review_and_run(
        world.services, world.actor(MEI), request_id, ReviewInput(ReviewDecision.APPROVE, digest)
    )
    assert outcome is not None
    assert outcome.state is RequestState.EXECUTED
    assert made.seen == ["A-17", "A-17", "A-17"]  # submit, approval, execution
    assert trail(world, request_id)[1:] == [
        ("review.recorded", MEI),
        ("request.ticket_checked", MEI),
        ("request.approved", MEI),
        ("request.ticket_checked", MEI),
        ("request.executing", MEI),
        ("request.executed", None),
    ]
