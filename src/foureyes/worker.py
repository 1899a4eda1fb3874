"""Background work: expiry, due executions, reconciliation, overdue break-glass post-reviews.

Safe with several processes on one PostgreSQL: every item is claimed with a row lock (SKIP LOCKED
where a claim could collide) and a state check, so each is done once; a loser gets a Conflict
and moves on.

No pass can be starved by rows it cannot act on (rows a database administrator wrote in,
requests that wait for their requester, rows another worker holds, a platform that is not
connected): each walks its whole backlog by keyset pagination (`_backlog`: pages in id order,
each after the last id of the one before), not a fixed first page, and stops early only once
it has acted on `BATCH` rows, each of which has then left its backlog. A row the log does not
describe is named (`integrity.refuse`: the high `request_tampered` alert) and settled (cancelled
or failed, or, for a break-glass the log knows nothing of, `break_glass.unfounded`), so it is not
looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from foureyes import detect
from foureyes.audit.export import AuditVerificationError
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.core import alert_ledger, alert_log, logstate, request_index
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import lock_request, move, record
from foureyes.core.services import Services
from foureyes.errors import Conflict, FoureyesError, LogHeadAltered, RecordAltered, Unavailable
from foureyes.model import RequestState, StaffStatus
from foureyes.notify import Channel, deliver_due
from foureyes.store.tables import AlertRow, EventRow, RequestRow, StaffRow
from foureyes.store.tree import in_tree
from foureyes.workflow import (
    batch_worker,
    copies_sweep,
    expiry,
    integrity,
    lease,
    reminders,
    settled_claims,
)
from foureyes.workflow.execute import execute
from foureyes.workflow.reconcile import reconcile
from foureyes.workflow.staff import OPEN_STATES

log = logging.getLogger(__name__)
BATCH = 100
"""Rows read per page, and rows a pass acts on at most (the rest: in the next pass)."""


@dataclass
class Tick:
    """What one pass of the worker did."""

    expired: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Requests cancelled because their requester may no longer act (contract over, suspended).
    cancelled: list[str] = field(default_factory=list)
    # Outbox ids: notifications sent in this pass, and those that failed (retried later).
    notified: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    # Reminder rounds and escalation notices written in this pass (`request:round`).
    reminded: list[str] = field(default_factory=list)
    # The size of the checkpoint signed in this pass, if one was.
    checkpoint: int | None = None
    # Why nothing was carried out or reconciled in this pass: the log was found rolled back
    # or its head moved (`foureyes.core.logstate`).
    held: str | None = None

    @property
    def _settled(self) -> tuple[list[str], ...]:
        # What left its backlog for good in this pass (a failure may be retried: not counted).
        return (self.expired, self.executed, self.reconciled, self.overdue, self.cancelled)

    @property
    def full(self) -> bool:
        """Whether some part of the pass stopped at `BATCH` rows: more may be waiting, so the
        next pass should start at once rather than after the interval (a backlog drains as
        fast as it fills instead of `BATCH` rows per interval)."""
        return any(len(part) >= BATCH for part in self._settled)

    @property
    def busy(self) -> bool:
        """Whether the pass settled any row: work is coming in (approvals while it ran may be
        due now), so the next pass starts at once (`Pacing`). Each such row has left its
        backlog, so passes run back to back only while new work keeps arriving."""
        return any(self._settled)


BACK_TO_BACK = 20
"""Passes one worker runs back to back at most before it waits its interval once."""


@dataclass
class Pacing:
    """When a worker's next pass starts: at once after a busy pass (`Tick.busy`, which a full
    one is), so that a backlog drains as fast as it fills rather than `BATCH` rows per
    interval; after an idle or failed pass (None), once the interval has passed, so an idle
    worker costs next to nothing. Bounded: after `limit` passes back to back it waits one
    interval anyway, so that a steady stream of work does not keep one process's worker (and,
    under `serve`, the serving threads it shares the interpreter with) busy without a pause.
    Other workers are not starved meanwhile: each pass claims at most `BATCH` rows, skipping
    those another holds."""

    interval: float
    limit: int = BACK_TO_BACK
    run: int = 0  # passes started at once since the last wait

    def wait_after(self, tick: Tick | None) -> float:
        """Seconds to wait before the next pass (0: start it now)."""
        if tick is not None and tick.busy and self.run < self.limit:
            self.run += 1
            return 0.0
        self.run = 0
        return self.interval


def run_once(
    services: Services,
    worker: str = "worker",
    *,
    channels: Mapping[str, Channel] | None = None,
    checkpoints: CheckpointSchedule | None = None,
) -> Tick:
    """Do everything that is due now, once. Notifications go through `channels` (default: the
    process's, `foureyes.notify.configure`). With `checkpoints` (every worker process has one),
    a checkpoint is signed and witnessed when due (`_checkpoint`).

    First the log is checked (`logstate.check`: its head, and its witness where there is one):
    on a log found rolled back or with a moved head nothing is carried out or reconciled (a
    high alert says why, and `Tick.held`); the rest of the pass goes on."""
    tick = Tick()
    if checkpoints is not None:  # every worker process has one: its witness is the log's
        logstate.attach(services, checkpoints.witness_dir)
    finding = logstate.check(services)
    _cancel_for_departed(services, tick)
    _expire(services, tick)
    if finding is None:
        _execute_due(services, worker, tick)
        _reconcile_abandoned(services, tick)
        batch_worker.run_batches(services, worker)
    else:
        tick.held = finding.message
    _flag_overdue_post_reviews(services, tick)
    _detect(services)  # before delivery, so this pass's alerts go out in this pass
    _check_alerts(services)  # also before delivery
    _check_copies(services)
    tick.reminded = reminders.remind_due(services)  # also before delivery
    if checkpoints is not None:
        _checkpoint(services, checkpoints, tick)
    _deliver_notifications(services, tick, channels)
    return tick


def _checkpoint(services: Services, checkpoints: CheckpointSchedule, tick: Tick) -> None:
    """Sign a checkpoint when one is due; then the `checkpoint_stale` check, which alerts at once
    if the log was refused as inconsistent with its witness, and otherwise once events have
    waited too long. Neither failing stops the pass: each is logged."""
    refused = None
    try:
        signed = checkpoints.maybe_sign(services.database, services.audit)
    except AuditVerificationError as exc:
        log.error("no checkpoint signed: %s", exc.message)
        refused = exc.message
        logstate.found(services, logstate.rolled_back(exc))  # fail closed from now on
    except LogHeadAltered as exc:
        log.error("no checkpoint signed: %s", exc.message)
        logstate.found(services, exc)
    except Exception as exc:  # the witness is missing or unwritable, the store is down
        log.error("no checkpoint signed: %s", getattr(exc, "message", repr(exc)))
    else:
        tick.checkpoint = None if signed is None else signed.size
    try:
        detect.check_checkpoints(services, checkpoints.stale_after, refused=refused)
    except FoureyesError as exc:  # the store is down...: expected, one line
        log.error("the checkpoint check failed: %s", exc.message)
    except Exception:  # a bug: its traceback
        log.exception("the checkpoint check failed")


def _cancel_for_departed(services: Services, tick: Tick) -> None:
    """Open requests of people who may no longer act — their contract ended, or the directory
    suspended or terminated them — are cancelled at once, with the reason in the log (an HR
    import does the same for the people it terminates)."""
    now = services.clock()
    candidates = (
        select(RequestRow.id)
        .join(StaffRow, StaffRow.id == RequestRow.requester_id)
        .where(
            RequestRow.state.in_([s.value for s in OPEN_STATES]),
            or_(StaffRow.status != StaffStatus.ACTIVE.value, StaffRow.ends < now.date()),
        )
    )
    acted: list[str] = []
    for request_id in _backlog(services, candidates, acted):
        with (
            _isolated(services, request_id, "cancellation"),
            services.database.transaction() as session,
        ):
            row = lock_request(session, request_id, skip_locked=True)
            if row is None or RequestState(row.state) not in OPEN_STATES:
                continue
            if _refused(services, session, row, now, during="cancellation"):
                tick.cancelled.append(request_id)
                acted.append(request_id)
                continue
            try:
                problem = services.staff(session, row.requester_id).floor_problem(now.date())
            except RecordAltered:
                continue  # nothing is decided on an altered record (security is alerted)
            if problem is None:
                continue
            move(
                services,
                session,
                row,
                RequestState.CANCELLED,
                actor=None,
                kind="request.cancelled",
                now=now,
                reason=f"the requester may no longer act: {problem}",
            )
            tick.cancelled.append(request_id)
            acted.append(request_id)


def _detect(services: Services) -> None:
    """The detector pass over the audit events since the last one (foureyes.detect). A failure
    never stops the worker's own work: it is logged, the heartbeat stays old, and the
    `detector_silence` alert fires once the pipeline runs again (or a health check looks)."""
    try:
        detect.run(services)
    except FoureyesError as exc:  # the store is down...: expected, one line (no traceback)
        log.error("the detector pass failed: %s", exc.message)
    except Exception:  # a bug: its traceback
        log.exception("the detector pass failed")


def _check_alerts(services: Services) -> None:
    """The alerts table against the log's `alert.raised` events (`core.alert_ledger.look`:
    the events appended since the last pass, and one aggregate over the alerts rows): an
    alert whose row was deleted or re-pointed, or a row written in, raises `alert_tampered`
    (once an hour each). A failure is logged; the worker goes on."""
    try:
        alert_ledger.look(services)
    except FoureyesError as exc:  # the store is down...: expected, one line
        log.error("the alerts check failed: %s", exc.message)
    except Exception:  # a bug: its traceback
        log.exception("the alerts check failed")


def _check_copies(services: Services) -> None:
    """A slice of the log's columns against its bodies (`workflow.copies_sweep`): a copy a
    DBA changed raises `record_tampered`. A failure is logged; the worker goes on."""
    try:
        copies_sweep.sweep(services)
    except FoureyesError as exc:  # the store is down...: expected, one line
        log.error("the audit columns check failed: %s", exc.message)
    except Exception:  # a bug: its traceback
        log.exception("the audit columns check failed")


def _deliver_notifications(
    services: Services, tick: Tick, channels: Mapping[str, Channel] | None
) -> None:
    # Last, and outside any business transaction: a slow receiver delays only notifications.
    delivery = deliver_due(services.database, services.clock, channels)
    tick.notified.extend(str(i) for i in delivery.delivered)
    tick.undelivered.extend(str(i) for i in delivery.failed)


def _ids(services: Services, query: object) -> list[str]:
    with services.database.transaction() as session:
        return list(session.scalars(query))  # type: ignore[call-overload]


def _backlog(services: Services, query: Select[str], done: list[str]) -> Iterator[str]:
    """The request ids `query` (a select of `RequestRow.id`) finds, page by page in id order:
    each page starts after the last id of the one before (keyset pagination), so a pass reaches
    every row of its backlog however many before it it cannot act on. Stops once `done` (what
    the pass has acted on, each row then out of its backlog) holds `BATCH` more rows than when
    it began: the rest waits for the next pass, which starts again from the first page. Each
    page is read in a transaction of its own."""
    budget = len(done) + BATCH
    after: str | None = None
    while True:
        page = query if after is None else query.where(RequestRow.id > after)
        ids = _ids(services, page.order_by(RequestRow.id).limit(BATCH))
        for request_id in ids:
            if len(done) >= budget:
                return
            yield request_id
        if len(ids) < BATCH:
            return
        after = ids[-1]


@contextmanager
def _isolated(services: Services, request_id: str, during: str) -> Iterator[None]:
    """One row of a pass: whatever it raises (a row written so that handling it fails: a state
    no code knows, a value the driver cannot read) is logged with its traceback and raised as
    a high `worker_row_failed` alert (once a day per row), and the pass goes on to the next
    row — one row must not stop the worker for every other request. The database being down
    still stops the pass (`Unavailable`: the next pass retries)."""
    try:
        yield
    except Unavailable as exc:
        if not isinstance(exc, RecordAltered):  # the database is down, or the log is off
            raise
        _row_failed(services, request_id, during, exc)
    except Exception as exc:
        _row_failed(services, request_id, during, exc)


def _row_failed(services: Services, request_id: str, during: str, exc: Exception) -> None:
    log.error("the %s of request %s failed", during, request_id, exc_info=exc)
    failure = getattr(exc, "message", None) or type(exc).__name__
    try:
        with services.database.transaction() as session:
            raise_alert(
                services,
                session,
                NewAlert(
                    detector="worker_row_failed",
                    severity="high",
                    summary=f"the worker could not handle request {request_id} ({during}): "
                    f"{failure}; it goes on with the others",
                    request=request_id,
                    details={"during": during, "error": failure},
                ),
                now=services.clock(),
                dedupe=timedelta(days=1),
            )
    except Exception:  # the alert itself cannot be stored: logged, the pass goes on
        log.exception("no alert for request %s", request_id)


def _refused(
    services: Services, session: Session, row: RequestRow, now: datetime, *, during: str
) -> bool:
    """Whether `row` (locked) is not what its log says it is (not submitted so, or not in the
    state, or with the deadlines, its events say): then it is refused (`integrity.refuse`:
    cancelled or failed where its state allows, and the high `request_tampered` alert), in the
    caller's transaction, and no pass finds it again."""
    found = integrity.trail(session, row.id)
    altered = found.request_problem(row) or found.lifecycle_problem(row)
    if altered is None:
        return False
    integrity.refuse(services, session, row, found, altered, now, actor=None, during=during)
    return True


def _expire(services: Services, tick: Tick) -> None:
    now = services.clock()
    due = select(RequestRow.id).where(
        RequestRow.state.in_(
            [s.value for s in (RequestState.PENDING, *_RUNNABLE)],
        ),
        RequestRow.expires_at <= now,
        # A scheduled request expires only after its delay (its deadline was moved back
        # by the delay); before that it is not a candidate.
        or_(RequestRow.state != RequestState.SCHEDULED.value, RequestRow.not_before <= now),
    )
    acted: list[str] = []
    for request_id in _backlog(services, due, acted):
        with _isolated(services, request_id, "expiry"), services.database.transaction() as session:
            row = lock_request(session, request_id, skip_locked=True)
            if row is None or row.state not in (RequestState.PENDING, *_RUNNABLE):
                continue
            # Its `expires_at` found it here: it must be the one its log implies (a DBA's
            # earlier one would end it before its time), and the request what was submitted.
            if _refused(services, session, row, now, during="expiry"):
                tick.cancelled.append(request_id)
                acted.append(request_id)
                continue
            if row.state != RequestState.PENDING and not _for_requester_only(services, row):
                continue  # the worker executes it; only what waits for its requester expires
            expiry.expire(services, session, row, now)
            tick.expired.append(request_id)
            acted.append(request_id)


# Approved, or scheduled with its delay run: a write is the worker's to carry out, and what
# waits for its requester expires if they never ask.
_RUNNABLE = (RequestState.APPROVED, RequestState.SCHEDULED)


def _for_requester_only(services: Services, row: RequestRow) -> bool:
    """Whether it waits for its requester to carry it out (`ActionSpec.for_requester_only`).
    False for a platform or action foureyes does not know (`_connected`)."""
    if not _connected(services, row):
        return False
    connector = services.connector(row.account_ref.partition(":")[0])
    return connector.action(row.action).for_requester_only


def _connected(services: Services, row: RequestRow) -> bool:
    """Whether foureyes knows the request's platform and action (not so for a row a DBA wrote
    in, or a platform no longer connected)."""
    try:
        services.connector(row.account_ref.partition(":")[0]).action(row.action)
    except FoureyesError:
        return False
    return True


def _execute_due(services: Services, worker: str, tick: Tick) -> None:
    now = services.clock()
    due = select(RequestRow.id).where(
        RequestRow.state.in_([RequestState.APPROVED.value, RequestState.SCHEDULED.value]),
        or_(RequestRow.not_before.is_(None), RequestRow.not_before <= now),
    )
    acted: list[str] = []
    for request_id in _backlog(services, due, acted):
        with _isolated(services, request_id, "execution"):
            with services.database.transaction() as session:
                row = lock_request(session, request_id, skip_locked=True)
                if row is None or row.state not in _RUNNABLE:
                    continue
                if not _connected(services, row) and _refused(
                    services, session, row, now, during="execution"
                ):
                    # `execute` needs the platform before it can re-check the row: a row its log
                    # does not describe is refused here (one it does waits for its platform).
                    tick.cancelled.append(request_id)
                    acted.append(request_id)
                    continue
                if _for_requester_only(services, row):
                    continue  # its answer is for its requester, who carries it out
            # The platform call runs outside the transaction that chose the row.
            try:
                outcome = execute(services, request_id, worker=worker, skip_locked=True)
            except Conflict:
                continue  # another worker got there first
            except Unavailable as exc:
                # The store failed: nothing was recorded as failed, and nothing is reported as
                # such; what state the request is in (approved, or executing until reconciled)
                # is what the store says.
                log.warning("request %s: %s", request_id, exc.message)
                continue
            except FoureyesError as exc:
                log.warning("request %s could not be executed: %s", request_id, exc.message)
                tick.failed.append(request_id)
                continue
            if outcome is None:
                continue
            acted.append(request_id)  # out of the backlog, or waiting for its retry time
            # Report what happened, not what was tried: the re-check may have cancelled it, the
            # platform may have refused it, or a transient error put it back for a retry.
            if outcome.state == RequestState.EXECUTED:
                tick.executed.append(request_id)
            elif outcome.state == RequestState.CANCELLED:
                tick.cancelled.append(request_id)
            elif outcome.state == RequestState.FAILED:
                tick.failed.append(request_id)


def _reconcile_abandoned(services: Services, tick: Tick) -> None:
    """Reconcile the `executing` requests whose execution lease has lapsed (`workflow.lease`):
    never one whose process is still renewing it, however long its platform call takes."""
    abandoned = select(RequestRow.id).where(lease.lapsed(services.clock()))
    acted: list[str] = []
    for request_id in _backlog(services, abandoned, acted):
        with _isolated(services, request_id, "reconciliation"):
            try:
                state = reconcile(services, request_id)
            except Conflict:
                continue  # renewed meanwhile, or another worker has it
            except FoureyesError as exc:
                log.warning("request %s could not be reconciled: %s", request_id, exc.message)
                continue
            acted.append(request_id)  # finished, failed, or held again for its back-off
            if state != RequestState.EXECUTING:  # else the platform could not be asked: later
                tick.reconciled.append(request_id)


# Break-glass requests whose row's flag was found cleared, named already by this process.
_FLAG_NAMED: set[str] = set()


def _flag_overdue_post_reviews(services: Services, tick: Tick) -> None:
    """Every break-glass request whose post-review the log does not say is settled is looked
    at in each pass, whatever its stored `post_review_due` says: that deadline must be the one
    its log implies (moved or cleared by a DBA, it is reported as tampering and put back,
    `integrity.refuse`). Once it has passed, the sign-offs the log recorded (not the review
    rows) are counted: too few, and `break_glass.overdue` flags it (the `break_glass` detector
    alerts); enough, and `break_glass.signed_off` says so. Either settles it for good. A stored
    break-glass its log does not describe as one (a row a DBA wrote in) is refused (the high
    `request_tampered` alert) and settled too, by `break_glass.unfounded`: it is not looked at
    again, and cannot hold up the others (`_backlog`)."""
    now = services.clock()
    settled = (
        select(EventRow.seq)
        .where(
            EventRow.request_id == RequestRow.id,
            EventRow.kind.in_(integrity.SETTLED),
            in_tree(),  # only an event of the log settles it
        )
        .exists()
    )
    # A break-glass is one its submission's body says is one, whatever its row's flag says
    # (attack hide2-F4); a settled event found by its columns only counts where its body says
    # so (attack hide-F3).
    with services.database.read() as session:
        glass = sorted(request_index.broke_the_glass(session))
        unvouched = settled_claims.unvouched(session, glass)
    if unvouched:
        log.warning("break-glass requests settled by their columns only: %s", unvouched[:5])
    owed = select(RequestRow.id).where(
        or_(RequestRow.break_glass.is_(True), RequestRow.id.in_(glass)),
        or_(~settled, RequestRow.id.in_(unvouched)),
    )
    acted: list[str] = []
    for request_id in _backlog(services, owed, acted):
        with (
            _isolated(services, request_id, "post-review"),
            services.database.transaction() as session,
        ):
            row = lock_request(session, request_id, skip_locked=True)
            if row is None:
                continue
            found = integrity.trail(session, row.id)
            terms = found.break_glass_terms()
            if terms is None:
                _unfounded(services, session, row, found, now)
                acted.append(request_id)
                continue
            due_at, needed = terms
            altered = found.deadline_problem(row)
            if not row.break_glass and row.id not in _FLAG_NAMED:
                # Its row's flag cleared (hide2-F4; the column is write-once: it cannot be put
                # back from here): named once per process, and its post-review still counted.
                _FLAG_NAMED.add(row.id)
                flag = (
                    "its row says it did not break the glass, but its request.submitted audit "
                    "event says it did"
                )
                altered = flag if altered is None else f"{flag}; {altered}"
            if altered is not None:
                integrity.refuse(
                    services,
                    session,
                    row,
                    found,
                    altered,
                    now,
                    actor=None,
                    during="post-review",
                )
                continue  # its deadline is put back: a later pass flags it on time
            if due_at > now:
                continue
            signed = len(found.signed_off())
            row.post_review_due = None  # settled once; the event keeps the deadline
            kind = integrity.OVERDUE if signed < needed else integrity.SIGNED_OFF
            record(
                services,
                session,
                kind=kind,
                actor=None,
                row=row,
                payload={"due": due_at, "needed": needed, "signed_off": signed},
                now=now,
            )
            acted.append(request_id)
            if kind == integrity.OVERDUE:
                tick.overdue.append(request_id)


def _unfounded(
    services: Services, session: Session, row: RequestRow, found: integrity.Trail, now: datetime
) -> None:
    """Settle a stored break-glass request whose log describes no break-glass post-review (no
    `request.submitted` event, several, or one not of a break-glass): refused as altered (named
    in the high `request_tampered` alert, unless an earlier re-check ended it and named it
    already; cancelled if it is still open), and the `break_glass.unfounded` event, so that no
    later pass looks at it again."""
    problem = (
        found.request_problem(row) or "its audit events do not describe it as a break-glass request"
    )
    named = alert_log.vouched(  # a row written in names nothing
        session,
        session.scalars(
            select(AlertRow).where(
                AlertRow.request_id == row.id, AlertRow.detector == integrity.DETECTOR
            )
        ),
    )
    if not named or not RequestState(row.state).final:
        integrity.refuse(
            services, session, row, found, problem, now, actor=None, during="post-review"
        )
    record(
        services,
        session,
        kind=integrity.UNFOUNDED,
        actor=None,
        row=row,
        payload={"problem": problem},
        now=now,
    )
