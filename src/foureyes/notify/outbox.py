"""The outbox: notifications written in the caller's transaction, delivered by the worker.

`enqueue` adds a row in the transaction of the event the notification tells about, so a
notification exists exactly when its event does, and writing it never waits on a network.
`deliver_due` (one pass of the worker) claims due rows, sends them outside any transaction and
records the outcome: delivered (`delivered_at`), or another attempt later with exponential
backoff (`attempts`, `next_attempt_at`, `last_error`). Rows are never dropped: one that cannot
be delivered (an unconfigured channel, a person without an email address, a receiver that keeps
failing) stays with its reason in `last_error` and is retried, and each pass reports it.

Several workers may share one PostgreSQL: the claim is `FOR UPDATE SKIP LOCKED` and moves
`next_attempt_at` to the end of a lease, so each row is sent by one worker at a time; a worker
that dies mid-send leaves the row to be retried when the lease ends (at-least-once delivery;
webhook receivers get a stable `Idempotency-Key`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from foureyes.notify.channels import Channel, DeliveryError, Notification
from foureyes.store.database import Database
from foureyes.store.tables import OutboxRow, StaffRow

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "LEASE",
    "Delivery",
    "backoff",
    "configure",
    "configured_channels",
    "deliver_due",
    "enqueue",
]

log = logging.getLogger(__name__)

BATCH = 100
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
LEASE = timedelta(minutes=5)
BUDGET_SECONDS = 30.0
MAX_ERROR = 2000

_lock = threading.Lock()
_configured: dict[str, Channel] = {}


def configure(channels: Mapping[str, Channel]) -> None:
    """Set the process's channels (from `channels_from_settings(settings.notify)`), used by
    `deliver_due` when it is given none. Called once at start-up by whoever builds the worker."""
    with _lock:
        _configured.clear()
        _configured.update(channels)


def configured_channels() -> dict[str, Channel]:
    with _lock:
        return dict(_configured)


def enqueue(
    session: Session,
    *,
    channel: str | None = None,
    to_staff: str | None = None,
    kind: str,
    subject: str,
    body: str,
    link: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write one notification to the outbox in the caller's transaction.

    To a channel by name (`channel`), to a person (`to_staff`: by email, through the channel
    that carries messages to people), or to a person through a given channel (both). `link` is
    a path in foureyes (made absolute with the channel's `base_url`) or a full URL. Raises
    ValueError when neither channel nor person is given. Nothing is sent here.
    """
    if channel is None and to_staff is None:
        raise ValueError("a notification needs a channel or a staff member to go to")
    session.add(
        OutboxRow(
            channel=channel,
            to_staff=to_staff,
            kind=kind[:50],
            subject=subject[:300],
            body=body,
            link=link,
            created_at=now or datetime.now(UTC),
            attempts=0,
            next_attempt_at=None,
        )
    )


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, … ≤ 1 h."""
    exponent = min(max(attempts - 1, 0), 20)
    return min(BACKOFF_BASE * (1 << exponent), BACKOFF_CAP)


@dataclass
class Delivery:
    """What one pass did: outbox ids delivered, and ids not delivered with the reason."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claimed:
    message: Notification
    channel: Channel | None
    problem: str | None  # why it cannot even be attempted


def deliver_due(
    database: Database,
    clock: Callable[[], datetime],
    channels: Mapping[str, Channel] | None = None,
    *,
    limit: int = BATCH,
    budget: float = BUDGET_SECONDS,
) -> Delivery:
    """Send every due notification once (up to `limit`); see the module docstring.

    A pass spends at most about `budget` seconds sending, and a channel that fails is not tried
    again in the same pass (its other rows wait `BACKOFF_BASE`, their attempts unchanged), so
    one dead receiver cannot hold up the worker's other work for long.
    """
    channels = configured_channels() if channels is None else channels
    report = Delivery()
    started = time.monotonic()
    failing: dict[str, str] = {}
    for claimed in _claim(database, clock(), channels, limit):
        message, channel = claimed.message, claimed.channel
        if time.monotonic() - started > budget:
            _release(database, None, message.id)  # out of time: due again next pass
            continue
        if channel is not None and channel.name in failing and claimed.problem is None:
            _release(database, clock() + BACKOFF_BASE, message.id)
            report.failed[message.id] = f"deferred: {failing[channel.name]}"
            continue
        error = claimed.problem
        if error is None and channel is not None:
            try:
                channel.send(message)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a channel bug must not stop the worker or lose the row
                log.exception("notification %s: channel failed", message.id)
                error = f"unexpected error in channel {channel.name}: {type(exc).__name__}"
            if error is not None:
                failing[channel.name] = error
        _finish(database, clock(), message.id, error)
        if error is None:
            report.delivered.append(message.id)
        else:
            log.warning("notification %s not delivered: %s", message.id, error)
            report.failed[message.id] = error
    return report


def _release(database: Database, when: datetime | None, outbox_id: int) -> None:
    """Hand a claimed row back without an attempt: due at `when` (None: at once)."""
    with database.transaction() as session:
        row = session.get(OutboxRow, outbox_id, with_for_update=True)
        if row is not None and row.delivered_at is None:
            row.next_attempt_at = when


def _people_channel(channels: Mapping[str, Channel]) -> Channel | None:
    marked = [c for c in channels.values() if c.people]
    if marked:
        return marked[0]
    email = [c for c in channels.values() if c.kind == "email"]
    return email[0] if len(email) == 1 else None


def _claim(
    database: Database, now: datetime, channels: Mapping[str, Channel], limit: int
) -> list[_Claimed]:
    with database.transaction() as session:
        rows = session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.delivered_at.is_(None),
                or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now),
            )
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = []
        for row in rows:
            row.next_attempt_at = now + LEASE  # ours until the lease ends
            claimed.append(_resolve(session, row, channels))
        return claimed


def _resolve(session: Session, row: OutboxRow, channels: Mapping[str, Channel]) -> _Claimed:
    channel: Channel | None
    problem = None
    if row.channel is not None:
        channel = channels.get(row.channel)
        if channel is None:
            problem = (
                f"no notification channel {row.channel!r} is configured "
                f"(add [notify.{row.channel}] to foureyes.toml)"
            )
    else:
        channel = _people_channel(channels)
        if channel is None:
            problem = (
                "no channel for messages to people is configured "
                "(an email channel with people = true)"
            )
    email = None
    if row.to_staff is not None and problem is None:
        person = session.get(StaffRow, row.to_staff)
        email = person.email if person is not None else None
        if not email and channel is not None and channel.kind == "email":
            problem = f"staff member {row.to_staff!r} has no email address in the directory"
    message = Notification(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        body=row.body,
        link=row.link,
        channel=row.channel,
        to_staff=row.to_staff,
        to_email=email or None,
        created_at=row.created_at,
    )
    return _Claimed(message, channel, problem)


def _finish(database: Database, now: datetime, outbox_id: int, error: str | None) -> None:
    with database.transaction() as session:
        row = session.get(OutboxRow, outbox_id, with_for_update=True)
        if row is None or row.delivered_at is not None:
            return
        row.attempts += 1
        if error is None:
            row.delivered_at = now
            row.next_attempt_at = None
        else:
            row.last_error = error[:MAX_ERROR]
            row.next_attempt_at = now + backoff(row.attempts)
