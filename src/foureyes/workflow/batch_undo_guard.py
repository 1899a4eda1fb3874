"""The items a reverse batch undoes (`batch_undo`), checked where it matters: before the undo is
recorded (in its write transaction, the original batch's row locked, so that racing undos of
the same items are decided one after the other) and again when each undo item is carried out.

- Recording: every chosen item must be, in its row *and* in the log, `executed` (not
  reverted, not cancelled); no open undo may carry it already; and the original batch must be
  intact (`batch_integrity.problem`: each item's digest recomputed from its row is the leaf of
  the approved Merkle root; `batch_ledger`: rows where the log says). An altered original is
  refused with a high `batch_tampered` alert, nothing recorded.
- Execution (`superseded`): the original item must still be `executed` and its digest the one
  checked at the start, and no later change on its account (a request or another batch item
  executed after it) may have superseded it; else the undo item fails alone, saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import Conflict
from foureyes.store.bulk import chunks, one_of
from foureyes.store.tables import BatchItemRow, BatchRow, RequestRow
from foureyes.workflow import batch_events, batch_integrity, batch_ledger

OPEN = ("pending", "approved", "executing")


class OriginalAltered(Conflict):
    """The batch an undo would reverse is not what its log and approved manifest prove."""


def check_recordable(session: Session, batch_id: str, item_ids: Sequence[str]) -> None:
    """In the undo's write transaction: lock the original batch (racing undos wait here) and
    refuse (Conflict) items already reverted, not executed, or carried by an open undo;
    OriginalAltered when the original batch was altered."""
    original = batch_events.lock(session, batch_id)
    assert original is not None
    found = altered(session, original, item_ids)
    if found is not None:
        raise OriginalAltered(
            f"batch {batch_id} is not what its log and approved manifest prove: {found}; "
            "nothing of it is undone",
            batch_id=batch_id,
        )
    rows = {i.id: i for i in batch_integrity.items_of(session, batch_id)}
    for item_id in item_ids:
        item = rows[item_id]
        if item.state != "executed":
            raise Conflict(
                f"item {item.position} of batch {batch_id} is {item.state}: it was undone "
                "already or never executed",
                positions=[item.position],
            )
    refuse_open_undo(session, batch_id, item_ids)


def altered(session: Session, original: BatchRow, item_ids: Sequence[str]) -> str | None:
    """Why the original batch, or one of the chosen items, is not what the log and the
    approved manifest prove (None: it is)."""
    items = batch_integrity.items_of(session, original.id)
    reviews = batch_integrity.reviews_of(session, original.id)
    found = batch_integrity.problem(session, original, items, reviews)
    if found is not None:
        return found
    ledger = batch_ledger.ledger(session, original.id)
    found = ledger.problem(original, items)
    if found is not None:
        return found
    known = {i.id: i for i in items}
    for item_id in item_ids:
        item = known.get(item_id)
        if item is None:
            return f"item {item_id} is not of this batch"
        logged = ledger.logged(item_id)
        if logged not in ("executed", "reverted"):
            return (
                f"item {item.position} is {item.state}, but its audit events say it was "
                f"{logged}: it never executed"
            )
    return None


def alert(services: Services, batch_id: str, found: str, during: str) -> None:
    """The high `batch_tampered` alert for an altered original, in its own transaction (the
    refused undo's rolled back)."""
    with services.database.transaction() as session:
        original = session.get(BatchRow, batch_id)
        assert original is not None
        raise_tampered(services, session, original, found, during, services.clock())


def raise_tampered(
    services: Services, session: Session, original: BatchRow, found: str, during: str, now: datetime
) -> None:
    """The high `batch_tampered` alert for `original`, in the caller's transaction."""
    raise_alert(
        services,
        session,
        NewAlert(
            batch_integrity.DETECTOR,
            "high",
            f"batch {original.id} was altered in the store: {found}",
            staff=original.requester_id,
            request=original.id,
            details={"batch": original.id, "found_during": during, "problem": found},
        ),
        now=now,
    )


def refuse_open_undo(session: Session, batch_id: str, item_ids: Sequence[str]) -> None:
    """Conflict when a reverse batch not yet ended already carries one of the items: a second
    undo of the same items would reverse whatever happened to the accounts in between."""
    for chunk in chunks(item_ids):
        open_undo = session.scalar(
            select(BatchRow.id)
            .join(BatchItemRow, BatchItemRow.batch_id == BatchRow.id)
            .where(
                BatchRow.reverts_id == batch_id,
                BatchRow.state.in_(OPEN),
                one_of(session, BatchItemRow.reverts_item_id, chunk),
                BatchItemRow.state.in_(("pending", "executing")),
            )
            .limit(1)
        )
        if open_undo is not None:
            raise Conflict(
                f"batch {open_undo} already undoes items of batch {batch_id}: decline or "
                "cancel it first",
                batch_id=open_undo,
            )


def superseded(session: Session, item: BatchItemRow, digest_at_start: str | None) -> str | None:
    """Why the undo `item` may not be carried out now (None: it may), read under the lock
    of the undo batch's chunk (the original batch locked too): the item it reverses is no
    longer `executed`, was changed since the start, or a later change on its account
    superseded it."""
    if item.reverts_item_id is None:
        return None
    original = session.get(
        BatchItemRow, item.reverts_item_id, with_for_update=True, populate_existing=True
    )
    if original is None:
        return "the item it undoes is gone"
    if original.state != "executed":
        return f"the item it undoes is {original.state}, not executed: it was undone already"
    if digest_at_start is not None and original.digest != digest_at_start:
        return "the item it undoes was changed since the undo started"
    if (original.result or {}).get("already_applied") is True:
        return "the item it undoes changed nothing: someone else had put the account in that state"
    since = original.finished_at
    if since is None:
        return "the item it undoes has no time of execution"
    later_request = session.scalar(
        select(RequestRow.id)
        .where(
            RequestRow.account_ref == original.account_ref,
            RequestRow.state.in_(("executed", "reverted")),
            RequestRow.finished_at > since,
        )
        .limit(1)
    )
    later_item = session.scalar(
        select(BatchItemRow.id)
        .where(
            BatchItemRow.account_ref == original.account_ref,
            BatchItemRow.state.in_(("executed", "reverted")),
            BatchItemRow.finished_at > since,
            BatchItemRow.id != original.id,
            BatchItemRow.id != item.id,
        )
        .limit(1)
    )
    if later_request is not None or later_item is not None:
        return (
            "a later change on the account superseded the item it undoes: undoing it now would "
            "reverse that change"
        )
    return None
