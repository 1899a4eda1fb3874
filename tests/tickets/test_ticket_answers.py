"""What a ticket system may answer (attack run on #21, F1, F2, F5), against real servers: an
HTTP desk (uvicorn on a loopback port) that trickles, or answers loose JSON; and a real Request
Tracker for merged tickets and tickets in a queue foureyes' user may not see.

- A lookup has one overall deadline (`timeout`: connection, headers and body together): a
  system that trickles its answer a byte at a time is given up at the deadline, at
  submission and at execution alike (where it fails the attempt, retried, never runs it).
- The http contract is read strictly: no key twice, no NaN/Infinity, application/json only,
  a status that says the opposite of `open` is refused; a closed ticket is never "open, not open".
- RT: a merged ticket is refused as merged (at execution: cancelled, not retried); a ticket
  foureyes' user may not see is refused in the same words as one that does not exist.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from foureyes.connectors.tickets import TicketSystemUnavailable, check_ticket
from foureyes.connectors.tickets_http import HttpTicketSystem
from foureyes.errors import BadInput
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.http_server import serving_app
from tests.tickets.harness import Rt
from tests.tickets.test_ticket_access import DESK_POLICY
from tests.worlds import World, make_world

ALICE = ("alice", "chirp:alice")
TOMAS, MEI = "e-3001", "e-3002"
# Bytes a trickle sends (one every TICK s) before it ends with something that is not JSON:
# far beyond any deadline here, so only the deadline can end the lookup with "within".
TRICKLED, TICK = 2000, 0.05


def ticket(reference: str, **changes: Any) -> dict[str, Any]:
    return {
        "reference": reference,
        "status": "open",
        "open": True,
        "subject": "Spam wave",
        "accounts": ["alice"],
        "url": f"https://desk.example/{reference}",
        **changes,
    }


class Desk:
    """`DRIP-*` trickles its answer (after `trickling` is set) until `release`; any other
    reference is answered from `answers` (raw body, content type), else an open ticket."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[bytes, str]] = {}
        self.trickling = threading.Event()
        self.release = threading.Event()
        self.drip = False

    async def lookup(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        if reference.startswith("DRIP") or self.drip:
            return StreamingResponse(self._trickle(), media_type="application/json")
        body, media = self.answers.get(
            reference, (json.dumps(ticket(reference)).encode(), "application/json")
        )
        return Response(body, media_type=media)

    async def _trickle(self) -> AsyncIterator[bytes]:
        self.trickling.set()
        for _ in range(TRICKLED):
            if self.release.is_set():
                break
            yield b" "
            await anyio.sleep(TICK)
        yield b"not json"


@pytest.fixture
def desk() -> Iterator[tuple[Desk, str]]:
    made = Desk()
    with serving_app(Starlette(routes=[Route("/tickets/{reference}", made.lookup)])) as url:
        yield made, url
        made.release.set()


# --- F1: one deadline for the whole answer -----------------------------------------------------


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_a_trickled_answer_is_given_up_at_the_deadline(
    desk: tuple[Desk, str], timeout: float
) -> None:
    server, url = desk
    system = HttpTicketSystem("desk", url, timeout=timeout)
    late = re.escape(f"did not answer within {timeout:g} s")
    with pytest.raises(TicketSystemUnavailable, match=late):
        check_ticket(system, "desk#DRIP-1", ALICE)
    assert server.trickling.is_set()  # it was the body, not the headers, that was late
    # The client is still usable afterwards (the cancelled request left nothing behind).
    assert check_ticket(system, "desk#OK-1", ALICE).reference == "OK-1"


def world_with(database: Database, url: str, timeout: float = 0.5) -> World:
    world = make_world(database, DESK_POLICY)
    world.services.tickets = {"desk": HttpTicketSystem("desk", url, timeout=timeout)}
    return world


def test_a_trickling_system_refuses_a_submission_at_the_deadline(
    database: Database, desk: tuple[Desk, str]
) -> None:
    _, url = desk
    world = world_with(database, url)
    with pytest.raises(TicketSystemUnavailable, match=r"did not answer within 0\.5 s"):
        operations.submit(
            world.services,
            world.actor(TOMAS),
            Submission("account.suspend", "chirp:alice", justification="desk#DRIP-2 spam"),
        )


def test_a_trickling_system_at_execution_fails_the_attempt_and_runs_nothing(
    database: Database, desk: tuple[Desk, str]
) -> None:
    server, url = desk
    world = world_with(database, url)
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.suspend", "chirp:alice", justification="desk#A-9 spam"),
    )
    world.review(MEI, request_id)
    server.drip = True
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state == RequestState.APPROVED  # failed transiently: retried later
    assert "did not answer within 0.5 s" in str(outcome.reason)
    assert world.chirp("alice")["status"] == "active"


# --- F2: the contract read strictly ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "media", "why"),
    [
        (
            b'{"reference":"X-1","status":"open","open":false,"open":true,"subject":"s",'
            b'"accounts":["alice"],"url":"https://d/X-1"}',
            "application/json",
            "appears twice",
        ),
        (json.dumps({**ticket("X-1"), "extra": float("nan")}).encode(), "application/json", "NaN"),
        (json.dumps({**ticket("X-1"), "n": float("inf")}).encode(), "application/json", "Infinity"),
        (
            json.dumps({**ticket("X-1"), "n": float("-inf")}).encode(),
            "application/json",
            "Infinity",
        ),
        (json.dumps(ticket("X-1")).encode(), "text/html", "not application/json"),
        (json.dumps(ticket("X-1")).encode(), "text/plain; charset=utf-8", "not application/json"),
        (json.dumps(ticket("X-1")).encode(), "application/jsonp", "not application/json"),
        (json.dumps(ticket("X-1", status="closed")).encode(), "application/json", "contradicts"),
        (json.dumps(ticket("X-1", status="Resolved")).encode(), "application/json", "contradicts"),
        (
            json.dumps(ticket("X-1", status="open", open=False)).encode(),
            "application/json",
            "contradicts",
        ),
        (
            json.dumps(ticket("X-1", status=" NEW ", open=False)).encode(),
            "application/json",
            "contradicts",
        ),
    ],
)
def test_loose_or_contradictory_answers_are_refused(
    desk: tuple[Desk, str], raw: bytes, media: str, why: str
) -> None:
    server, url = desk
    server.answers["X-1"] = (raw, media)
    with pytest.raises(TicketSystemUnavailable, match=why):
        check_ticket(HttpTicketSystem("desk", url), "desk#X-1", ALICE)


def test_application_json_with_parameters_is_read(desk: tuple[Desk, str]) -> None:
    server, url = desk
    server.answers["X-2"] = (json.dumps(ticket("X-2")).encode(), "Application/JSON; charset=utf-8")
    assert check_ticket(HttpTicketSystem("desk", url), "desk#X-2", ALICE).open


def test_a_closed_ticket_is_refused_in_words_that_agree(desk: tuple[Desk, str]) -> None:
    server, url = desk
    server.answers["X-3"] = (
        json.dumps(ticket("X-3", status="waiting on customer", open=False)).encode(),
        "application/json",
    )
    with pytest.raises(BadInput) as refused:
        check_ticket(HttpTicketSystem("desk", url), "desk#X-3", ALICE)
    assert str(refused.value) == "desk ticket X-3 is waiting on customer, not open"


# --- F5: RT's merged and hidden tickets --------------------------------------------------------


def _perl(rt: Rt, code: str) -> None:
    """Run `code` against RT's database as its system user (what an RT admin's merge does)."""
    directory = rt.log.parent
    env = {
        "RT_SITE_CONFIG": str(directory / "RT_SiteConfig.pm"),
        "RT_SITE_CONFIG_DIR": str(directory / "RT_SiteConfig.d"),
        "PATH": "/usr/bin:/bin",
    }
    script = (
        "use strict; use lib '/usr/share/request-tracker5/lib'; use RT; RT::LoadConfig(); "
        f"RT::Init(); {code}"
    )
    subprocess.run(["perl", "-e", script], env=env, cwd=directory, check=True, timeout=300)


def test_a_merged_rt_ticket_is_refused_as_merged_and_cancels_at_execution(
    world: World, rt: Rt
) -> None:
    first = rt.create_ticket("Case", ["alice"])
    second = rt.create_ticket("Same case", ["alice"])
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.suspend", "chirp:alice", justification=f"rt#{first} spam"),
    )
    world.review(MEI, request_id)
    _perl(
        rt,
        f"my $t = RT::Ticket->new(RT->SystemUser); $t->Load({first}); "
        f"my ($ok, $m) = $t->MergeInto({second}); die $m unless $ok;",
    )
    with pytest.raises(BadInput, match=f"rt ticket {first} was merged into {second}"):
        check_ticket(world.services.tickets["rt"], f"rt#{first}", ALICE)
    outcome = operations.execute(world.services, request_id, actor=world.actor(TOMAS))
    assert outcome is not None
    assert outcome.state == RequestState.CANCELLED  # a refusal, not an outage to retry
    assert f"merged into {second}" in str(outcome.reason)
    assert world.chirp("alice")["status"] == "active"


def test_a_hidden_rt_ticket_reads_as_no_ticket_and_the_log_says_why(
    world: World, rt: Rt, caplog: pytest.LogCaptureFixture
) -> None:
    made = rt.api("POST", "queue", json={"Name": f"Secret-{rt.port}-{id(world)}"})
    assert made.status_code == 201, made.text
    queue = str(made.json()["id"])
    hidden = rt.api(
        "POST",
        "ticket",
        json={"Queue": queue, "Subject": "Hidden", "CustomFields": {"Accounts": ["alice"]}},
    )
    assert hidden.status_code == 201, hidden.text
    reference = str(hidden.json()["id"])
    system = world.services.tickets["rt"]
    with caplog.at_level(logging.WARNING), pytest.raises(BadInput) as refused:
        check_ticket(system, f"rt#{reference}", ALICE)
    with pytest.raises(BadInput) as missing:
        check_ticket(system, "rt#999999", ALICE)
    assert str(refused.value) == str(missing.value).replace("999999", reference)
    assert "not visible to foureyes' RT user" in caplog.text
