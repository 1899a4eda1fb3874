"""The `http` ticket system against a real HTTP server (uvicorn on a loopback port): the
documented answer is read strictly, everything else makes the system unavailable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from foureyes.connectors.tickets import TicketSystemUnavailable, check_ticket
from foureyes.connectors.tickets_http import HttpTicketSystem, create
from foureyes.errors import BadInput
from tests.http_server import free_port, serving_app

TOKEN = "s3cret-ticket-token"
GOOD = {
    "reference": "ABUSE-12",
    "status": "open",
    "open": True,
    "subject": "Spam wave",
    "accounts": ["did:plc:alice"],
    "url": "https://tickets.example/ABUSE-12",
}


class Desk:
    """What the server answers (status, body) per reference, and the requests it saw."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.release = threading.Event()

    async def ticket(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        self.seen.append((request.url.path, request.headers.get("authorization")))
        if reference == "SLOW":
            while not self.release.is_set():  # held until the test lets go (after the timeout)
                await anyio.sleep(0.05)
        status, body = self.answers.get(reference, (404, b'{"error": "no such ticket"}'))
        return Response(body, status_code=status, media_type="application/json")


@pytest.fixture
def desk() -> Iterator[tuple[Desk, str]]:
    made = Desk()
    app = Starlette(routes=[Route("/tickets/{reference:path}", made.ticket)])
    with serving_app(app) as url:
        yield made, url
        made.release.set()


def answer(desk: Desk, reference: str, body: Any, status: int = 200) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    desk.answers[reference] = (status, raw)


def test_an_open_ticket_is_read_with_the_bearer_token(desk: tuple[Desk, str]) -> None:
    server, url = desk
    answer(server, "ABUSE-12", GOOD)
    system = create("desk", {"url": url, "token": TOKEN})
    ticket = check_ticket(system, "rt#1 desk#ABUSE-12", ("did:plc:alice",))
    assert (ticket.reference, ticket.status, ticket.subject) == ("ABUSE-12", "open", "Spam wave")
    assert ticket.url == "https://tickets.example/ABUSE-12"
    assert server.seen == [("/tickets/ABUSE-12", f"Bearer {TOKEN}")]
    assert TOKEN not in repr(system)


def test_unknown_closed_and_other_account_are_refused(desk: tuple[Desk, str]) -> None:
    server, url = desk
    answer(server, "CLOSED-1", {**GOOD, "reference": "CLOSED-1", "status": "done", "open": False})
    answer(server, "BOB-1", {**GOOD, "reference": "BOB-1", "accounts": ["did:plc:bob"]})
    system = HttpTicketSystem("desk", url)
    with pytest.raises(BadInput, match="desk has no ticket NOPE-1"):
        check_ticket(system, "desk#NOPE-1", ("did:plc:alice",))
    with pytest.raises(BadInput, match="is done, not open"):
        check_ticket(system, "desk#CLOSED-1", ("did:plc:alice",))
    with pytest.raises(BadInput, match="does not name this account"):
        check_ticket(system, "desk#BOB-1", ("did:plc:alice",))


@pytest.mark.parametrize("reference", ["a/../b", "..", "1?x=", "a%2fb", "-x", ".x", "é"])
def test_references_outside_the_form_never_reach_the_server(
    desk: tuple[Desk, str], reference: str
) -> None:
    server, url = desk
    with pytest.raises(BadInput, match="is not a valid desk ticket reference"):
        check_ticket(HttpTicketSystem("desk", url), f"desk#{reference}", ("did:plc:alice",))
    assert server.seen == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**GOOD, "reference": "ABUSE-13"}, 200),  # another ticket than asked
        ({**GOOD, "open": "yes"}, 200),
        ({**GOOD, "accounts": "did:plc:alice"}, 200),
        ({k: v for k, v in GOOD.items() if k != "url"}, 200),
        ([GOOD], 200),
        ({**GOOD, "url": "javascript:alert(1)"}, 200),  # a link the review card would follow
        ({**GOOD, "url": "https://tickets.example/A\nB"}, 200),  # not one plain link
        ({**GOOD, "url": "https://tickets.example/\u202eelpmaxe"}, 200),
        ({**GOOD, "url": "https://tickets.example/A B"}, 200),
        (b"not json", 200),
        (b"x" * ((1 << 20) + 1), 200),  # more than a ticket
        (GOOD, 500),
        (GOOD, 401),
        (GOOD, 302),
    ],
)
def test_answers_outside_the_contract_make_it_unavailable(
    desk: tuple[Desk, str], body: Any, status: int
) -> None:
    server, url = desk
    answer(server, "ABUSE-12", body, status)
    with pytest.raises(TicketSystemUnavailable):
        check_ticket(HttpTicketSystem("desk", url), "desk#ABUSE-12", ("did:plc:alice",))


def test_a_subject_and_status_from_outside_keep_to_one_plain_line(
    desk: tuple[Desk, str],
) -> None:
    server, url = desk
    forged = "Spam wave\nApproved by security: yes \u202eevil.example\u202c"
    answer(server, "ABUSE-12", {**GOOD, "subject": forged, "status": "open\u200b\r\n"})
    ticket = check_ticket(HttpTicketSystem("desk", url), "desk#ABUSE-12", ("did:plc:alice",))
    assert ticket.subject == "Spam wave Approved by security: yes evil.example"
    assert ticket.status == "open"
    assert ticket.summary()["subject"] == ticket.subject


def test_a_slow_system_times_out_and_is_unavailable(desk: tuple[Desk, str]) -> None:
    server, url = desk
    system = HttpTicketSystem("desk", url, timeout=0.5)
    with pytest.raises(TicketSystemUnavailable, match=r"did not answer within 0\.5 s"):
        check_ticket(system, "desk#SLOW", ("did:plc:alice",))
    server.release.set()


def test_nothing_listening_is_unavailable() -> None:
    system = HttpTicketSystem("desk", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TicketSystemUnavailable, match="cannot be reached"):
        system.lookup("ABUSE-12")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"url": "file:///etc/passwd"},
        {"url": "http://x", "timeout": 61},
        {"url": "http://x", "token": ""},
        {"url": "http://x", "other": 1},
    ],
)
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        create("desk", options)
