"""Is a batch in the store what was submitted and approved? Checked before every review and
before execution (and again on every item before it is carried out), because the database's
triggers (migration 0015) are only defence in depth: a DBA can drop them.

- every item's digest, recomputed from its row and the batch's (`batch_manifest.item_digest`),
  equals the stored one: re-targeting an item (its account), moving it, or changing the
  batch's action, params, justification or requester shows here;
- the items are exactly positions 0..item_count-1, and the Merkle root over their digests is
  the batch's digest: an item added, removed or swapped shows here;
- that digest, the action, the requester and the item count are those of the batch's one
  `batch.submitted` audit event (its body, which the log's tree covers): rewriting the
  digests to match edited rows shows here;
- every review row has its `batch.reviewed` event, with the same person, decision and digest:
  a forged approval shows here;
- the batch's events are found by their bodies too, not only by the `request_id` and `kind`
  columns beside them (which the tree's hashes do not cover): an event whose body names the
  batch that the columns do not find (relabelled, cleared or re-pointed: a hidden veto, attack
  hide-F2), or a row moved, deleted or edited among its events (`core.request_index`), shows
  here (`read_trail`, also `batch_ledger`'s).

A batch found altered is stopped (`refuse`): cancelled if it had not started, else its
remaining items are cancelled (either way every item not carried out is settled `cancelled`,
with its event); with a high `batch_tampered` alert. Its requester is told only that an
integrity check stopped it (`batch_notify`): the reasons are oversight's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from foureyes.core import found_events
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.store.tables import BatchItemRow, BatchReviewRow, BatchRow, EventRow
from foureyes.store.tree import in_tree
from foureyes.workflow import batch_events, batch_manifest, batch_notify

DETECTOR = "batch_tampered"
REVIEWED = "batch.reviewed"
_KINDS = (batch_events.SUBMITTED, REVIEWED)
_TRAIL = select(EventRow.seq, EventRow.body).where(
    EventRow.request_id == bindparam("batch_id"), EventRow.kind.in_(_KINDS), in_tree()
)


def items_of(session: Session, batch_id: str, *, lock: bool = False) -> list[BatchItemRow]:
    query = select(BatchItemRow).where(BatchItemRow.batch_id == batch_id)
    query = query.order_by(BatchItemRow.position)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(query))


def reviews_of(session: Session, batch_id: str) -> list[BatchReviewRow]:
    return list(
        session.scalars(
            select(BatchReviewRow)
            .where(BatchReviewRow.batch_id == batch_id)
            .order_by(BatchReviewRow.id)
        )
    )


def expected_digest(batch: BatchRow, item: BatchItemRow) -> str:
    """The digest `item` must have, recomputed from the rows."""
    return batch_manifest.item_digest(
        item_id=item.id,
        position=item.position,
        account=item.account_ref,
        action=batch.action,
        params=batch.params,
        justification=batch.justification,
        requester=batch.requester_id,
        reverts=item.reverts_item_id,
    )


def problem(
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    reviews: Sequence[BatchReviewRow] = (),
) -> str | None:
    """Why the stored batch is not what was submitted and reviewed (None: it is)."""
    for item in items:
        if item.batch_id != batch.id:
            return f"item {item.id} is not of this batch"
        if expected_digest(batch, item) != item.digest:
            return (
                f"item {item.position} ({item.account_ref}) does not match its digest: "
                "it was changed after submission"
            )
    if [i.position for i in items] != list(range(batch.item_count)):
        return "the batch's items are not the ones submitted (added, removed or moved)"
    if batch_manifest.root([i.digest for i in items]) != batch.digest:
        return "the items' Merkle root is not the batch's digest"
    submitted, verdicts, store = _trail(session, batch.id)
    if store is not None:
        return store
    if len(submitted) != 1:
        return f"the log holds {len(submitted)} batch.submitted events for it, not one"
    logged = submitted[0]
    for key, stored in (
        ("digest", batch.digest),
        ("action", batch.action),
        ("item_count", batch.item_count),
        ("justification", batch.justification),
    ):
        if logged.get(key) != stored:
            return f"its {key} is not the one its batch.submitted event recorded"
    if logged.get("actor") != batch.requester_id:
        return "its requester is not the one its batch.submitted event recorded"
    seen = sorted((v.get("actor"), v.get("decision"), v.get("reviewed_digest")) for v in verdicts)
    stored_reviews = sorted((r.reviewer_id, r.decision, r.digest) for r in reviews)
    if seen != stored_reviews:
        return "its reviews are not the ones the log recorded"
    return None


def _trail(
    session: Session, batch_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The batch's submitted and review events, and why its events are not all found under it
    (None: they are)."""
    rows = session.connection().execute(_TRAIL, {"batch_id": batch_id})
    read = read_trail(session, batch_id, ((int(s), bytes(r)) for s, r in rows), _KINDS)
    submitted: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    for _seq, body in sorted(read.bodies.items()):
        if body.get("kind") == batch_events.SUBMITTED:
            submitted.append(body)
        elif body.get("kind") == REVIEWED:
            verdicts.append(body)
    return submitted, verdicts, read.problem()


def read_trail(
    session: Session,
    batch_id: str,
    rows: Iterable[tuple[int, bytes]],
    kinds: Collection[str],
    *,
    seen: Collection[int] = (),
    since: int | None = None,
) -> found_events.Found:
    """A batch's events as their bodies say (`core.found_events.complete`, from its
    `batch.submitted` event on)."""
    return found_events.complete(
        session, batch_id, rows, kinds, batch_events.SUBMITTED, seen=seen, since=since
    )


def refuse(
    services: Services,
    session: Session,
    batch: BatchRow,
    found: str,
    now: datetime,
    *,
    during: str,
) -> str:
    """Stop an altered batch in the caller's transaction (the module's docstring); the
    reason."""
    reason = f"re-check at {during} failed: {found}; {batch_notify.STOPPED}"
    if batch.state in ("pending", "approved"):
        _cancel_items(services, session, batch, now, reason)
        batch_events.move(
            services,
            session,
            batch,
            "cancelled",
            allowed=(batch.state,),
            actor=None,
            now=now,
            reason=reason,
        )
    elif batch.state == "executing":
        cancel_remaining(services, session, batch, now, reason)
    details: Mapping[str, Any] = {"batch": batch.id, "found_during": during, "problem": found}
    raise_alert(
        services,
        session,
        NewAlert(
            DETECTOR,
            "high",
            f"batch {batch.id} was altered in the store: {found}",
            staff=batch.requester_id,
            request=batch.id,
            details=details,
        ),
        now=now,
    )
    return reason


def cancel_remaining(
    services: Services, session: Session, batch: BatchRow, now: datetime, reason: str
) -> int:
    """Cancel every item not yet carried out (one event each) and end the batch `executed`
    with its counts; how many were cancelled."""
    left = _cancel_items(services, session, batch, now, reason)
    batch_events.move(
        services,
        session,
        batch,
        "executed",
        allowed=("executing",),
        actor=None,
        now=now,
        reason=reason,
        details=counts(batch),
    )
    return left


def _cancel_items(
    services: Services, session: Session, batch: BatchRow, now: datetime, reason: str
) -> int:
    """Cancel every item not yet carried out, one event each (counted as cancelled, not
    failed: nothing was tried); how many."""
    left = [
        i for i in items_of(session, batch.id, lock=True) if i.state in ("pending", "executing")
    ]
    events = []
    for item in left:
        item.state, item.reason, item.finished_at = "cancelled", reason, now
        events.append(
            batch_events.item_event(
                services, batch, item, "batch.item.cancelled", now, {"reason": reason}
            )
        )
    services.audit.append_many(session, events)
    return len(left)


def counts(batch: BatchRow) -> dict[str, int]:
    """An ended batch's counts: cancelled items (re-checks, a stop) are neither executed nor
    failed."""
    return {
        "items": batch.item_count,
        "executed": batch.executed_count,
        "failed": batch.failed_count,
        "cancelled": batch_notify.cancelled_count(batch),
    }
