"""The lifecycle writes notifications in its own transactions; the worker pass delivers them
(reviewers when a request needs them, the requester when it is decided, the policy's channels)."""

from __future__ import annotations

import json
import logging
from email import message_from_bytes

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.notify import Channel, EmailChannel, WebhookChannel, announce, configure
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
    tick = worker.run_once(world.services, channels=channels)
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
    assert worker.run_once(world.services, channels=channels).notified == []


def _notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("foureyes.notify")]


def test_without_channels_nothing_is_queued_and_the_worker_says_so_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The finding: with no [notify] tables every notification was queued, claimed and logged
    again on every pass (38,000 lines in 25 minutes, 14,000 rows, 15% of a CPU idle). Now
    nothing is queued for a channel that does not exist, and the worker says so once."""
    configure({})  # what `serve` and `worker` do for a foureyes.toml without [notify]
    request_id = deactivate_president(world)  # reviewers, and the policy's 'security'
    world.review("e-3002", request_id, "deny")  # the requester, and 'security' again
    with caplog.at_level(logging.INFO, logger="foureyes"):
        announce(world.services.database)  # a worker's start
        for _ in range(3):
            tick = worker.run_once(world.services)  # detectors raise alerts too
            assert (tick.notified, tick.undelivered) == ([], [])
    assert outbox(world) == []
    [notice] = _notices(caplog)
    assert "no channel is configured, so none are queued or sent" in notice
    assert "[notify.<name>]" in notice


def test_only_what_a_configured_channel_carries_is_queued(world: World, smtp: Mailbox) -> None:
    configure({"security": WebhookChannel("security", "http://127.0.0.1:9/hook", SECRET)})
    request_id = deactivate_president(world)
    assert outbox(world) == [("security", None, "request.pending")]  # no reviewer messages
    configure({"mail": EmailChannel("mail", smtp.host, smtp.port, "f@example.org", people=True)})
    world.review("e-3002", request_id, "deny")
    assert outbox(world)[1:] == [(None, "e-2001", "request.denied")]  # no 'security'


def test_rows_queued_before_wait_for_their_channel_and_are_counted_once(
    world: World, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows an older foureyes queued for channels that do not exist: no pass claims them or
    logs them; the worker's start counts them; a channel configured later sends its own."""
    deactivate_president(world)  # channels unset: queued, as an older foureyes did
    queued = len(outbox(world))
    configure({})
    with caplog.at_level(logging.INFO, logger="foureyes"):
        announce(world.services.database)
        for _ in range(3):
            assert worker.run_once(world.services).undelivered == []
    notices = _notices(caplog)
    assert len(notices) == 2
    assert f"{queued} in the outbox wait for channels that are not configured" in notices[1]
    assert "(people), security" in notices[1]
    with world.services.database.transaction() as session:
        untouched = session.scalars(select(OutboxRow.attempts)).all()
    assert set(untouched) == {0}

    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    tick = worker.run_once(world.services, channels=channels)
    assert len(tick.notified) == 1  # the policy's channel; the reviewers' rows still wait
    assert tick.undelivered == []
