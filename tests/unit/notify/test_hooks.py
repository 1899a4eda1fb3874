"""The lifecycle writes notifications in its own transactions; the worker pass delivers them
(reviewers when a request needs them, the requester when it is decided, the policy's channels)."""

from __future__ import annotations

import json
from email import message_from_bytes

from sqlalchemy import select

from foureyes.notify import Channel, EmailChannel, WebhookChannel
from foureyes.store.tables import OutboxRow
from foureyes.webhook import verify
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.unit.notify.conftest import Mailbox, Receiver
from tests.worlds import World

SECRET = "security-hook"


def outbox(world: World) -> list[tuple[str | None, str | None, str]]:
    with world.services.database.transaction() as session:
        return [
            (row.channel, row.to_staff, row.kind)
            for row in session.scalars(select(OutboxRow).order_by(OutboxRow.id))
        ]


def deactivate_president(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1"),
    )


def test_reviewers_and_the_policy_channel_hear_of_a_pending_request(world: World) -> None:
    deactivate_president(world)
    written = outbox(world)
    reviewers = sorted(to for channel, to, kind in written if kind == "review.needed")
    # The engine's candidates: trust & safety employees who are not Ana's manager (Tomas,
    # e-3001), and security.
    assert reviewers == ["e-3002", "e-3003", "e-4001", "e-9001"]
    assert ("security", None, "request.pending") in written


def test_an_allowed_request_notifies_no_reviewer(world: World) -> None:
    operations.submit(
        world.services, world.actor("e-2001"), Submission("account.view", "chirp:bob")
    )
    assert outbox(world) == []


def test_the_requester_hears_when_it_is_decided(world: World) -> None:
    request_id = deactivate_president(world)
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        world.review(reviewer, request_id)
    written = outbox(world)
    assert (None, "e-2001", "request.scheduled") in written
    assert ("security", None, "request.scheduled") in written


def test_a_veto_is_told_to_the_requester(world: World) -> None:
    request_id = deactivate_president(world)
    world.review("e-3002", request_id, "deny")
    assert (None, "e-2001", "request.denied") in outbox(world)


def test_the_worker_pass_delivers_them(world: World, smtp: Mailbox, receiver: Receiver) -> None:
    request_id = deactivate_president(world)
    channels: dict[str, Channel] = {
        "mail": EmailChannel("mail", smtp.host, smtp.port, "foureyes@example.org", people=True),
        "security": WebhookChannel(
            "security", receiver.url, SECRET, base_url="https://foureyes.example"
        ),
    }
    tick = operations.run_once(world.services, channels=channels)
    # (The detectors' alerts may go out in the same pass: count only the request's own.)
    assert len(tick.notified) >= 5
    assert tick.undelivered == []
    addresses = sorted(rcpt for _, rcpts, _ in smtp.messages for rcpt in rcpts)
    assert addresses == [
        "ines@chirp.example",
        "jo@chirp.example",
        "mei@chirp.example",
        "sam@chirp.example",
    ]
    mail = message_from_bytes(smtp.messages[0][2])
    assert "account.deactivate on chirp:president" in str(mail["Subject"])
    [(headers, body)] = [
        (h, b) for h, b in receiver.posts if json.loads(b)["kind"] == "request.pending"
    ]
    verify(headers, "POST", "/hook", body, SECRET)
    assert json.loads(body)["link"] == f"https://foureyes.example/v1/requests/{request_id}"
    assert operations.run_once(world.services, channels=channels).notified == []


def test_without_channels_the_worker_reports_and_keeps_them(world: World) -> None:
    deactivate_president(world)
    tick = operations.run_once(world.services, channels={})
    assert len(tick.undelivered) >= 5
    assert tick.notified == []
    with world.services.database.transaction() as session:
        errors = set(session.scalars(select(OutboxRow.last_error)))
    assert errors >= {
        "no channel for messages to people is configured (an email channel with people = true)",
        "no notification channel 'security' is configured (add [notify.security] to foureyes.toml)",
    }
