"""A request past its `expires_at`: what the worker's expiry pass does to it, done by whoever
finds it first (the pass, a review of a pending request, the requester's execution of what waits
for them), so that nobody acts on it between its deadline and the pass."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.core.events import move
from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.store.tables import RequestRow


def overdue(row: RequestRow, now: datetime) -> bool:
    """Whether `row`'s deadline has passed (a request without one never expires)."""
    return row.expires_at is not None and row.expires_at <= now


def expire(services: Services, session: Session, row: RequestRow, now: datetime) -> str:
    """Move `row` (locked, checked against its log by the caller) to `expired` with its event,
    in the caller's transaction; the reason recorded."""
    move(
        services,
        session,
        row,
        RequestState.EXPIRED,
        actor=None,
        kind="request.expired",
        now=now,
        reason=f"not carried out before {row.expires_at}",
    )
    return row.reason or ""
