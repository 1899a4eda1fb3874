"""One pending request per account (the policy's `one_pending_per_account`): what is pending
on an account, who waits for whom, and since when a request may be decided.

What is pending on an account is its covered pending *requests* and the items of covered
pending *batches* (a batch's included item is a pending request on its account, for this rule
as for any other: M1 of the routing attack run). They queue in submission order (the seq of
their `request.submitted` / `batch.submitted` events: two recorded in the same instant are
still one before the other). A request waits (is "held") while anything covered is pending on
its account ahead of it; a batch never waits: one whose accounts have something covered
pending is refused (`foureyes.workflow.routing.guard_batch`).

`decidable_since`: a held request's escalation (`escalate.after`) and reminders count from
when it stopped being held, not from its submission, so that the usual approvers get the same
window before the escalation group as for a request that never waited. It is worked out from
the log (the events that took the requests ahead of it out of pending), so the approval and
the execution re-check find the same moment.

Expiry is not moved: a held request's `expires_at` runs from its submission, as any other
request's, and it may expire while it waits. Expiry bounds how long a question about an
account stays open (the account and the reasons for asking change), whatever held it up; a
request that expired while held is asked again. `decidable_since` moves only who is told and
when the escalation group may approve, so that waiting never shortens the usual approvers'
window; it never lengthens the request's life.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.policy.compiler import Policy
from foureyes.policy.schema import OnePendingSpec
from foureyes.store import page_memo
from foureyes.store.tables import BatchItemRow, BatchRow, EventRow, QuotaLockRow, RequestRow

__all__ = [
    "ONE_PENDING_LOCK",
    "Pending",
    "covers",
    "decidable_since",
    "escalation_start",
    "held_by",
    "lock",
    "queue",
    "spec_for",
]

# The lock row's "quota" name for the per-account lock: no quota id can start with "#".
ONE_PENDING_LOCK = "#one_pending_per_account"
BATCH_PENDING = "pending"
# The events that take a request or a batch out of pending (decided, cancelled, expired).
LEFT_PENDING = (
    "request.approved",
    "request.denied",
    "request.vetoed",
    "request.cancelled",
    "request.expired",
    "batch.approved",
    "batch.declined",
    "batch.expired",
    "batch.cancelled",
)
_SUBMITTED = ("request.submitted", "batch.submitted")


@dataclass(frozen=True)
class Pending:
    """A covered pending request, or a covered pending batch with an item on the account."""

    kind: str  # "request" or "batch"
    id: str
    action: str
    requester: str
    created_at: datetime


def covers(spec: OnePendingSpec, action: str) -> bool:
    if spec.actions == "all":
        return True
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in spec.actions)


def spec_for(policy: Policy, action: str) -> OnePendingSpec | None:
    """The policy's `one_pending_per_account` when it covers `action`, else None."""
    spec = policy.document.one_pending_per_account
    return spec if spec is not None and covers(spec, action) else None


def lock(session: Session, account_ref: str) -> None:
    """Serialise submissions on one account (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises every writer). Callers taking several accounts take them in sorted order."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        pg_insert(QuotaLockRow)
        .values(quota_id=ONE_PENDING_LOCK, key=account_ref)
        .on_conflict_do_nothing(index_elements=["quota_id", "key"])
    )
    session.execute(
        select(QuotaLockRow.quota_id)
        .where(QuotaLockRow.quota_id == ONE_PENDING_LOCK, QuotaLockRow.key == account_ref)
        .with_for_update()
    )


def _seqs(session: Session, ids: list[str]) -> dict[str | None, int]:
    if not ids:
        return {}
    found = session.execute(
        select(EventRow.request_id, EventRow.seq).where(
            EventRow.kind.in_(_SUBMITTED), EventRow.request_id.in_(ids)
        )
    )
    return {row[0]: row[1] for row in found}


def queue(session: Session, spec: OnePendingSpec, account_ref: str) -> list[Pending]:
    """The covered pending requests and batches on an account, in submission order."""
    found = [
        Pending("request", r.id, r.action, r.requester_id, r.created_at)
        for r in session.scalars(
            select(RequestRow).where(
                RequestRow.account_ref == account_ref,
                RequestRow.state == RequestState.PENDING.value,
            )
        )
        if covers(spec, r.action)
    ]
    batches = session.scalars(
        select(BatchRow)
        .join(BatchItemRow, BatchItemRow.batch_id == BatchRow.id)
        .where(BatchItemRow.account_ref == account_ref, BatchRow.state == BATCH_PENDING)
    )
    found += [
        Pending("batch", b.id, b.action, b.requester_id, b.created_at)
        for b in batches
        if covers(spec, b.action)
    ]
    seqs = _seqs(session, [p.id for p in found])
    never = float("inf")  # no event (a row the log knows nothing of): last, as the latest
    return sorted(found, key=lambda p: (seqs.get(p.id, never), p.created_at, p.id))


def held_by(session: Session, policy: Policy, row: RequestRow) -> Pending | None:
    """What `row` waits for (not approvable until it is decided): the first of its account's
    queue, unless that is `row` itself."""
    spec = spec_for(policy, row.action)
    if row.state != RequestState.PENDING.value or spec is None:
        return None
    found = queue(session, spec, row.account_ref)
    return found[0] if found and found[0].id != row.id else None


def decidable_since(session: Session, policy: Policy, row: RequestRow, now: datetime) -> datetime:
    """When `row` became decidable: its submission, or the moment the last covered request
    or batch ahead of it on its account left pending (from the log); `now` while it is still
    held (its escalation has not begun)."""
    spec = spec_for(policy, row.action)
    if spec is None:
        return row.created_at
    if held_by(session, policy, row) is not None:
        return now
    start = row.created_at
    # Ahead of it and pending when it came: submitted no later, moved since it came.
    requests = session.execute(
        select(RequestRow.id, RequestRow.action).where(
            RequestRow.account_ref == row.account_ref,
            RequestRow.id != row.id,
            RequestRow.created_at <= start,
            RequestRow.updated_at >= start,
        )
    )
    batches = session.execute(
        select(BatchRow.id, BatchRow.action)
        .join(BatchItemRow, BatchItemRow.batch_id == BatchRow.id)
        .where(
            BatchItemRow.account_ref == row.account_ref,
            BatchRow.created_at <= start,
            BatchRow.updated_at >= start,
        )
    )
    ahead = [str(i) for i, action in [*requests, *batches] if covers(spec, action)]
    if not ahead:
        return start
    seqs = _seqs(session, [*ahead, row.id])
    mine = seqs.get(row.id)
    ahead = [i for i in ahead if mine is None or seqs.get(i, mine) < mine]
    if not ahead:
        return start
    left = session.execute(
        select(EventRow.request_id, func.min(EventRow.at))
        .where(EventRow.request_id.in_(ahead), EventRow.kind.in_(LEFT_PENDING))
        .group_by(EventRow.request_id)
    )
    released = [at for _, at in left if at is not None and at > start]
    return max([start, *released])


def escalation_start(services: Services, session: Session, row: RequestRow) -> datetime:
    """`decidable_since` under the policy in force, at the services' clock (once per page)."""

    def read() -> datetime:
        _, policy = services.policy_in_force(session)
        return decidable_since(session, policy, row, services.clock())

    return page_memo.recall("escalation-start", row.id, read)
