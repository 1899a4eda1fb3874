"""Carrying out an approved batch, item by item, exactly once per item, resumable after the
process dies at any point (kill -9 included).

1. The start (`_start`, one transaction, again on every resume): lock the batch; check it is
   what was submitted and reviewed (`batch_integrity.problem`: item digests, Merkle root, the
   `batch.submitted` and review events); re-decide it as of now (`batch_recheck`: the accounts
   as their platforms answer now, the policy in force, the requester's and approvers' current
   records). Not satisfied any more: cancelled (or, if it had started, its remaining items
   cancelled) with the reason. Items the policy in force no longer includes are cancelled
   alone, each with its event. Then `approved` → `executing`.
2. The items, in position order, in chunks. Each chunk's transaction locks the batch (a
   concurrent cancel or a second worker waits or skips), re-checks that the requester and the
   approvers may still act, and that every item's digest is still the one its row gives and
   the one checked against the root at the start (a row re-targeted after the start is caught
   here), and re-decides the chunk's items under the policy in force (`_policy_problem`:
   pins and accounts read in bulk; a policy version other than the start's re-decides the
   whole batch first): an item no longer included is cancelled alone.
   - A platform kept in foureyes' database (`Services.stored_here`: the demo) is changed in the
     chunk's own transaction (the connector's `local_execution_many` for the whole chunk, else
     `local_execution` in a savepoint per item): the items' changes, their states and their
     audit events (appended as one group) commit together or not at all, so a process killed
     mid-chunk leaves nothing half done and the resume does the chunk again.
   - Any other platform: each item is claimed (`executing`, with a lease) in one transaction,
     called outside any transaction with the item id as idempotency key (its lease renewed
     while the call runs: `batch_lease`), and settled in a third; an item left `executing`
     by a dead process is reconciled once its lease lapses (`Connector.reconcile` on its key:
     applied → executed, not applied → run again, unknown → failed with why), never run
     again on assumption.
   An item the platform refuses fails alone with its reason (one `batch.item.failed` event).
   A reverse batch's item is checked against later changes on its account before its write
   (`_fail_superseded`) and, on a platform kept here, again under the account's lock that
   write takes (`_undone_here`: attack F0); elsewhere, held while another execution on the
   account is in flight.
3. The end: no item left to do → `executed`, with the counts of executed and failed items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from foureyes.audit.log import NewEvent
from foureyes.connectors.base import Connector, ExecutionOrder, ExecutionResult
from foureyes.core import logstate
from foureyes.core.services import Services, json_safe
from foureyes.errors import (
    BadInput,
    Conflict,
    ConnectorError,
    Forbidden,
    FoureyesError,
    NotFound,
)
from foureyes.model import Account
from foureyes.store.tables import BatchItemRow, BatchRow
from foureyes.workflow import (
    batch_events,
    batch_integrity,
    batch_lease,
    batch_ledger,
    batch_recheck,
    batch_undo_guard,
)

CHUNK = 250
MAX_ATTEMPTS = 5
RUNNABLE = ("approved", "executing")


@dataclass
class Progress:
    """What one call did, and where the batch is."""

    state: str
    executed: int = 0
    failed: int = 0
    cancelled: int = 0
    reason: str | None = None
    approvers: tuple[str, ...] = field(default_factory=tuple)
    # Nothing was done: the batch is not one to carry out now (its state, its delay).
    not_due: bool = False


def execute_batch(
    services: Services, batch_id: str, *, worker: str = "inline", chunk: int = CHUNK
) -> Progress:
    """Carry out the batch (the module's order) until no item is left or it stops; resumes a
    batch left `executing`. Returns where it is."""
    logstate.refuse(services)
    refs = batch_recheck.item_refs(services, batch_id)
    looked = batch_recheck.look_up(services, refs)
    started = _start(
        services, batch_id, looked, worker, _recheck_unlocked(services, batch_id, looked)
    )
    if isinstance(started, Progress):
        return started
    approvers, digests, found, version, originals, cancelled = started
    progress = Progress("executing", cancelled=cancelled, approvers=approvers)
    run = _Run(digests, found, looked, version, originals)
    while True:
        done = _chunk(services, batch_id, run, approvers, chunk, progress)
        if done:
            break
    return progress


def execute_now(services: Services, batch_id: str, *, worker: str) -> Progress:
    """`execute_batch` for someone who asked for it now: Conflict (409) when the batch is not
    one to carry out now (not approved, or its delay not over), saying which, as a request's
    execute does; nothing is done then."""
    progress = execute_batch(services, batch_id, worker=worker)
    if progress.not_due:
        raise Conflict(progress.reason or f"batch {batch_id} is {progress.state}")
    return progress


@dataclass
class _Run:
    """What the start checked, for the chunks: the digests of the items still to carry out
    (by id), the batch's log as read, the accounts as looked up then, and the policy
    version the batch was re-decided under."""

    digests: dict[str, str]
    found: batch_ledger.Ledger
    looked: batch_recheck.Looked
    version: int
    # A reverse batch: the digests of the items it undoes, as checked at the start.
    originals: dict[str, str] = field(default_factory=dict)


_Rechecked = tuple[str | None, frozenset[str], tuple[str, ...]]


def _recheck_unlocked(
    services: Services, batch_id: str, looked: batch_recheck.Looked
) -> tuple[int, _Rechecked] | None:
    """`_recheck` made in a read transaction, before the start locks the batch: re-planning
    10,000 accounts (a pins read each) holds no lock others need. With the policy version it
    was made under (the start re-checks under the lock if another is in force by then); None
    for a batch that is not to start now."""
    with services.database.read() as session:
        batch = session.get(BatchRow, batch_id)
        now = services.clock()
        if batch is None or batch.state not in RUNNABLE:
            return None
        if batch.state == "approved" and batch.not_before is not None and batch.not_before > now:
            return None  # not due: the start answers so without a plan
        version, _ = services.policy_in_force(session)
        reviews = batch_integrity.reviews_of(session, batch.id)
        return version, _recheck(services, session, batch, looked, reviews, now)


def _start(
    services: Services,
    batch_id: str,
    looked: batch_recheck.Looked,
    worker: str,
    rechecked: tuple[int, _Rechecked] | None,
) -> (
    Progress | tuple[tuple[str, ...], dict[str, str], batch_ledger.Ledger, int, dict[str, str], int]
):
    """Step 1. The approvers, the checked digests of the items still to carry out (by item
    id: no other item is carried out by this run), the batch's log as read, the policy
    version it was re-decided under, the digests of the items a reverse batch undoes and how
    many items the re-check cancelled; or the Progress of a batch that does not go on (its
    cancelled items counted)."""
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        assert batch is not None
        if batch.state not in RUNNABLE:
            return Progress(batch.state, reason=f"batch {batch.id} is {batch.state}", not_due=True)
        if batch.state == "approved" and batch.not_before is not None and batch.not_before > now:
            return Progress(
                batch.state,
                reason=f"batch {batch.id} is approved; it runs not before "
                f"{batch.not_before.isoformat()}",
                not_due=True,
            )
        items = batch_integrity.items_of(session, batch.id)
        reviews = batch_integrity.reviews_of(session, batch.id)
        found = batch_ledger.ledger(session, batch.id)
        lifecycle = found.problem(batch, items)
        if lifecycle is not None:
            reason = batch_ledger.refuse(
                services, session, batch, found, lifecycle, now, during="execution"
            )
            return Progress(batch.state, reason=reason)
        altered = batch_integrity.problem(session, batch, items, reviews)
        if altered is not None:
            reason = batch_integrity.refuse(
                services, session, batch, altered, now, during="execution"
            )
            return Progress(batch.state, reason=reason)
        originals: dict[str, str] = {}
        if batch.reverts_id is not None:
            why, originals = _original_problem(services, session, batch, items, now)
            if why is not None:
                return _stop_at_start(services, session, batch, items, now, why)
        version = services.policy_in_force(session)[0]
        if rechecked is None or version != rechecked[0]:
            rechecked = (version, _recheck(services, session, batch, looked, reviews, now))
        why, plan_refs, approvers = rechecked[1]
        if why is not None:
            return _stop_at_start(services, session, batch, items, now, why)
        cancelled = _cancel_moved_out(services, session, batch, items, plan_refs, looked, now)
        if batch.state == "approved":
            batch_events.move(
                services,
                session,
                batch,
                "executing",
                allowed=("approved",),
                actor=None,
                now=now,
                details={"worker": worker, "approvers": list(approvers)},
            )
        left = {i.id: i.digest for i in items if i.state in ("pending", "executing")}
        return approvers, left, found, version, originals, cancelled


def _recheck(
    services: Services,
    session: Session,
    batch: BatchRow,
    looked: batch_recheck.Looked,
    reviews: Sequence[object],
    now: datetime,
) -> tuple[str | None, frozenset[str], tuple[str, ...]]:
    """Why the batch may not go on (None: it may), the refs the policy still includes, and
    who approved it."""
    try:
        plan = batch_recheck.replan(services, session, batch, looked, now)
    except (BadInput, Forbidden) as exc:
        return exc.message, frozenset(), ()
    rows = batch_integrity.reviews_of(session, batch.id)
    counted, taken_back = batch_recheck.engine_reviews(services, session, rows)
    status = batch_recheck.status(plan, counted, now)
    if not status.satisfied:
        return "; ".join([*taken_back, *status.reasons]) or "not approved", frozenset(), ()
    approvers = tuple(sorted({p for f in status.batch.factors for p in f.approved_by}))
    return None, frozenset(plan.included_refs()), approvers


def _cancel_moved_out(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    included: frozenset[str],
    looked: batch_recheck.Looked,
    now: datetime,
) -> int:
    """Cancel, one event each, the pending items the policy in force no longer includes in
    the batch (split out or denied now, or the platform no longer knows the account); how
    many."""
    events: list[NewEvent] = []
    for item in items:
        if item.state != "pending" or item.account_ref in included:
            continue
        why = looked.missing.get(item.account_ref) or "the policy in force no longer includes it"
        item.state, item.finished_at = "cancelled", now
        item.reason = f"re-check at execution: {why}"
        events.append(
            batch_events.item_event(
                services, batch, item, "batch.item.cancelled", now, {"reason": item.reason}
            )
        )
    services.audit.append_many(session, events)
    return len(events)


def _policy_problem(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: list[BatchItemRow],
    run: _Run,
    here: bool,
    now: datetime,
    progress: Progress,
) -> str | None:
    """Re-decide the chunk's items just before they are carried out: under the policy in
    force, with their pins as they are now and (a platform kept here) their accounts as they
    are now; a remote platform's accounts as the start looked them up (its look-ups are
    calls, never made under our locks). Items the policy no longer includes are cancelled
    alone, each with its event. When another policy is in force than the one the batch was
    re-decided under, the whole batch is re-decided first (its bar, its approvals): why it
    may not go on (None: it may)."""
    version = services.policy_in_force(session)[0]
    if version != run.version:
        reviews = batch_integrity.reviews_of(session, batch.id)
        why, _, _ = _recheck(services, session, batch, run.looked, reviews, now)
        if why is not None:
            return why
        run.version = version
    refs = [i.account_ref for i in items if i.state == "pending"]
    if here:
        looked = batch_recheck.look_up(services, refs)
    else:
        looked = batch_recheck.Looked(
            {r: run.looked.accounts[r] for r in refs if r in run.looked.accounts},
            {r: run.looked.missing[r] for r in refs if r in run.looked.missing},
        )
    included: frozenset[str] = frozenset()
    if looked.accounts:
        try:
            plan = batch_recheck.replan(services, session, batch, looked, now)
        except (BadInput, Forbidden) as exc:
            return exc.message
        included = frozenset(plan.included_refs())
    progress.cancelled += _cancel_moved_out(services, session, batch, items, included, looked, now)
    return None


def _chunk(
    services: Services,
    batch_id: str,
    run: _Run,
    approvers: tuple[str, ...],
    size: int,
    progress: Progress,
) -> bool:
    """Step 2 for the next `size` items; True when the batch has nothing left to do here.
    The batch and the chunk's items must still be where the log says (`batch_ledger`, read
    on from where the last look stopped), and each item one the start checked as still to
    do: an item the log says was cancelled or executed is never carried out again."""
    digests, found = run.digests, run.found
    remote: tuple[str, bool]
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        assert batch is not None
        progress.state = batch.state
        if batch.state != "executing":
            return True
        items = _next_items(session, batch.id, now, size)
        lifecycle = found.read(session).problem(batch, items)
        if lifecycle is not None:
            reason = batch_ledger.refuse(
                services, session, batch, found, lifecycle, now, during="execution"
            )
            progress.state, progress.reason = batch.state, reason
            return True
        why = _people_problem(services, session, batch, approvers, now)
        if why is None:
            why = _digest_problem(batch, items, digests)
        if why is not None:
            _stop_failed_recheck(services, session, batch, now, progress, why)
            return True
        if not items:
            if _unsettled(session, batch.id):
                return True  # items held by another process: it, or reconciliation, ends them
            batch_events.move(
                services,
                session,
                batch,
                "executed",
                allowed=("executing",),
                actor=None,
                now=now,
                details=batch_integrity.counts(batch),
            )
            progress.state = batch.state
            return True
        ref = items[0].account_ref
        connector = services.connector(ref.partition(":")[0])
        here = services.stored_here(ref)
        local = here and connector.local_execution() is not None
        if not local:
            items = items[:1]  # one at a time: the lease covers one platform call
        why = _policy_problem(services, session, batch, items, run, here, now, progress)
        if why is not None:
            _stop_failed_recheck(services, session, batch, now, progress, why)
            return True
        later = None
        if batch.reverts_id is not None:
            later = _fail_superseded(services, session, batch, items, run, (now, local), progress)
        items = [i for i in items if i.state in ("pending", "executing")]
        if not items:
            return False  # every item of this chunk was cancelled: on to the next
        if local:
            _carry_out_here(
                services, session, batch, items, (connector, later), approvers, now, progress
            )
            return False
        # One at a time: the lease covers one platform call (no heartbeat renews it here).
        remote = _claim(session, items[0], now, services)
    _carry_out_remote(services, batch_id, remote, approvers, progress)
    return False


def _original_problem(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    now: datetime,
) -> tuple[str | None, dict[str, str]]:
    """A reverse batch's start: the batch it undoes must be what its log and approved
    manifest prove (`batch_undo_guard.altered`, the original locked after this one, as
    `mark_reverted` does); else the high `batch_tampered` alert and why. With the digests of
    the items it undoes, for the chunks."""
    assert batch.reverts_id is not None
    original = batch_events.lock(session, batch.reverts_id)
    assert original is not None
    chosen = [i.reverts_item_id for i in items if i.reverts_item_id and i.state == "pending"]
    found = batch_undo_guard.altered(session, original, chosen)
    if found is None:
        rows = batch_integrity.items_of(session, original.id)
        return None, {i.id: i.digest for i in rows if i.id in set(chosen)}
    batch_undo_guard.raise_tampered(services, session, original, found, "undo execution", now)
    return f"the batch it undoes ({original.id}) was altered in the store", {}


def _fail_superseded(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    run: _Run,
    at: tuple[datetime, bool],
    progress: Progress,
) -> batch_undo_guard.Later:
    """A reverse batch's chunk, under its lock and the original batch's: an item whose
    original is no longer executed, was changed, or was superseded by a later change on
    its account fails alone, saying why (`batch_undo_guard.superseded`); on a platform
    outside foureyes' database (`local` False), also one whose account has another
    execution in flight (`batch_undo_guard.in_flight`). The log as read, for the re-check
    under the accounts' lock (`_carry_out_here`)."""
    assert batch.reverts_id is not None
    now, local = at
    original = batch_events.lock(session, batch.reverts_id)
    assert original is not None
    events: list[NewEvent] = []
    later = batch_undo_guard.Later(services, session)  # the log read once for the chunk
    for item in items:
        if item.state != "pending" or item.reverts_item_id is None:
            continue  # an executing one's call may have been made: reconciliation decides
        held = batch_undo_guard.superseded(
            services,
            session,
            item.reverts_item_id,
            run.originals.get(item.reverts_item_id),
            later,
        )
        if held is None and not local:
            held = batch_undo_guard.in_flight(services, session, item.account_ref, item=item.id)
        if held is None:
            continue
        if held.tampered:
            batch_undo_guard.raise_tampered(
                services, session, original, held.why, "undo execution", now
            )
        # Held here: the platform was never called for it.
        reason = f"not undone: {held.why} (held by foureyes; the platform was not called)"
        events.append(_failed(services, batch, item, reason, now, progress))
    services.audit.append_many(session, events)
    return later


def _stop_at_start(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    now: datetime,
    why: str,
) -> Progress:
    """A re-check before the run failed: an approved batch is cancelled (its items, never
    carried out, count as cancelled: `batch_views.progress`), one already executing has what
    is left of it cancelled, saying why."""
    reason = f"re-check at execution failed: {why}"
    if batch.state == "approved":
        cancelled = sum(1 for i in items if i.state == "pending")
        batch_events.move(
            services,
            session,
            batch,
            "cancelled",
            allowed=("approved",),
            actor=None,
            now=now,
            reason=reason,
        )
    else:
        cancelled = batch_integrity.cancel_remaining(services, session, batch, now, reason)
    return Progress(batch.state, cancelled=cancelled, reason=reason)


def _stop_failed_recheck(
    services: Services,
    session: Session,
    batch: BatchRow,
    now: datetime,
    progress: Progress,
    why: str,
) -> None:
    """A re-check at execution failed: cancel what is left of `batch`, saying why."""
    reason = f"re-check at execution failed: {why}"
    progress.cancelled += batch_integrity.cancel_remaining(services, session, batch, now, reason)
    progress.state, progress.reason = batch.state, reason


def _people_problem(
    services: Services, session: Session, batch: BatchRow, approvers: tuple[str, ...], now: datetime
) -> str | None:
    """Why the requester or an approver may no longer act today (None: all may)."""
    for person in (batch.requester_id, *approvers):
        try:
            floor = services.staff(session, person).floor_problem(now.date())
        except FoureyesError as exc:
            return exc.message
        if floor is not None:
            return floor
    return None


def _digest_problem(
    batch: BatchRow, items: Sequence[BatchItemRow], digests: dict[str, str]
) -> str | None:
    for item in items:
        if digests.get(item.id) != item.digest or (
            batch_integrity.expected_digest(batch, item) != item.digest
        ):
            return (
                f"item {item.position} ({item.account_ref}) is not the one approved: it was "
                "changed after the start"
            )
    return None


def _next_items(session: Session, batch_id: str, now: datetime, size: int) -> list[BatchItemRow]:
    """The next items to carry out: pending ones, and executing ones whose lease lapsed (a
    dead process's), in position order, skipping rows another process holds."""
    return list(
        session.scalars(
            select(BatchItemRow)
            .where(
                BatchItemRow.batch_id == batch_id,
                or_(
                    BatchItemRow.state == "pending",
                    (BatchItemRow.state == "executing") & (BatchItemRow.lease_until <= now),
                ),
            )
            .order_by(BatchItemRow.position)
            .limit(size)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def _unsettled(session: Session, batch_id: str) -> bool:
    return (
        session.scalar(
            select(BatchItemRow.id)
            .where(
                BatchItemRow.batch_id == batch_id, BatchItemRow.state.in_(("pending", "executing"))
            )
            .limit(1)
        )
        is not None
    )


def order_of(batch: BatchRow, item: BatchItemRow, approvers: tuple[str, ...]) -> ExecutionOrder:
    _, account_id = Account.split_ref(item.account_ref)
    return ExecutionOrder(
        action=batch.action,
        account_id=account_id,
        params=dict(batch.params),
        idempotency_key=item.id,
        approvers=approvers,
        requester=batch.requester_id,
        attempt=item.attempt,
        reverts=item.reverts_item_id or "",
    )


def _carry_out_here(
    services: Services,
    session: Session,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    on: tuple[Connector, batch_undo_guard.Later | None],
    approvers: tuple[str, ...],
    now: datetime,
    progress: Progress,
) -> None:
    """The chunk on a platform kept in foureyes' database, in this one transaction: the
    platform's changes (`Connector.local_execution_many` when it has one, else
    `local_execution` item by item), the items' states and their audit events, appended as
    one group, commit together or not at all. The items are written back in one statement
    at the end (they leave the session first, so that the platform's own statements do not
    flush them one by one). `on`: the platform, and for a reverse batch the log as its
    chunk's check read it (`_undone_here`)."""
    connector, later = on
    events: list[NewEvent] = []
    session.flush()  # what the re-check changed (items it cancelled), before they leave
    # The items and the batch leave the session, and are written back once at the end: the
    # platform's savepoints would otherwise flush them after every item.
    for item in items:
        session.expunge(item)
    session.expunge(batch)
    with session.no_autoflush:
        for item in items:
            item.attempt += 1
        results: Sequence[ExecutionResult | FoureyesError | batch_undo_guard.Held]
        if later is None:
            results = _local_results(session, connector, batch, items, approvers)
        else:
            results = _undone_here(session, connector, batch, items, approvers, later)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, batch_undo_guard.Held):
                reason = _held_under_lock(services, session, batch, result, now)
                events.append(_failed(services, batch, item, reason, now, progress))
                continue
            if isinstance(result, ExecutionResult):
                events.append(_success(services, batch, item, result, now, progress))
                continue
            failure = (
                result
                if isinstance(result, ConnectorError)
                else ConnectorError(result.message, transient=False)
            )
            events.append(_failure(services, batch, item, failure, now, progress))
    session.execute(
        update(BatchItemRow),
        [
            {
                "id": item.id,
                "state": item.state,
                "attempt": item.attempt,
                "lease_until": item.lease_until,
                "finished_at": item.finished_at,
                "result": item.result,
                "reason": item.reason,
            }
            for item in items
        ],
    )
    session.execute(
        update(BatchRow)
        .where(BatchRow.id == batch.id)
        .values(
            executed_count=batch.executed_count,
            failed_count=batch.failed_count,
            updated_at=now,
        )
    )
    services.audit.append_many(session, events)
    mark_reverted(services, session, batch, [i for i in items if i.state == "executed"], now)


def _local_results(
    session: Session,
    connector: Connector,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    approvers: tuple[str, ...],
) -> list[ExecutionResult | FoureyesError]:
    """Each item's outcome on a platform kept here: its result, or the error that refused it
    (the item alone; the platform changed nothing for it)."""
    orders = [order_of(batch, item, approvers) for item in items]
    many = connector.local_execution_many()
    if many is not None:
        return many(session, orders)
    local = connector.local_execution()
    assert local is not None
    answers: list[ExecutionResult | FoureyesError] = []
    for order in orders:
        try:
            answers.append(local(session, order))
        except FoureyesError as exc:
            answers.append(exc)
    return answers


def _held_under_lock(
    services: Services,
    session: Session,
    batch: BatchRow,
    held: batch_undo_guard.Held,
    now: datetime,
) -> str:
    """Why a reverse batch's item held by the check made again under the accounts' lock
    fails (a tampered log raises `batch_tampered` on the original, as the first check)."""
    if held.tampered and batch.reverts_id is not None:
        original = session.get(BatchRow, batch.reverts_id)
        assert original is not None
        batch_undo_guard.raise_tampered(
            services, session, original, held.why, "undo execution", now
        )
    return f"not undone: {held.why} ({batch_undo_guard.HELD_UNDER_LOCK})"


def _undone_here(
    session: Session,
    connector: Connector,
    batch: BatchRow,
    items: Sequence[BatchItemRow],
    approvers: tuple[str, ...],
    later: batch_undo_guard.Later,
) -> list[ExecutionResult | FoureyesError | batch_undo_guard.Held]:
    """`_local_results` for a reverse batch's chunk, with its check made again under the
    accounts' lock (attack F0): the chunk's check read the log before the platform's rows
    were locked, and on PostgreSQL a change on an account could commit in between. The
    platform locks the rows of the accounts it changes (its write: `LocalExecution`), in a
    savepoint; the log is then read on from where the check stopped (`Later.catch_up`,
    now after any such commit); an item a change now supersedes is Held, the savepoint
    rolled back (the platform's changes undone) and the others carried out again, until
    none is held. A change committing after the re-read waits for the lock, and so comes
    after the undo. Each round holds one item more at least: it ends."""
    answers: dict[int, ExecutionResult | FoureyesError | batch_undo_guard.Held] = {}
    todo = list(range(len(items)))
    while todo:
        savepoint = session.begin_nested()
        try:
            got = _local_results(session, connector, batch, [items[n] for n in todo], approvers)
            later.catch_up()
        except BaseException:
            savepoint.rollback()
            raise
        held: dict[int, batch_undo_guard.Held] = {}
        for n, result in zip(todo, got, strict=True):
            again = later.again(items[n].account_ref)
            if isinstance(result, ExecutionResult) and again is not None:
                held[n] = again
        if not held:
            savepoint.commit()
            answers.update(zip(todo, got, strict=True))
            break
        savepoint.rollback()
        answers.update(held)
        todo = [n for n in todo if n not in held]
    return [answers[n] for n in range(len(items))]


def mark_reverted(
    services: Services,
    session: Session,
    batch: BatchRow,
    done: Sequence[BatchItemRow],
    now: datetime,
) -> None:
    """The items of a reverse batch just executed: the items they reverse are now `reverted`
    (`batch_undo_guard.revert_originals`): neither is undone a second time (`batch_undo`)."""
    reverses: dict[str, str | None] = {i.reverts_item_id: i.id for i in done if i.reverts_item_id}
    batch_undo_guard.revert_originals(services, session, reverses, {"by_batch": batch.id}, now)


def _success(
    services: Services,
    batch: BatchRow,
    item: BatchItemRow,
    result: ExecutionResult,
    now: datetime,
    progress: Progress,
) -> NewEvent:
    item.state, item.finished_at, item.lease_until = "executed", now, None
    item.result = json_safe(dict(result.summary))
    batch.executed_count += 1
    progress.executed += 1
    return batch_events.item_event(
        services, batch, item, "batch.item.executed", now, {"summary": dict(result.summary)}
    )


def _failure(
    services: Services,
    batch: BatchRow,
    item: BatchItemRow,
    exc: ConnectorError,
    now: datetime,
    progress: Progress,
) -> NewEvent:
    """A transient error with attempts left puts the item back (`batch.item.retry`); anything
    else fails the item alone, with the platform's reason."""
    item.lease_until = None
    if exc.transient and item.attempt < MAX_ATTEMPTS:
        item.state = "pending"
        return batch_events.item_event(
            services, batch, item, "batch.item.retry", now, {"reason": exc.message}
        )
    why = "transient, out of retries" if exc.transient else "refused by the platform"
    return _failed(services, batch, item, f"{exc.message} ({why})", now, progress)


def _failed(
    services: Services,
    batch: BatchRow,
    item: BatchItemRow,
    reason: str,
    now: datetime,
    progress: Progress,
) -> NewEvent:
    """The item fails alone, for `reason`: its `batch.item.failed` event."""
    item.state, item.finished_at, item.reason = "failed", now, reason
    batch.failed_count += 1
    progress.failed += 1
    return batch_events.item_event(
        services, batch, item, "batch.item.failed", now, {"reason": item.reason}
    )


def _claim(
    session: Session, item: BatchItemRow, now: datetime, services: Services
) -> tuple[str, bool]:
    """Claim the item for this process (a remote platform): `executing` with a lease; the id,
    and whether it is to be carried out (False: its lease lapsed, its process died mid-call:
    it is reconciled, never run again on assumption)."""
    if item.state == "executing":
        # Its lease lapsed: this process reconciles it, and holds it while it asks.
        item.lease_until = now + services.execution_lease
        return item.id, False
    item.state, item.attempt = "executing", item.attempt + 1
    item.lease_until = now + services.execution_lease
    return item.id, True


def _carry_out_remote(
    services: Services,
    batch_id: str,
    claimed: tuple[str, bool],
    approvers: tuple[str, ...],
    progress: Progress,
) -> None:
    """One item on a platform outside foureyes: reconcile a lapsed one; else the call
    (outside any transaction) and its settlement."""
    item_id, fresh = claimed
    with services.database.read() as session:
        batch = session.get(BatchRow, batch_id)
        item = session.get(BatchItemRow, item_id)
        if batch is None or item is None:
            raise NotFound(f"no item {item_id} in batch {batch_id}")
        order = order_of(batch, item, approvers)
    connector = services.connector(item.account_ref.partition(":")[0])
    if not fresh:
        _reconcile(services, connector, batch_id, item_id, order, progress)
        return
    try:
        # The lease is renewed while the call runs: a slow platform never makes a live
        # call's item look abandoned to another worker.
        with batch_lease.item_heartbeat(services, item_id, order.attempt):
            result: ExecutionResult | ConnectorError = connector.execute(order)
    except ConnectorError as exc:
        result = exc
    except FoureyesError as exc:
        result = ConnectorError(exc.message, transient=False)
    with services.database.transaction() as session:
        now = services.clock()
        locked = batch_events.lock(session, batch_id)
        item = session.get(BatchItemRow, item_id, with_for_update=True, populate_existing=True)
        if locked is None or item is None:
            raise NotFound(f"no item {item_id} in batch {batch_id}")
        if item.state != "executing" or item.attempt != order.attempt:
            return  # reconciled meanwhile: its outcome stands
        if isinstance(result, ConnectorError):
            if result.outcome_unknown:
                item.lease_until = now  # for reconciliation at once
                return
            event = _failure(services, locked, item, result, now, progress)
        else:
            event = _success(services, locked, item, result, now, progress)
        services.audit.append_many(session, [event])
        mark_reverted(services, session, locked, [item] if item.state == "executed" else [], now)


def _reconcile(
    services: Services,
    connector: Connector,
    batch_id: str,
    item_id: str,
    order: ExecutionOrder,
    progress: Progress,
) -> None:
    """Ask the platform's record of the item's key (`Connector.reconcile`)."""
    try:
        found = connector.reconcile(order)
    except (ConnectorError, FoureyesError):
        return  # asked again at the next pass
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        item = session.get(BatchItemRow, item_id, with_for_update=True, populate_existing=True)
        if batch is None or item is None:
            raise NotFound(f"no item {item_id} in batch {batch_id}")
        if item.state != "executing" or item.attempt != order.attempt:
            return
        if found.applied is True:
            result = ExecutionResult(summary=found.summary or {})
            event = _success(services, batch, item, result, now, progress)
            services.audit.append_many(session, [event])
            mark_reverted(services, session, batch, [item], now)
            return
        if found.applied is False:
            item.state, item.lease_until = "pending", None
            event = batch_events.item_event(
                services, batch, item, "batch.item.retry", now, {"reason": "not applied"}
            )
        else:
            failure = ConnectorError(f"the platform cannot say: {found.why}", transient=False)
            event = _failure(services, batch, item, failure, now, progress)
        services.audit.append_many(session, [event])


def runnable(services: Services) -> list[str]:
    """The batches the worker should carry out now: approved and due, or executing."""
    now = services.clock()
    with services.database.read() as session:
        return list(
            session.scalars(
                select(BatchRow.id)
                .where(
                    or_(
                        (BatchRow.state == "approved")
                        & or_(BatchRow.not_before.is_(None), BatchRow.not_before <= now),
                        BatchRow.state == "executing",
                    )
                )
                .order_by(BatchRow.created_at)
                .limit(20)
            )
        )
