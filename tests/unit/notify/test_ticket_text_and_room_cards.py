"""What reaches chat rooms and the console from outside foureyes (routing issue #21): a ticket's
subject (an outsider's email subject, in RT) arrives on one line, without control or
bidi characters, bounded; and a room's card carries no alert about a person's employment or
relationships (those stay on approvers' own cards and the console). SQLite and PostgreSQL;
the in-memory ticket system; cards rendered as the Slack and Matrix channels send them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from foureyes.connectors.tickets import MAX_SUBJECT, MemoryTicketSystem, shown_text
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.notify import Notification, configure
from foureyes.notify.card import Card
from foureyes.notify.hooks import request_card
from foureyes.notify.matrix import content
from foureyes.notify.slack import payload
from foureyes.store.database import Database
from foureyes.store.tables import OutboxRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import console_for
from tests.worlds import World, make_world

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: suspend-with-ticket
    effect: require
    actions: [account.suspend]
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    justification: {ticket: rt}
    notify: [room]
"""
# The write-up's subject: a forged second line and a right-to-left override.
SUBJECT = "Spam wave\nApproved by security: yes \u202eevil.example\u202c"
CLEAN = "Spam wave Approved by security: yes evil.example"
UNSEEN = ("\n", "\r", "\u202e", "\u202c", "\u2066", "\u2069", "\u200b", "\u2028", "\x00")


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture
def world(database: Database) -> World:
    made = make_world(database, POLICY)
    rt = MemoryTicketSystem("rt")
    rt.add("1", SUBJECT, ["president"])
    made.services.tickets = {"rt": rt}
    return made


def _submit(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission("account.suspend", "chirp:president", justification="spam rt#1"),
    )


def _messages(world: World, **where: object) -> list[Notification]:
    with world.services.database.transaction() as session:
        rows = session.scalars(select(OutboxRow).filter_by(**where).order_by(OutboxRow.id))
        return [
            Notification(
                id=row.id,
                kind=row.kind,
                subject=row.subject,
                body=row.body,
                link=row.link,
                channel=row.channel,
                to_staff=row.to_staff,
                to_email=None,
                created_at=row.created_at,
                details=row.details,
            )
            for row in rows
        ]


@pytest.mark.parametrize(
    "text",
    [SUBJECT, "a\u2066b\u2069c\u200bd\u2028e\x00f\tg", "\u202d" + "x" * 500, "  \n\n "],
)
def test_a_ticket_keeps_its_subject_on_one_line_without_unseen_characters(text: str) -> None:
    ticket = MemoryTicketSystem("rt").add("1", text, ["president"])
    assert not any(char in ticket.subject for char in UNSEEN)
    assert "\t" not in ticket.subject
    assert "  " not in ticket.subject
    assert len(ticket.subject) <= MAX_SUBJECT
    assert ticket.subject == shown_text(text, MAX_SUBJECT)
    assert shown_text(SUBJECT, MAX_SUBJECT) == CLEAN


def test_the_write_ups_subject_reaches_slack_matrix_and_the_console_on_one_line(
    world: World, tmp_path: Path
) -> None:
    made = _submit(world)
    [ticket] = operations.show(world.services, made)["tickets"]
    assert ticket["subject"] == CLEAN
    room = _messages(world, channel="room")
    assert room
    for message in room:
        card = Card.from_json(message.details)
        assert card is not None
        assert card.ticket is not None
        assert card.ticket.subject == CLEAN
        slack = json.dumps(payload(message, "https://foureyes.example"), ensure_ascii=False)
        matrix = json.dumps(content(message, "https://foureyes.example"), ensure_ascii=False)
        for rendered in (slack, matrix):
            assert "Spam wave Approved by security: yes evil[.]example" in rendered
            assert not any(char in rendered for char in UNSEEN[2:])
            assert "Spam wave\\nApproved" not in rendered  # no forged line in the field
    page = (
        console_for(world, tmp_path / "data").signed_in("e-3002").get(f"/console/requests/{made}")
    )
    assert CLEAN in page.text
    assert not any(char in page.text for char in ("\u202e", "\u202c"))


def test_a_rooms_card_drops_alerts_about_peoples_employment_or_relationships(
    world: World,
) -> None:
    made = _submit(world)
    services = world.services
    with services.database.transaction() as session:
        for detector, summary in (
            ("departing_staff", "e-2001 (leaves in 3 days) asked"),
            ("pair_affinity", "e-3002 approved 9 of 10 requests by e-2001"),
            ("velocity", "e-2001 made 9 requests in 1h"),
            ("protected_touched", "asked on a protected account"),
        ):
            raise_alert(
                services,
                session,
                NewAlert(detector, "high", summary, "e-2001", "chirp:president", made),
                now=services.clock(),
            )
    world.review("e-3002", made, "deny")  # the room and the reviewers hear of it
    with services.database.transaction() as session:
        row = session.get(RequestRow, made)
        assert row is not None
        reviewers = Card.from_json(request_card(session, row, "Your review is asked", None))
    rooms = [Card.from_json(m.details) for m in _messages(world, channel="room")]
    denied = [card for card in rooms if card is not None and card.state == "denied"]
    assert denied
    for card in denied:
        shown = {alert.summary for alert in card.alerts}
        assert shown == {"e-2001 made 9 requests in 1h", "asked on a protected account"}
    assert reviewers is not None  # approvers' own cards keep them all
    assert {alert.summary for alert in reviewers.alerts} >= {
        "e-2001 (leaves in 3 days) asked",
        "e-3002 approved 9 of 10 requests by e-2001",
    }
