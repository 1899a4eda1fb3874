"""The outbox on SQLite and PostgreSQL: enqueue in the caller's transaction (only for a
configured channel), delivery by the worker pass through real receivers, retries with backoff,
nothing dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from foureyes.notify import (
    Channel,
    Delivery,
    EmailChannel,
    WebhookChannel,
    accepts,
    backoff,
    configure,
    deliver_due,
    enqueue,
)
from foureyes.store.database import Database
from foureyes.store.tables import OutboxRow, StaffRow
from foureyes.webhook import verify
from tests.unit.notify.conftest import Mailbox, Receiver
from tests.worlds import Clock

SECRET = "hook-secret"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def rows(database: Database) -> list[OutboxRow]:
    with database.transaction() as session:
        found = list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        session.expunge_all()
        return found


def add(database: Database, **given: object) -> None:
    with database.transaction() as session:
        enqueue(
            session,
            kind=str(given.pop("kind", "alert")),
            subject=str(given.pop("subject", "Something to look at")),
            body=str(given.pop("body", "details")),
            **given,  # type: ignore[arg-type]
        )


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(50) == timedelta(hours=1)


def test_enqueue_needs_somewhere_to_go(database: Database) -> None:
    with pytest.raises(ValueError, match="channel or a staff member"), database.transaction() as s:
        enqueue(s, kind="alert", subject="x", body="y")


def test_enqueue_is_part_of_the_callers_transaction(database: Database) -> None:
    class Boom(Exception):
        pass

    def fail_after_enqueue() -> None:
        with database.transaction() as session:
            enqueue(session, channel="security", kind="alert", subject="x", body="y")
            raise Boom

    with pytest.raises(Boom):
        fail_after_enqueue()
    assert rows(database) == []


def test_a_webhook_notification_is_delivered_once_and_verifiable(
    database: Database, receiver: Receiver
) -> None:
    add(database, channel="security", link="/v1/requests/r1")
    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    clock = Clock(NOW)
    report = deliver_due(database, clock, channels)
    [row] = rows(database)
    assert report.delivered == [row.id]
    assert row.delivered_at == NOW
    assert row.attempts == 1
    assert row.last_error is None
    [(headers, body)] = receiver.posts
    verify(headers, "POST", "/hook", body, SECRET)
    assert json.loads(body)["subject"] == "Something to look at"
    assert deliver_due(database, clock, channels).delivered == []  # delivered once
    assert len(receiver.posts) == 1


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(
    database: Database, receiver: Receiver
) -> None:
    receiver.statuses = [500, 502]
    add(database, channel="security")
    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    clock = Clock(NOW)

    first = deliver_due(database, clock, channels)
    [row] = rows(database)
    assert first.failed == {row.id: "webhook: the receiver answered HTTP 500"}
    assert row.attempts == 1
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert row.last_error == "webhook: the receiver answered HTTP 500"

    clock.advance(seconds=29)
    assert deliver_due(database, clock, channels).failed == {}  # not due yet: nothing tried
    clock.advance(seconds=1)
    assert deliver_due(database, clock, channels).failed == {
        row.id: "webhook: the receiver answered HTTP 502"
    }
    [row] = rows(database)
    assert row.attempts == 2
    assert row.next_attempt_at == clock.now + timedelta(seconds=60)

    clock.advance(seconds=60)
    assert deliver_due(database, clock, channels).delivered == [row.id]
    [row] = rows(database)
    assert row.attempts == 3
    assert row.delivered_at == clock.now
    assert receiver.answered == [500, 502, 200]
    # Each attempt carried the same idempotency key and a valid signature.
    assert {h["Idempotency-Key"] for h, _ in receiver.posts} == {f"notify-{row.id}"}
    for headers, body in receiver.posts:
        verify(headers, "POST", "/hook", body, SECRET)


def test_enqueue_writes_only_what_a_configured_channel_carries(database: Database) -> None:
    configure({"security": WebhookChannel("security", "http://127.0.0.1:9/hook", SECRET)})
    with database.transaction() as session:
        assert enqueue(session, channel="security", kind="alert", subject="x", body="y")
        assert not enqueue(session, channel="pager", kind="alert", subject="x", body="y")
        # No channel carries messages to people: neither to a person ...
        assert not enqueue(session, to_staff="e-1", kind="review.needed", subject="x", body="y")
    assert [row.channel for row in rows(database)] == ["security"]
    # ... until one does; a person through a named channel goes as that channel does.
    mail = EmailChannel("mail", "127.0.0.1", 25, "foureyes@example.org", people=True)
    configure({"mail": mail})
    assert accepts(to_staff="e-1")
    assert accepts(channel="mail", to_staff="e-1")
    assert not accepts(channel="security", to_staff="e-1")
    configure({})
    assert not accepts(channel="security")
    assert not accepts(to_staff="e-1")
    configure(None)  # unset (a library, before start-up): everything is queued
    assert accepts(channel="pager")
    assert accepts(to_staff="e-1")


def test_a_row_for_an_unconfigured_channel_waits_untouched(
    database: Database, receiver: Receiver
) -> None:
    """Queued before (by an older foureyes, or while the channel was configured): no pass
    claims it, counts an attempt or reports it; once the channel is back, it goes out."""
    add(database, channel="pager")
    clock = Clock(NOW)
    for _ in range(3):
        assert deliver_due(database, clock, {}) == Delivery()
        other = {"security": WebhookChannel("security", receiver.url, SECRET)}
        assert deliver_due(database, clock, other) == Delivery()
    [row] = rows(database)
    assert (row.attempts, row.next_attempt_at, row.last_error) == (0, None, None)
    assert row.delivered_at is None
    channels: dict[str, Channel] = {"pager": WebhookChannel("pager", receiver.url, SECRET)}
    assert deliver_due(database, clock, channels).delivered == [row.id]


def test_a_message_to_a_person_goes_by_email_to_their_directory_address(
    database: Database, smtp: Mailbox
) -> None:
    with database.transaction() as session:
        for staff_id, email in (("e-1", "one@example.org"), ("e-2", "")):
            session.add(
                StaffRow(
                    id=staff_id,
                    name=staff_id,
                    email=email,
                    groups=[],
                    employment="employee",
                    status="active",
                    updated_at=NOW,
                )
            )
    add(database, to_staff="e-1", subject="Your request is approved")
    add(database, to_staff="e-2", subject="Your request is denied")
    clock = Clock(NOW)
    # No channel for people yet: kept, untouched.
    assert deliver_due(database, clock, {}) == Delivery()
    assert [row.attempts for row in rows(database)] == [0, 0]

    mail = EmailChannel("mail", smtp.host, smtp.port, "foureyes@example.org", people=True)
    report = deliver_due(database, clock, {"mail": mail})
    first, second = rows(database)
    assert report.delivered == [first.id]
    assert report.failed == {second.id: "staff member 'e-2' has no email address in the directory"}
    assert [m[1] for m in smtp.messages] == [["one@example.org"]]


def test_the_process_channels_are_the_default(database: Database, receiver: Receiver) -> None:
    add(database, channel="security")
    configure({"security": WebhookChannel("security", receiver.url, SECRET)})
    assert len(deliver_due(database, Clock(NOW)).delivered) == 1


@pytest.mark.pg_only
def test_a_row_claimed_by_another_worker_is_skipped(database: Database, receiver: Receiver) -> None:
    add(database, channel="security")
    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    with database.transaction() as other:
        other.scalars(select(OutboxRow).with_for_update()).all()  # another worker holds it
        assert deliver_due(database, Clock(NOW), channels).delivered == []
    assert len(deliver_due(database, Clock(NOW), channels).delivered) == 1


def test_a_failing_channel_is_tried_once_per_pass(database: Database, receiver: Receiver) -> None:
    receiver.statuses = [500]
    for _ in range(3):
        add(database, channel="security")
    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    clock = Clock(NOW)
    report = deliver_due(database, clock, channels)
    first, second, third = rows(database)
    assert len(receiver.posts) == 1  # the others were deferred, not sent to a failing receiver
    assert report.failed[second.id].startswith("deferred: webhook: the receiver answered")
    assert (first.attempts, second.attempts, third.attempts) == (1, 0, 0)
    assert second.next_attempt_at == NOW + timedelta(seconds=30)
    clock.advance(seconds=30)
    assert len(deliver_due(database, clock, channels).delivered) == 3


def test_out_of_time_rows_are_handed_back(database: Database, receiver: Receiver) -> None:
    add(database, channel="security")
    channels: dict[str, Channel] = {"security": WebhookChannel("security", receiver.url, SECRET)}
    report = deliver_due(database, Clock(NOW), channels, budget=-1)
    assert report.delivered == []
    [row] = rows(database)
    assert row.next_attempt_at is None
    assert row.attempts == 0
    assert receiver.posts == []
