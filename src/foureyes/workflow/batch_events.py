"""A batch's audit events, in the transaction of the change they record: the batch's own
(`batch.submitted`, `.approved`, `.executing`, `.executed`, ...) and one per item
(`batch.item.executed`, `batch.item.failed`, `batch.item.cancelled`). Each names the batch as its
`request_id`; an item's also names its account, position, id and digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import NewEvent
from foureyes.core.redaction import event_payload
from foureyes.core.services import Services, json_safe
from foureyes.errors import Conflict, NotFound
from foureyes.store.tables import BatchItemRow, BatchRow
from foureyes.workflow import batch_notify, batch_split_end

SUBMITTED = "batch.submitted"


def record(
    services: Services,
    session: Session,
    row: BatchRow,
    kind: str,
    *,
    actor: str | None,
    now: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Append the batch's event `kind` in the caller's transaction (no event, no change)."""
    body = dict(json_safe(dict(payload or {})))
    body.setdefault("batch", row.id)
    body.setdefault("action", row.action)
    body.setdefault("digest", row.digest)
    services.audit.append(
        session,
        kind=kind,
        actor=actor,
        account_ref=None,
        request_id=row.id,
        payload=body,
        at=now,
    )


def item_event(
    services: Services,
    batch: BatchRow,
    item: BatchItemRow,
    kind: str,
    now: datetime,
    details: Mapping[str, Any],
) -> NewEvent:
    """One item's event, to append with `AuditLog.append_many` (private attribute values
    redacted, as every event's: `redaction.event_payload`)."""
    body = json_safe(
        event_payload(
            services,
            item.account_ref,
            {
                "batch": batch.id,
                "item": item.id,
                "position": item.position,
                "item_digest": item.digest,
                "digest": batch.digest,
                "action": batch.action,
                "attempt": item.attempt,
                **details,
            },
        )
    )
    return NewEvent(
        kind=kind,
        actor=None,
        account_ref=item.account_ref,
        request_id=batch.id,
        payload=body,
        at=now,
    )


def move(
    services: Services,
    session: Session,
    row: BatchRow,
    to: str,
    *,
    allowed: Sequence[str],
    actor: str | None,
    now: datetime,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Move the (locked) batch from one of `allowed` to `to` with its `batch.<to>` event;
    Conflict when it is in another state (never silently nothing)."""
    if row.state not in allowed:
        raise Conflict(
            f"batch {row.id} is {row.state}, not {' or '.join(allowed)}",
            batch_id=row.id,
            state=row.state,
        )
    before = row.state
    row.state, row.updated_at = to, now
    if reason is not None:
        row.reason = reason
    if to in FINAL:
        row.finished_at = now
    # An undo batch that ends without being carried out takes its split-out undo requests
    # with it, in this transaction (attack F3).
    ended = batch_split_end.cancel_split_requests(services, session, row, now)
    if ended:
        details = {**(details or {}), "split_requests_cancelled": ended}
    record(
        services,
        session,
        row,
        f"batch.{to}",
        actor=actor,
        now=now,
        payload={"from": before, "to": to, "reason": reason, **(details or {})},
    )
    # The requester hears of a decision or the end, in this transaction (the outbox).
    batch_notify.moved(session, row, now, actor=actor)


FINAL = frozenset({"executed", "declined", "expired", "cancelled", "empty"})


def lock(session: Session, batch_id: str, *, skip_locked: bool = False) -> BatchRow | None:
    """The batch row locked for this transaction (None: another holds it, with
    `skip_locked`); NotFound when there is none."""
    row = session.scalar(
        select(BatchRow)
        .where(BatchRow.id == batch_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    if row is None:
        if skip_locked and session.get(BatchRow, batch_id) is not None:
            return None
        raise NotFound(f"no batch {batch_id!r}")
    return row


def keep_split_requests(
    services: Services, batch_id: str, made: list[dict[str, Any]], *, actor: str
) -> None:
    """Keep on the batch the ordinary requests its split-out items became, with the
    `batch.split_out` event."""
    with services.database.transaction() as session:
        now = services.clock()
        row = lock(session, batch_id)
        assert row is not None
        row.split_requests = json_safe(made)
        # Ended meanwhile (cancelled, declined or expired before its split-out requests were
        # kept): they end with it, as they would have with its move (`batch_split_end`).
        ended = batch_split_end.cancel_split_requests(services, session, row, now)
        record(
            services,
            session,
            row,
            "batch.split_out",
            actor=actor,
            now=now,
            payload={"requests": made, **({"cancelled": ended} if ended else {})},
        )
