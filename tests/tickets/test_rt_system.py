"""The `rt` ticket system against a real Request Tracker 5: what it answers for tickets, how
strictly a ticket must name the account, and references that never reach RT's URL."""

from __future__ import annotations

import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.tickets import TicketSystemUnavailable, check_ticket
from foureyes.connectors.tickets_rt import RtTicketSystem, create
from foureyes.connectors.tickets_setup import open_ticket_systems
from foureyes.errors import BadInput
from tests.http_server import free_port
from tests.tickets.harness import Rt

ALICE = ("did:plc:alice", "atproto:did:plc:alice")


@pytest.fixture
def system(rt: Rt) -> RtTicketSystem:
    table = ConnectorSettings.model_validate(
        {"kind": "rt", "url": rt.url, "token_file": str(rt.reader_token_file)}
    )
    made = open_ticket_systems({"rt": table})["rt"]
    assert isinstance(made, RtTicketSystem)
    return made


def test_lookup_answers_status_subject_accounts_and_link(system: RtTicketSystem, rt: Rt) -> None:
    reference = rt.create_ticket("Spam from did:plc:alice", ["did:plc:alice", " did:plc:bob "])
    ticket = system.lookup(reference)
    assert ticket is not None
    assert (ticket.reference, ticket.status, ticket.open) == (reference, "new", True)
    assert ticket.subject == "Spam from did:plc:alice"
    assert ticket.accounts == ("did:plc:alice", "did:plc:bob")
    assert ticket.url == f"{rt.url}/Ticket/Display.html?id={reference}"
    assert system.lookup("987654") is None


def test_the_token_is_never_in_the_systems_repr(system: RtTicketSystem, rt: Rt) -> None:
    assert rt.reader_token not in repr(system)


@pytest.mark.parametrize(
    ("status", "open_"),
    [("new", True), ("open", True), ("stalled", False), ("resolved", False), ("rejected", False)],
)
def test_only_new_and_open_count_as_open(
    system: RtTicketSystem, rt: Rt, status: str, open_: bool
) -> None:
    reference = rt.create_ticket("Case", ["did:plc:alice"], status=status)
    ticket = system.lookup(reference)
    assert ticket is not None
    assert (ticket.status, ticket.open) == (status, open_)


@pytest.mark.parametrize(
    "named",
    [
        ["did:plc:bob"],
        ["did:plc:alicex"],  # longer, holding the account's id
        ["did:plc:ali"],  # a prefix
        ["alice.bsky.social"],  # a handle: it can be re-registered by someone else
        ["DID:PLC:ALICE"],
        ["did:plc:alice did:plc:bob"],  # two in one value
        ["other:did:plc:alice"],  # the same id on another platform
        [],
    ],
)
def test_a_ticket_must_name_the_account_exactly(
    system: RtTicketSystem, rt: Rt, named: list[str]
) -> None:
    reference = rt.create_ticket("Case", named)
    with pytest.raises(BadInput, match="does not name this account"):
        check_ticket(system, f"rt#{reference}", ALICE)


@pytest.mark.parametrize("named", [["did:plc:alice"], ["atproto:did:plc:alice"]])
def test_the_id_or_the_full_reference_names_it(
    system: RtTicketSystem, rt: Rt, named: list[str]
) -> None:
    reference = rt.create_ticket("Case", [*named, "did:plc:other"])
    assert check_ticket(system, f"see rt#{reference}, urgent", ALICE).reference == reference


@pytest.mark.parametrize(
    "reference",
    ["1/../2", "1?x=", "1%2f2", "abc", "0", "01", "-1", "12345678901", "1#2", "1\u0660", "\uff11"],
)
def test_references_that_are_not_rt_numbers_never_reach_rt(
    system: RtTicketSystem, rt: Rt, reference: str
) -> None:
    rt.create_ticket("Ticket 1 may exist", list(ALICE))
    with pytest.raises(BadInput, match="is not a valid rt ticket reference"):
        check_ticket(system, f"rt#{reference} x", ALICE)
    with pytest.raises(BadInput):
        system.lookup(reference)


@pytest.mark.parametrize("justification", [None, "", "rt# x", "RT#1", "art#1", "rt1", "ticket 1"])
def test_a_reason_without_a_reference_is_refused(
    system: RtTicketSystem, justification: str | None
) -> None:
    with pytest.raises(BadInput):
        check_ticket(system, justification, ALICE)


def test_rt_unreachable_is_unavailable(rt: Rt) -> None:
    down = RtTicketSystem("rt", f"http://127.0.0.1:{free_port()}", rt.reader_token, timeout=2.0)
    with pytest.raises(TicketSystemUnavailable, match="cannot be reached"):
        down.lookup("1")


def test_a_bad_token_is_unavailable_never_quoted(rt: Rt) -> None:
    bad = RtTicketSystem("rt", rt.url, "1-27-0123456789abcdef")
    with pytest.raises(TicketSystemUnavailable, match="refused foureyes' token") as refused:
        bad.lookup("1")
    assert "0123456789abcdef" not in str(refused.value)


@pytest.mark.parametrize(
    "options",
    [
        {"url": "http://x"},  # no token
        {"url": "ftp://x", "token": "t"},
        {"url": "http://x", "token": "t", "timeout": 0},
        {"url": "http://x", "token": "t", "timeout": True},
        {"url": "http://x", "token": "t", "open_statuses": []},
        {"url": "http://x", "token": "t", "surprise": 1},
        {"url": "http://x", "token": "t\nX-Injected: 1"},
    ],
)
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        create("rt", options)
