"""The outbox: notifications written in the caller's transaction, delivered by the worker.

`enqueue` adds a row in the transaction of the event the notification tells about, so a
notification exists exactly when its event does, and writing it never waits on a network.
`deliver_due` (one pass of the worker) claims due rows, sends them outside any transaction and
records the outcome: delivered (`delivered_at`), or another attempt later with exponential
backoff (`attempts`, `next_attempt_at`, `last_error`). Rows are never dropped: one that cannot
be delivered (a person without an email address, a receiver that keeps failing) stays with its
reason in `last_error` and is retried, and each pass reports it.

Only what has somewhere to go is queued. Once the process's channels are set (`configure`, at
start-up: `serve`, `worker` and every command do), `enqueue` writes nothing for a channel that
is not configured, nor for a person when no channel carries messages to people; a worker says
so once when it starts (`announce`), not per notification. Rows queued before (by an older
foureyes, or while a channel was configured) wait untouched, not claimed by any pass, until
their channel is configured again.

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
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select
from sqlalchemy.orm import Session

from foureyes.errors import FoureyesError
from foureyes.notify.channels import Channel, DeliveryError, Notification
from foureyes.store.database import Database
from foureyes.store.tables import OutboxRow, StaffRow

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "LEASE",
    "Delivery",
    "accepts",
    "announce",
    "backoff",
    "channel_names",
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


@dataclass
class _Process:
    # None until the process says which channels it has: till then everything is queued
    # (foureyes used as a library, tests of what the lifecycle writes), and nothing delivered.
    channels: dict[str, Channel] | None = None


_configured = _Process()


def configure(channels: Mapping[str, Channel] | None) -> None:
    """Set the process's channels (from `channels_from_settings(settings.notify)`): `enqueue`
    queues only for them, and `deliver_due` sends through them when it is given none. Called at
    start-up (`services_for`). None forgets them: everything is queued again."""
    with _lock:
        _configured.channels = None if channels is None else dict(channels)


def channel_names() -> frozenset[str] | None:
    """The names of the process's channels, None while it has not said which it has (then
    everything is queued: `accepts`)."""
    with _lock:
        channels = _configured.channels
    return None if channels is None else frozenset(channels)


def configured_channels() -> dict[str, Channel]:
    with _lock:
        return dict(_configured.channels or {})


def accepts(*, channel: str | None = None, to_staff: str | None = None) -> bool:
    """Whether a notification to `channel` (or, without one, to the person `to_staff`) would
    be queued: its channel is configured, or a channel carries messages to people. True while
    the process has not said which channels it has."""
    with _lock:
        configured = _configured.channels
    if configured is None:
        return True
    if channel is not None:
        return channel in configured
    return to_staff is not None and _people_channel(configured) is not None


_INSERT = insert(OutboxRow)


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
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Write one notification to the outbox in the caller's transaction; whether it was.

    To a channel by name (`channel`), to a person (`to_staff`: by email, through the channel
    that carries messages to people), or to a person through a given channel (both). `link` is
    a path in foureyes (made absolute with the channel's `base_url`) or a full URL. `details`:
    the request card chat channels render (`foureyes.notify.card`; never a secret). Raises
    ValueError when neither channel nor person is given. Nothing is sent here, and nothing is
    written when it has nowhere to go (`accepts`).
    """
    if channel is None and to_staff is None:
        raise ValueError("a notification needs a channel or a staff member to go to")
    if not accepts(channel=channel, to_staff=to_staff):
        return False
    # A Core INSERT, not the unit of work: a notification is written once and never changed
    # in its transaction (the table is not sealed, and nothing refers to its rows), and the
    # ORM's flush of it cost more than the statement. Rows keep the order they are enqueued in.
    session.connection().execute(
        _INSERT,
        {
            "channel": channel,
            "to_staff": to_staff,
            "kind": kind[:50],
            "subject": subject[:300],
            "body": body,
            "link": link,
            "details": None if details is None else dict(details),
            "created_at": now or datetime.now(UTC),
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
            "delivered_at": None,
        },
    )
    return True


def announce(database: Database, channels: Mapping[str, Channel] | None = None) -> None:
    """Say, once (a worker calls it when it starts), where notifications go: to which
    channels, what is not queued for lack of one, and how many older rows wait for a channel
    that is not configured (they are left alone, never claimed). Never raises: a store that
    cannot be read now only shortens the message."""
    if channels is None:
        with _lock:
            unset = _configured.channels is None
        if unset:
            log.warning("notifications: this process's channels are not set: none are sent")
            return
        channels = configured_channels()
    if not channels:
        log.warning(
            "notifications: no channel is configured, so none are queued or sent (add "
            "[notify.<name>] tables to foureyes.toml; see docs/notifications.md)"
        )
    else:
        log.info("notifications go to the channels %s", ", ".join(sorted(channels)))
        if _people_channel(channels) is None:
            log.warning(
                "notifications: no channel carries messages to people (an email channel with "
                "people = true), so reviewers and requesters are not messaged"
            )
    try:
        with database.transaction() as session:
            queued = session.execute(
                select(OutboxRow.channel, func.count())
                .where(OutboxRow.delivered_at.is_(None))
                .group_by(OutboxRow.channel)
            ).all()
    except FoureyesError as exc:
        log.warning("notifications: the outbox could not be read: %s", exc.message)
        return
    people = _people_channel(channels) is not None
    waiting = [
        (channel, count)
        for channel, count in queued
        if (channel not in channels if channel is not None else not people)
    ]
    if waiting:
        names = sorted(channel or "(people)" for channel, _ in waiting)
        log.warning(
            "notifications: %d in the outbox wait for channels that are not configured (%s); "
            "they are kept, and go out once their channel is configured",
            sum(int(count) for _, count in waiting),
            ", ".join(names),
        )


def _routed(channels: Mapping[str, Channel]) -> ColumnElement[bool]:
    """The outbox rows `channels` can carry: to one of them, or to a person when one carries
    messages to people."""
    routes: list[ColumnElement[bool]] = [OutboxRow.channel.in_(sorted(channels))]
    if _people_channel(channels) is not None:
        routes.append(OutboxRow.channel.is_(None))
    return or_(*routes)


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
    """Send every due notification once (up to `limit`); see the module docstring. Rows for a
    channel not in `channels` (or to people, when none carries them) are left alone.

    A pass spends at most about `budget` seconds sending, and a channel that fails is not tried
    again in the same pass (its other rows wait `BACKOFF_BASE`, their attempts unchanged), so
    one dead receiver cannot hold up the worker's other work for long.
    """
    channels = configured_channels() if channels is None else channels
    report = Delivery()
    if not channels:
        return report  # nothing can be sent: not even a query
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
                _routed(channels),
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
    # Only rows `_routed(channels)` are claimed: each has its channel.
    channel = channels.get(row.channel) if row.channel is not None else _people_channel(channels)
    problem = None
    email = None
    if row.to_staff is not None:
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
        details=row.details,
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
