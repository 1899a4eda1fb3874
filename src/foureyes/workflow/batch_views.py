"""Reading batches: one batch with its progress, lists, and the proof that an item is in its
manifest (`batch_manifest.membership`).

Need-to-know as for requests (`foureyes.workflow.access`): a batch is visible to oversight
staff, its requester, whoever reviewed it, and, while it is pending, whoever may review it
(eligible under its batch rule's `approvers` now). To anyone else it is NotFound, as an
unknown id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foureyes.core.services import Actor, Services
from foureyes.errors import NotFound
from foureyes.policy.batches import batch_rule_for
from foureyes.policy.reference import run
from foureyes.store.tables import BatchItemRow, BatchReviewRow, BatchRow
from foureyes.workflow import batch_integrity, batch_manifest
from foureyes.workflow.views import page_position

MAX_ITEMS_SHOWN = 1000


def unknown(batch_id: str) -> NotFound:
    return NotFound(f"no batch {batch_id!r}")


def may_review(services: Services, session: Session, batch: BatchRow, actor: Actor) -> bool:
    """Whether `actor` is, now, someone whose review of the pending batch would count: not
    its requester, able to act today, eligible under its batch rule's `approvers`."""
    return batch.state == "pending" and may_approve(services, session, batch, actor)


def may_approve(services: Services, session: Session, batch: BatchRow, actor: Actor) -> bool:
    """Whether `actor` is, now, eligible under the batch's batch rule's `approvers` (not its
    requester, able to act today), whatever the batch's state: who may also cancel it during
    its delay (`batch_cancel`)."""
    if actor.id == batch.requester_id:
        return False
    now = services.clock()
    if actor.staff.floor_problem(now.date()) is not None:
        return False
    _, policy = services.policy_in_force(session)
    rule = batch_rule_for(policy, batch.action)
    spec = policy.catalog.actions.get(batch.action)
    if rule is None or spec is None:
        return False
    requester = services.staff(session, batch.requester_id)
    found, _ = run(
        rule.approvers.fn,
        {
            "approver": actor.staff.cel(now.date()),
            "requester": requester.cel(now.date()),
            "action": spec.cel,
        },
    )
    return found is True


def may_cancel(services: Services, session: Session, batch: BatchRow, actor: Actor) -> bool:
    """Whether `actor` may cancel the batch now (`batch_cancel`): its requester while it is
    pending or approved; an eligible approver while its delay runs."""
    if batch.state not in ("pending", "approved"):
        return False
    if actor.id == batch.requester_id:
        return True
    in_delay = batch.state == "approved" and (
        batch.not_before is not None and batch.not_before > services.clock()
    )
    return in_delay and may_approve(services, session, batch, actor)


def may_see(services: Services, session: Session, batch: BatchRow, actor: Actor) -> bool:
    if services.oversees(actor.staff) or actor.id == batch.requester_id:
        return True
    reviewed = session.scalar(
        select(BatchReviewRow.id).where(
            BatchReviewRow.batch_id == batch.id, BatchReviewRow.reviewer_id == actor.id
        )
    )
    return reviewed is not None or may_review(services, session, batch, actor)


def visible(services: Services, session: Session, batch_id: str, actor: Actor) -> BatchRow:
    batch = session.get(BatchRow, batch_id)
    if batch is None or not may_see(services, session, batch, actor):
        raise unknown(batch_id)
    return batch


def show(services: Services, actor: Actor, batch_id: str, *, items: bool = True) -> dict[str, Any]:
    """The batch as `actor` may see it: what was asked, its plan (bar, denied and split-out
    accounts with reasons, split requests), its reviews, its progress and (with `items`) its
    first `MAX_ITEMS_SHOWN` items."""
    with services.database.read() as session:
        batch = visible(services, session, batch_id, actor)
        shown = view(batch, batch_integrity.reviews_of(session, batch.id), progress(session, batch))
        shown["may_review"] = may_review(services, session, batch, actor)
        shown["may_cancel"] = may_cancel(services, session, batch, actor)
        if items:
            rows = session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch.id)
                .order_by(BatchItemRow.position)
                .limit(MAX_ITEMS_SHOWN)
            )
            shown["items"] = [item_view(i, batch.state) for i in rows]
        return shown


def view(
    batch: BatchRow, reviews: Sequence[BatchReviewRow], shown: dict[str, Any]
) -> dict[str, Any]:
    """The batch's fields, its reviews and its `progress` (`shown`), whose counts it
    repeats at the top (executed, failed, cancelled, pending: they sum to its items)."""
    return {
        "id": batch.id,
        "state": batch.state,
        "digest": batch.digest,
        "requester": batch.requester_id,
        "action": batch.action,
        "params": batch.params,
        "justification": batch.justification,
        "item_count": batch.item_count,
        "policy_version": batch.policy_version,
        "requirement": batch.plan.get("requirement"),
        "counts": batch.plan.get("counts"),
        "denied": batch.plan.get("denied", []),
        "split_out": batch.plan.get("split_out", []),
        "split_requests": batch.split_requests,
        "reverts": batch.reverts_id,
        "reviews": [
            {
                "reviewer": r.reviewer_id,
                "decision": "approve" if r.decision == "approve" else "decline",
                "comment": r.comment,
                "at": _iso(r.created_at),
            }
            for r in reviews
        ],
        **{count: shown[count] for count in COUNTS},
        "progress": shown,
        "reason": batch.reason,
        "created_at": _iso(batch.created_at),
        "expires_at": _iso(batch.expires_at),
        "not_before": _iso(batch.not_before),
        "finished_at": _iso(batch.finished_at),
    }


# A batch that ended before carrying out its items (declined, expired, cancelled before it
# started): its items were never to be carried out, whatever their rows still say.
_STOPPED = frozenset({"declined", "expired", "cancelled"})


def item_view(item: BatchItemRow, batch_state: str | None = None) -> dict[str, Any]:
    stopped = batch_state in _STOPPED and item.state == "pending"
    return {
        "position": item.position,
        "id": item.id,
        "account": item.account_ref,
        "digest": item.digest,
        "state": "cancelled" if stopped else item.state,
        "attempt": item.attempt,
        "result": item.result,
        "reason": item.reason,
    }


# The four counts every view of a batch gives (API, console, CLI); they sum to its items.
COUNTS = ("executed", "failed", "cancelled", "pending")


def progress(session: Session, batch: BatchRow) -> dict[str, Any]:
    """Items by state, the share done (executed, failed or cancelled), for progress bars, and
    the `COUNTS`, read from the items themselves: executed (an item an undo reverted was
    executed), failed, cancelled (by a re-check at the start or at a chunk, by a stop, or
    never carried out because the batch ended before it ran) and pending (waiting, or
    executing: its call not yet settled)."""
    by_state: dict[str, int] = {
        state: int(count)
        for state, count in session.execute(
            select(BatchItemRow.state, func.count())
            .where(BatchItemRow.batch_id == batch.id)
            .group_by(BatchItemRow.state)
        )
    }
    if batch.state in _STOPPED and "pending" in by_state:
        by_state["cancelled"] = by_state.get("cancelled", 0) + by_state.pop("pending")
    done = sum(by_state.get(s, 0) for s in ("executed", "failed", "cancelled", "reverted"))
    total = batch.item_count
    found = sum(by_state.values())
    # More (or fewer) item rows than the batch was submitted with: rows added or removed
    # behind foureyes (its execution stops it with `batch_tampered`); said, never shown as
    # more than done.
    problem = (
        {"problem": f"the store holds {found} items for this batch, submitted with {total}"}
        if found != total
        else {}
    )
    return {
        "total": total,
        "done": done,
        "by_state": by_state,
        "percent": 100 if total == 0 else min(100, int(done * 100 / total)),
        **problem,
        "executed": by_state.get("executed", 0) + by_state.get("reverted", 0),
        "failed": by_state.get("failed", 0),
        "cancelled": by_state.get("cancelled", 0),
        "pending": by_state.get("pending", 0) + by_state.get("executing", 0),
    }


def list_batches(
    services: Services, actor: Actor, *, state: str | None = None, reviewable: bool = False
) -> list[dict[str, Any]]:
    """The latest 100 batches `actor` may see (newest first), without their items."""
    return page_batches(services, actor, state=state, reviewable=reviewable, limit=100)[0]


def page_batches(
    services: Services,
    actor: Actor,
    *,
    state: str | None = None,
    reviewable: bool = False,
    limit: int = 50,
    before: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The batches `actor` may see, newest first, without their items, and the cursor of the
    next page (`created_at|id` of the last item, None on the last page), as
    `views.list_requests` pages requests: `before` is such a cursor (BadInput for one this
    server did not give out); a page holds up to `limit` (1 to 200) items, and `more` is known
    by finding one more that passes, so the cursor never points past a hidden row."""
    limit = max(1, min(limit, 200))
    with services.database.read() as session:
        query = select(BatchRow).order_by(BatchRow.created_at.desc(), BatchRow.id.desc())
        if state is not None:
            query = query.where(BatchRow.state == state)
        if reviewable:
            query = query.where(BatchRow.state == "pending")
        if before is not None:
            when, last_id = page_position(before)
            query = query.where(
                (BatchRow.created_at < when)
                | ((BatchRow.created_at == when) & (BatchRow.id < last_id))
            )
        found: list[dict[str, Any]] = []
        last: BatchRow | None = None
        more = False
        for batch in session.scalars(query.execution_options(yield_per=limit + 1)):
            if reviewable and not may_review(services, session, batch, actor):
                continue
            if not may_see(services, session, batch, actor):
                continue
            if len(found) == limit:
                more = True
                break
            found.append(view(batch, (), progress(session, batch)))
            last = batch
        cursor = f"{last.created_at.isoformat()}|{last.id}" if more and last is not None else None
        return found, cursor


def prove(services: Services, actor: Actor, batch_id: str, position: int) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of item `position` in the batch's manifest tree, with the
    item it proves (`batch_manifest.verify_membership` checks it)."""
    with services.database.read() as session:
        batch = visible(services, session, batch_id, actor)
        digests = list(
            session.scalars(
                select(BatchItemRow.digest)
                .where(BatchItemRow.batch_id == batch.id)
                .order_by(BatchItemRow.position)
            )
        )
        if not 0 <= position < len(digests):
            raise NotFound(f"batch {batch_id} has no item at position {position}")
        item = session.scalar(
            select(BatchItemRow).where(
                BatchItemRow.batch_id == batch.id, BatchItemRow.position == position
            )
        )
        assert item is not None
        proof = batch_manifest.membership(digests, position).to_dict()
        return {**proof, "batch": batch.id, "batch_digest": batch.digest, "item": item_view(item)}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
