"""An undo batch that ends without being carried out (cancelled, declined, expired) takes its
split-out undo requests with it (attack F3): each one still open (pending, approved or
scheduled) is cancelled in the batch's own transaction, with its `request.cancelled` event.
Otherwise withdrawing or vetoing the undo would leave its most sensitive part, the item of an
account protected since, to be carried out on that request's own approvals.

A request already executing is left to end as it will (its call may be made). The batch's
event names the requests it cancelled (`batch_events.move`); a request's reason names no
batch (whoever may see the request may not see the batch)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.events import lock_request, move
from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.store.tables import BatchRow, RequestRow

# The ends of a batch that carry none of it out.
STOPPED = frozenset({"cancelled", "declined", "expired"})
_OPEN = (RequestState.PENDING.value, RequestState.APPROVED.value, RequestState.SCHEDULED.value)


def cancel_split_requests(
    services: Services, session: Session, batch: BatchRow, now: datetime
) -> list[str]:
    """For `batch` (locked) an undo batch now stopped (`STOPPED`): cancel its split-out undo
    requests still open, each locked and moved with its event; their ids (none: [])."""
    if batch.reverts_id is None or batch.state not in STOPPED:
        return []
    ids = sorted(
        {
            str(made["request_id"])
            for made in batch.split_requests or []
            if isinstance(made, dict) and made.get("request_id")
        }
    )
    if not ids:
        return []
    cancelled: list[str] = []
    for request_id in session.scalars(
        select(RequestRow.id)
        .where(
            RequestRow.id.in_(ids),
            RequestRow.reverts_item_id.is_not(None),
            RequestRow.state.in_(_OPEN),
        )
        .order_by(RequestRow.id)
    ):
        row = lock_request(session, request_id)
        if row.state not in _OPEN:
            continue  # it moved on while we waited for its lock
        move(
            services,
            session,
            row,
            RequestState.CANCELLED,
            actor=None,
            kind="request.cancelled",
            now=now,
            reason=f"cancelled with the undo batch it was split out of, which was {batch.state}",
        )
        cancelled.append(row.id)
    return cancelled
