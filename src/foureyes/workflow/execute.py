"""Carrying out approved requests exactly once.

Execution is three steps. (1) The claim, in one transaction: lock the row, check it is
`approved` (or `scheduled` and due), re-check the requester and every counted approver under the
policy in force (cancel, with the reason, if that no longer holds; and as tampering, with an
alert, if a review row and the review events differ, or the state or `not_before` is not what
the log recorded: `integrity`), move to `executing` and record the attempt with its lease
(`lease`). (2) The platform call, outside any transaction, carrying the request id as
idempotency key, while a heartbeat renews the lease. (3) The outcome, in a second transaction:
`executed`, `failed`, or back to `approved` with a back-off for a transient error — only if the
attempt still holds the request. A process that dies between (1) and (3) leaves `executing`
with a lease that lapses; `workflow.reconcile` then asks the platform's record of the key. So
does a write whose call ended with its outcome unknown (cut short by the call's deadline, the
answer to any of its tries lost or not believed: `ConnectorError.outcome_unknown`): its attempt
gives up its hold at once (`abandoned`), and is never taken as executed, nor run again, by
assumption. Only an error that says nothing was applied, nor will be, sends a request back to
`approved` or ends it (`_failed`): so a request that is cancelled, expires, is refused at the
re-check or runs out of attempts has no earlier attempt left that could still apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, bindparam, func, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient, make_transient_to_detached

from foureyes.connectors.base import Connector, ExecutionOrder, ExecutionResult, LocalExecution
from foureyes.connectors.tickets import TicketSystemUnavailable
from foureyes.core import logstate
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import expect_state, lock_request, move, record
from foureyes.core.services import Actor, Services, json_safe
from foureyes.errors import (
    Conflict,
    ConnectorError,
    Forbidden,
    FoureyesError,
    NotFound,
    RecordAltered,
)
from foureyes.model import Account, ActionKind, Outcome, RequestState
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store.tables import ExecutionRow, RequestRow, ReviewRow
from foureyes.workflow import batch_undo_guard as undo_guard
from foureyes.workflow import expiry, holds, integrity, lease, tickets, undo_once
from foureyes.workflow.access import visible_request
from foureyes.workflow.approvals import engine_reviews, not_counted, review_rows
from foureyes.workflow.subject import redecide

MAX_ATTEMPTS = 5
# What the re-check under the lock found (`_recheck`).
_Rechecked = tuple[tuple[str, ...], str | None, bool, tuple[str, ...], Decision | None]
BACKOFF = timedelta(seconds=5)


@dataclass(frozen=True)
class ExecutionOutcome:
    """What `execute` did: the final state, and any data the action returned for its
    requester (a read's answer, a `login_as` session token; never stored)."""

    state: RequestState
    data: dict[str, Any] | None = None
    reason: str | None = None


def order_of(row: RequestRow, approvers: tuple[str, ...], attempt: int = 0) -> ExecutionOrder:
    """What the platform is told to do for `row` (its id is the idempotency key) in execution
    attempt `attempt`."""
    _, account_id = Account.split_ref(row.account_ref)
    return ExecutionOrder(
        action=row.action,
        account_id=account_id,
        params=dict(row.params),
        idempotency_key=row.id,
        approvers=approvers,
        requester=row.requester_id,
        attempt=attempt,
        reverts=row.reverts_id or "",
    )


def execute(
    services: Services,
    request_id: str,
    *,
    actor: Actor | None = None,
    worker: str = "inline",
    skip_locked: bool = False,
) -> ExecutionOutcome | None:
    """Execute one approved (or due scheduled) request. An action whose answer is for the
    requester alone (`ActionSpec.for_requester_only`: reads, and actions that reveal private
    data such as `account.login_as`) runs only for its requester, who gets the data back once;
    other writes run for the worker or whoever calls and may see the request (to anyone else
    it is NotFound, as an unknown id: `access.may_see`). With `skip_locked`, a row another
    process holds is left to it (returns None)."""
    # Who may execute it, first: nothing is looked up, asked or written for anyone else.
    account_ref = _account_of(services, request_id, actor)
    connector = services.connector(account_ref.partition(":")[0])
    # The account as the platform sees it now, looked up before we take the lock. A platform
    # that cannot answer makes this attempt fail like the call itself would (retried while
    # transient), so a request never waits forever on a platform that is down.
    fresh, lookup_error = _look_up(services, account_ref)
    # The tickets the rules required, asked again (`workflow.tickets`): closed meanwhile
    # cancels it below; a ticket system that cannot answer fails this attempt like the platform.
    # Decided on the same fresh account as the re-check under the lock below, so that a rule
    # matching only because the account changed since submission has its ticket asked too.
    rechecked, lookup_error = _recheck_tickets(services, request_id, lookup_error, fresh)
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id, skip_locked=skip_locked)
        if row is None:
            return None
        if actor is not None:
            visible_request(services, session, row, request_id, actor)
        state = expect_state(row, RequestState.APPROVED, RequestState.SCHEDULED)
        if state == RequestState.SCHEDULED and row.not_before is not None and row.not_before > now:
            raise Conflict(f"request {row.id} is scheduled for {row.not_before.isoformat()}")
        # Before anything else reads the row: is it what was submitted and approved?
        found = integrity.trail(session, row.id)
        altered = found.request_problem(row)
        if altered is not None:
            reason = integrity.refuse(
                services,
                session,
                row,
                found,
                altered,
                now,
                actor=_who(actor, worker),
                during="execution",
            )
            return ExecutionOutcome(RequestState.CANCELLED, reason=reason)
        spec = connector.action(row.action)
        if spec.for_requester_only and (actor is None or actor.id != row.requester_id):
            raise Forbidden(
                f"{row.action} is carried out only for its requester, who alone gets its answer"
            )
        checked: _Rechecked = ((), None, False, (), None)  # no account: the attempt fails
        if fresh is not None:
            checked = _recheck(services, session, row, now, fresh, (found, rechecked))
        approvers, problem, forged, missing, decided = checked
        # Reviews the log does not stand for, and a state or schedule it never recorded (a
        # deleted veto, a request set back to approved, an earlier `not_before`), or undo
        # params written onto a request that has not run (G6/G7), are tampering whatever the
        # policy says now; every one found is named.
        found_now = (problem if forged else None, found.lifecycle_problem(row))
        tampered = [p for p in (*found_now, found.undo_params_problem(row)) if p]
        if tampered:
            reason = integrity.refuse(
                services,
                session,
                row,
                found,
                "; ".join(tampered),
                now,
                actor=_who(actor, worker),
                during="execution",
            )
            return ExecutionOutcome(RequestState.CANCELLED, reason=reason)
        if spec.for_requester_only and expiry.overdue(row, now):
            # What waits for its requester is not carried out past its deadline, whether or
            # not the worker's expiry pass came by yet (that pass leaves writes to the worker).
            return ExecutionOutcome(
                RequestState.EXPIRED, reason=expiry.expire(services, session, row, now)
            )
        # A split-out batch undo: the item it reverses, held as a reverse batch's item is.
        problem = (
            problem
            or rechecked.problem
            or undo_guard.split_undo_problem(services, session, row, now)
            or undo_once.problem(services, session, row)
        )
        if problem is not None:
            move(
                services,
                session,
                row,
                RequestState.CANCELLED,
                actor=None,
                kind="request.cancelled",
                now=now,
                reason=f"re-check at execution failed: {problem}",
            )
            return ExecutionOutcome(RequestState.CANCELLED, reason=row.reason)
        lookup_error = lookup_error or _unchecked(missing)
        by = (actor.id if actor else None, worker)
        # The claim's events (and, for a platform kept here, the outcome's) are appended
        # together once the log was read above: the head lock is taken once, at the end.
        with services.audit.group(session):
            tickets.record_check(
                services, session, row, tickets.EXECUTE, rechecked.tickets, actor=by[0], now=now
            )
            execution = _claim(services, session, (row, approvers), now, by=by, decided=decided)
            attempt = execution.attempt
            order = order_of(row, approvers, attempt)
            local = _local_execution(services, connector, row.account_ref)
            if local is not None and lookup_error is None:
                return _carry_out_here(services, session, (row, execution), now, local, order)
    if lookup_error is not None:
        return _failed(services, request_id, attempt, lookup_error)
    try:
        with lease.heartbeat(services, request_id, attempt):
            result = connector.execute(order)
    except ConnectorError as exc:
        if exc.outcome_unknown and spec.kind is ActionKind.WRITE:
            return _abandoned(services, request_id, attempt, exc)
        return _failed(services, request_id, attempt, exc)
    except FoureyesError as exc:
        return _failed(services, request_id, attempt, ConnectorError(str(exc), transient=False))
    return _succeeded(services, request_id, attempt, result)


def _recheck_tickets(
    services: Services,
    request_id: str,
    lookup_error: ConnectorError | None,
    fresh: Account | None,
) -> tuple[tickets.Rechecked, ConnectorError | None]:
    """The request's tickets asked again (recorded only with the claim), those the policy
    requires of the account as looked up now (`fresh`; as submitted when the lookup failed,
    which fails the attempt anyway), and the attempt's error (`lookup_error`, or the ticket
    system's when it cannot answer)."""
    due = (RequestState.APPROVED.value, RequestState.SCHEDULED.value)
    try:
        return tickets.recheck(services, request_id, due, account=fresh), lookup_error
    except TicketSystemUnavailable as exc:
        return tickets.Rechecked(), lookup_error or ConnectorError(exc.message, transient=True)


def _unchecked(missing: tuple[str, ...]) -> ConnectorError | None:
    """The attempt's error when the decision under the lock requires a ticket the re-check
    before it did not ask about (the policy or the pins changed in between): never carried out
    unchecked; the attempt fails as for a ticket system that is down, and the next asks again."""
    if not missing:
        return None
    return ConnectorError(
        f"the {', '.join(missing)} ticket the policy in force requires was not checked for "
        "this attempt: it is asked again at the next",
        transient=True,
    )


def _look_up(services: Services, account_ref: str) -> tuple[Account | None, ConnectorError | None]:
    """The account as its platform answers now, or why it could not be looked up."""
    try:
        return services.resolve_account(account_ref), None
    except ConnectorError as exc:
        return None, exc
    except NotFound as exc:
        return None, ConnectorError(exc.message, transient=False)


def _claim(
    services: Services,
    session: Session,
    approved: tuple[RequestRow, tuple[str, ...]],
    now: datetime,
    *,
    by: tuple[str | None, str],
    first: bool = False,
    decided: Decision | None = None,
    written: bool = True,
) -> ExecutionRow:
    """Step (1)'s change: the next attempt, with its lease, and the move to `executing` by
    `by` (the person who asked, if any, and the worker's name), naming the decision of the
    re-check it runs under (`decided`: policy version, tier, rules; None when the account
    could not be looked up, and the attempt fails). `first`: the request was recorded in this
    very transaction, so this is attempt 1 (not looked up). `written` False: the attempt is
    not given to the session; the caller writes it, settled, with `_write_attempt` before its
    COMMIT (a claim carried out in its own transaction: nobody else can see it before)."""
    row, approvers = approved
    actor, worker = by
    attempt = 1 if first else _next_attempt(session, row.id)
    execution = ExecutionRow(
        request_id=row.id,
        attempt=attempt,
        started_at=now,
        lease_until=now + services.execution_lease,
    )
    if written:
        session.add(execution)
    move(
        services,
        session,
        row,
        RequestState.EXECUTING,
        actor=actor,
        kind="request.executing",
        now=now,
        details={
            "attempt": attempt,
            "worker": worker,
            "approvers": list(approvers),
            **({} if decided is None else {"decision": _decided_under(decided)}),
        },
    )
    return execution


# The attempt's INSERT, built once (`_write_attempt`).
_INSERT_ATTEMPT = insert(ExecutionRow)
_ATTEMPT_COLUMNS = tuple(c.key for c in ExecutionRow.__table__.columns if c.key != "id")
# A None in a JSON column is left out (SQL NULL, as the ORM leaves an attribute never set).
_ATTEMPT_JSON = frozenset(c.key for c in ExecutionRow.__table__.columns if isinstance(c.type, JSON))


def _write_attempt(session: Session, execution: ExecutionRow) -> None:
    """INSERT the attempt `_claim` made without the session (`written=False`), as it was
    settled: the one row the ORM would have flushed, without a unit of work (executions are
    not sealed: `core.sealing`)."""
    values = {key: getattr(execution, key) for key in _ATTEMPT_COLUMNS}
    session.connection().execute(
        _INSERT_ATTEMPT,
        {k: v for k, v in values.items() if v is not None or k not in _ATTEMPT_JSON},
    )


def _write_moves(session: Session, row: RequestRow) -> None:
    """UPDATE `row` with what was changed on it since it was last written (its moves) in one
    Core statement, then hand it back to the session as written (expunged, and added again
    with nothing pending): the UPDATE the ORM's flush would send, without a unit of work
    (requests are not sealed: `core.sealing`). Nothing for a row the session does not hold."""
    state = inspect(row)
    if not state.persistent or not state.committed_state:
        return
    changed = {key: state.dict[key] for key in state.committed_state if key in state.dict}
    if len(changed) != len(state.committed_state):
        return  # an attribute expired meanwhile: left to the flush
    session.connection().execute(_UPDATE_REQUEST, {"_request_id": row.id, **changed})
    session.expunge(row)
    make_transient(row)
    make_transient_to_detached(row)
    session.add(row)


_UPDATE_REQUEST = update(RequestRow).where(RequestRow.id == bindparam("_request_id"))


def _decided_under(decision: Decision) -> dict[str, Any]:
    """What the log says of the decision an execution runs under: enough to tell which rules,
    and so which approvals, step-up and delay, it was carried out for."""
    return {
        "policy_version": decision.policy_version,
        "tier": decision.tier,
        "rules": list(decision.matched_ids),
    }


def _account_of(services: Services, request_id: str, actor: Actor | None) -> str:
    """The request's account, once the log may be acted on (nothing is carried out on a log
    rolled back or with a moved head: `logstate.refuse`) and, for a person, once they may
    execute it: visible to them (else NotFound, as an unknown id), approved or due, and theirs
    if its answer is for its requester alone. Checked before any platform or ticket-system
    call, and again under the lock (the request may move on meanwhile)."""
    logstate.refuse(services)
    with services.database.read() as session:
        row = session.get(RequestRow, request_id)
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        if actor is not None:
            visible_request(services, session, row, request_id, actor)
            state = expect_state(row, RequestState.APPROVED, RequestState.SCHEDULED)
            now = services.clock()
            if state == RequestState.SCHEDULED and row.not_before and row.not_before > now:
                raise Conflict(f"request {row.id} is scheduled for {row.not_before.isoformat()}")
            spec = services.connector(row.account_ref.partition(":")[0]).action(row.action)
            if spec.for_requester_only and actor.id != row.requester_id:
                raise Forbidden(
                    f"{row.action} is carried out only for its requester, who alone gets its answer"
                )
        return row.account_ref


def _who(actor: Actor | None, worker: str) -> str:
    return actor.id if actor is not None else worker


def _recheck(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    account: Account,
    seen: tuple[integrity.Trail, tickets.Rechecked],
) -> _Rechecked:
    """Who approved, why execution must not go ahead (None when it may), whether that is
    because the reviews in the store are not the ones the log recorded, the ticket systems
    this very decision requires that the attempt's ticket re-check (`seen`) did not ask, and
    the decision (None when a record it reads was altered)."""
    found, rechecked = seen
    try:
        decision = redecide(services, session, row, now, account=account)
        approvers, problem, forged = _recheck_sealed(services, session, row, now, decision, found)
    except RecordAltered as exc:
        # A record the decision reads (the requester's, an approver's, the account's pins) is
        # not what the log sealed: nothing is carried out on it, and the request is cancelled
        # saying so (security is alerted: `sealing.report`).
        return (), exc.message, False, (), None
    missing = tickets.unchecked(row, decision, rechecked.tickets)
    return approvers, problem, forged, missing, decision


def _recheck_sealed(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    decision: Decision,
    found: integrity.Trail,
) -> tuple[tuple[str, ...], str | None, bool]:
    if decision.outcome == Outcome.DENIED:
        return (), "; ".join(decision.reasons), False
    try:
        waits = _delay_not_run(services, decision, found.approved_at(), now)
    except (KeyError, TypeError, ValueError, IndexError):
        waits = "its audit events do not say when it was approved"
    if decision.outcome == Outcome.ALLOWED:
        return (), waits, False
    reviews = review_rows(session, row.id)
    # A review row the log does not stand for, or signed on another digest, was written behind
    # foureyes' back (every review is stored with its event, in one transaction): fail closed.
    forged = found.review_problem(reviews)
    if forged is not None:
        return (), forged, True
    approvers, problem = _counted(services, session, row, now, decision, reviews)
    return approvers, "; ".join(p for p in (problem, waits) if p) or None, False


def _delay_not_run(
    services: Services, decision: Decision, approved_at: datetime, now: datetime
) -> str | None:
    """Why `decision` (the re-check's) does not let a request approved at `approved_at` run at
    `now`: it asks for a delay after the approval that has not run since (the policy, or the
    account's tier, changed after the approval). As for a decision that now asks for more
    approvals, the request is not carried out: `execute` cancels it saying so (it is asked for
    again, and decided under the policy in force). None when no such delay is owed (a
    break-glass skips its rule's delay, as at submission)."""
    if decision.break_glass:
        return None
    delay = services.delay_for(decision.options.delay)
    if not delay or approved_at + delay <= now:
        return None
    return (
        f"the policy in force asks for a delay of {delay} after the approval, which has not "
        f"run since it was approved at {approved_at.isoformat()}"
    )


def _counted(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    decision: Decision,
    reviews: list[ReviewRow],
) -> tuple[tuple[str, ...], str | None]:
    """Who approved `row` under `decision` (a decision that requires approvals), weighing its
    `reviews` with each reviewer's record as of now; or why they are not enough."""
    step_up = decision.options.step_up
    status = satisfied(
        decision,
        engine_reviews(services, session, reviews, step_up=step_up),
        today=now.date(),
        submitted=holds.escalation_start(services, session, row),
        now=now,
    )
    if not status.satisfied:
        # An approval taken back by revoking its step-up credential, or given without the
        # step-up the decision now asks for, is named, so the cancellation says why an
        # approved request lost an approval.
        taken_back = not_counted(session, reviews, step_up=step_up).values()
        return (), "; ".join([*taken_back, *status.reasons])
    return tuple(sorted(p for f in status.factors for p in f.approved_by)), None


def _next_attempt(session: Session, request_id: str) -> int:
    last = session.scalar(
        select(func.max(ExecutionRow.attempt)).where(ExecutionRow.request_id == request_id)
    )
    return int(last or 0) + 1


def _attempt_row(session: Session, request_id: str, attempt: int) -> ExecutionRow:
    row = session.scalar(
        select(ExecutionRow).where(
            ExecutionRow.request_id == request_id, ExecutionRow.attempt == attempt
        )
    )
    if row is None:
        raise NotFound(f"no execution attempt {attempt} of request {request_id}")
    return row


def carry_out_at_once(
    services: Services,
    session: Session,
    row: RequestRow,
    actor: Actor,
    account: Account | None,
    now: datetime,
    *,
    policy: Policy | None = None,
    first: bool = False,
) -> ExecutionOutcome | None:
    """Carry out `row`, a request that became `approved` in this very transaction (`actor`'s:
    the requester's submit, or the deciding review), in that transaction, when its platform
    is kept in foureyes' database (`_local_execution`): the request's last step (its record,
    or the review and the approval), its claim, the platform's change, the outcome and all
    their events commit together or not at all. None (nothing done here) for any other
    platform, an action whose answer is for its requester alone when `actor` is someone else
    (`ActionSpec.for_requester_only`), a request needing a ticket (its system is asked again
    at execution, outside our transactions), or when the re-check below does not let it go
    ahead: the caller commits what it recorded and `execute` carries it out (or cancels it,
    saying why) as usual.

    The re-checks of `execute` hold here as they are: the policy in force, the account (as
    its platform answers now: `account`, the caller's own lookup, or with None read here, in
    this transaction), its pins, the requester's and every approver's record are read again
    (`redecide`, and the reviews weighed again: `_counted`; a record the log did not seal
    falls back to `execute`, which cancels the request saying so). A decision that asks for
    more than the approvals give (step-up they lack, a delay, which cannot have run since an
    approval made in this transaction) falls back to `execute` too, which cancels it saying
    why, as for a decision that asks for more approvals. `policy`: the policy in force as this
    transaction read it already, with `account`'s pins (the submit decided on both in it):
    then neither is read again, only the people's records. What `execute` checks
    against the log (the row and its events as submitted, the reviews, the state) the caller
    checked in this transaction, under the request's lock, before it wrote anything: it
    cannot differ from what this transaction wrote since. `first`: the request was recorded
    in this very transaction (the submit's), so this is attempt 1 (not looked up). A
    split-out batch undo is never carried out here (`execute` re-checks the item it
    reverses), nor an undo of a request `undo_once.problem` holds (`execute` cancels it)."""
    connector = services.connector(row.account_ref.partition(":")[0])
    local = _local_execution(services, connector, row.account_ref)
    if local is None or row.state != RequestState.APPROVED.value:
        return None
    if row.reverts_item_id is not None:
        return None  # a split-out batch undo: `execute` re-checks the item it reverses
    if undo_once.problem(services, session, row) is not None:
        return None  # an undo of a request undone already or superseded: `execute` cancels it
    if connector.action(row.action).for_requester_only and row.requester_id != actor.id:
        return None
    if account is None:
        account = _look_up_here(session, connector, row.account_ref)
        if account is None:
            return None  # `execute` looks again, and fails it saying why
    try:
        current = None if policy is None else (policy, account)
        decision = redecide(services, session, row, now, account=account, current=current)
        approvers = _approvers_now(services, session, row, now, decision)
    except RecordAltered:
        return None
    if approvers is None or tickets.unchecked(row, decision, ()):
        return None
    if _delay_not_run(services, decision, now, now) is not None:
        return None  # approved in this transaction: `execute` cancels it, saying why
    execution = _claim(
        services,
        session,
        (row, approvers),
        now,
        by=(actor.id, "inline"),
        first=first,
        decided=decision,
        written=False,
    )
    order = order_of(row, approvers, execution.attempt)
    done = _carry_out_here(services, session, (row, execution), now, local, order)
    _write_attempt(session, execution)
    _write_moves(session, row)
    return done


def _approvers_now(
    services: Services, session: Session, row: RequestRow, now: datetime, decision: Decision
) -> tuple[str, ...] | None:
    """Who approved `row` under `decision` (none needed: empty), or None when it may not go
    ahead: denied now, or its reviews (read in the caller's transaction, with any it wrote)
    no longer enough."""
    if decision.outcome == Outcome.DENIED:
        return None
    if decision.outcome == Outcome.ALLOWED:
        return ()
    approvers, problem = _counted(
        services, session, row, now, decision, review_rows(session, row.id)
    )
    return None if problem is not None else approvers


def _look_up_here(session: Session, connector: Connector, account_ref: str) -> Account | None:
    """The account as its platform, kept in foureyes' database, answers now, read in
    `session` (`Connector.local_lookup`); None when it has no such account or no such query."""
    local = connector.local_lookup()
    if local is None:
        return None
    _, account_id = Account.split_ref(account_ref)
    found = session.connection().execute(local.query, {"account_id": account_id}).one_or_none()
    return None if found is None else local.account(found._mapping)


def _local_execution(
    services: Services, connector: Connector, account_ref: str
) -> LocalExecution | None:
    """The connector's in-transaction `execute`, for a platform kept in this very database
    (`Services.stored_here`); None for every other platform."""
    if not services.stored_here(account_ref):
        return None
    return connector.local_execution()


def _carry_out_here(
    services: Services,
    session: Session,
    claimed: tuple[RequestRow, ExecutionRow],
    now: datetime,
    local: LocalExecution,
    order: ExecutionOrder,
) -> ExecutionOutcome:
    """Steps (2) and (3) in the claim's own transaction, for a platform kept in foureyes'
    database: the platform's change, the outcome and their audit events commit with the claim
    or not at all, so there is no lease to hold and nothing to reconcile."""
    try:
        # A split-out batch undo is judged again under the account's lock (attack F0).
        # So is an undo of a request (attack F3).
        result = undo_guard.unless_superseded(
            services,
            session,
            claimed[0],
            lambda: local(session, order),
            undo_guard.split_judge(services, session, claimed[0])
            or undo_once.judge(services, session, claimed[0]),
        )
    except ConnectorError as exc:
        return _settle_failure(services, session, claimed, now, exc)
    except FoureyesError as exc:
        failure = ConnectorError(str(exc), transient=False)
        return _settle_failure(services, session, claimed, now, failure)
    return _settle_success(services, session, claimed, now, result)


def _succeeded(
    services: Services, request_id: str, attempt: int, result: ExecutionResult
) -> ExecutionOutcome:
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        execution = _attempt_row(session, request_id, attempt)
        if not lease.holds(row, execution):
            return _late(services, session, row, execution, now, result=result)
        return _settle_success(services, session, (row, execution), now, result)


def _settle_success(
    services: Services,
    session: Session,
    claimed: tuple[RequestRow, ExecutionRow],
    now: datetime,
    result: ExecutionResult,
) -> ExecutionOutcome:
    """Record the attempt that holds the request as executed, in the caller's transaction."""
    row, execution = claimed
    attempt = execution.attempt
    execution.finished_at, execution.outcome = now, "executed"
    execution.detail = json_safe(dict(result.summary))
    row.result = json_safe(dict(result.summary))
    # Private, for `undo` alone: never in the event below nor in any view. The event vouches
    # for what the platform reported only (a value found in the row already was written
    # outside foureyes: left unvouched, every undo of it is refused as altered).
    vouched: dict[str, str] = {}
    if result.undo_params is not None:
        row.undo_params = json_safe(dict(result.undo_params))
        vouched = integrity.vouch_for_undo_params(row)
    move(
        services,
        session,
        row,
        RequestState.EXECUTED,
        actor=None,
        kind="request.executed",
        now=now,
        details={"attempt": attempt, "summary": dict(result.summary), **vouched},
    )
    mark_reverted(services, session, row, now)
    data = dict(result.data) if result.data is not None else None
    return ExecutionOutcome(RequestState.EXECUTED, data=data)


def _failed(
    services: Services, request_id: str, attempt: int, exc: ConnectorError
) -> ExecutionOutcome:
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        execution = _attempt_row(session, request_id, attempt)
        if not lease.holds(row, execution):
            return _late(services, session, row, execution, now, error=exc)
        return _settle_failure(services, session, (row, execution), now, exc)


def _settle_failure(
    services: Services,
    session: Session,
    claimed: tuple[RequestRow, ExecutionRow],
    now: datetime,
    exc: ConnectorError,
) -> ExecutionOutcome:
    """Record the failed attempt that holds the request, in the caller's transaction: back to
    `approved` with a back-off while a transient error has attempts left, else `failed`."""
    row, execution = claimed
    attempt = execution.attempt
    execution.finished_at, execution.outcome = now, "error"
    execution.detail = {"error": exc.message, "transient": exc.transient}
    if exc.transient and attempt < MAX_ATTEMPTS:
        row.not_before = now + BACKOFF * (2 ** (attempt - 1))
        move(
            services,
            session,
            row,
            RequestState.APPROVED,
            actor=None,
            kind="execution.retry",
            now=now,
            reason=f"attempt {attempt} failed (transient): {exc.message}",
            details={"attempt": attempt, "retry_at": row.not_before},
        )
        return ExecutionOutcome(RequestState.APPROVED, reason=row.reason)
    why = "transient, out of retries" if exc.transient else "refused by the platform"
    move(
        services,
        session,
        row,
        RequestState.FAILED,
        actor=None,
        kind="request.failed",
        now=now,
        reason=f"{exc.message} ({why})",
        details={"attempt": attempt},
    )
    return ExecutionOutcome(RequestState.FAILED, reason=row.reason)


def _abandoned(
    services: Services, request_id: str, attempt: int, exc: ConnectorError
) -> ExecutionOutcome:
    """A write whose call ended without an outcome anyone can believe: cut short by its
    deadline, its answer lost or not signed, or the platform saying it is still in progress.
    The attempt gives up its hold now (`lease.ABANDONED`, its lease lapsed), so that
    reconciliation settles it from the platform's record as after a crash; the request stays
    `executing` meanwhile, and the caller (a worker) goes on with other requests."""
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        execution = _attempt_row(session, request_id, attempt)
        if not lease.holds(row, execution):
            return _late(services, session, row, execution, now, error=exc)
        execution.outcome = lease.ABANDONED
        execution.lease_until = now
        execution.detail = {"error": exc.message, "outcome": "unknown"}
        record(
            services,
            session,
            kind="execution.abandoned",
            actor=None,
            row=row,
            payload={
                "attempt": attempt,
                "error": exc.message,
                "reason": "whether the platform applied it is unknown: it is reconciled",
            },
            now=now,
        )
    return ExecutionOutcome(
        RequestState.EXECUTING,
        reason=f"{exc.message}; whether it was applied is unknown: it is being reconciled",
    )


def _late(
    services: Services,
    session: Session,
    row: RequestRow,
    execution: ExecutionRow,
    now: datetime,
    *,
    result: ExecutionResult | None = None,
    error: ConnectorError | None = None,
) -> ExecutionOutcome:
    """The outcome of a platform call whose attempt no longer holds the request: its lease
    lapsed and reconciliation took it over (and may have finished it, or sent it back to run
    again). It is kept on the attempt and moves nothing. A call that came back applied while the
    request is neither `executed` nor being carried out again (whose run would find the key
    applied) raises the high `execution_interrupted` alert: reconciliation could not tell and
    failed it, or sent it back to a run that may yet be cancelled, and the platform has it
    (a read changed nothing: no alert)."""
    execution.finished_at = now
    if result is None:
        assert error is not None
        execution.outcome = "late_error"
        execution.detail = {"error": error.message, "transient": error.transient}
        return ExecutionOutcome(RequestState(row.state), reason=row.reason)
    execution.outcome = "late_executed"
    execution.detail = json_safe(dict(result.summary))
    state = RequestState(row.state)
    spec = services.connector(row.account_ref.partition(":")[0]).action(row.action)
    settled = (RequestState.EXECUTED, RequestState.REVERTED, RequestState.EXECUTING)
    if spec.kind is ActionKind.WRITE and state not in settled:
        raise_alert(
            services,
            session,
            NewAlert(
                detector=lease.INTERRUPTED_ALERT,
                severity="high",
                summary=(
                    f"request {row.id} ({row.action} on {row.account_ref}) was applied by a "
                    f"platform call that outlived its lease; the request is {state.value}: "
                    "check the platform"
                ),
                account=row.account_ref,
                request=row.id,
                details={"attempt": execution.attempt, "state": state.value},
            ),
            now=now,
        )
    # The answer of a call that no longer held the request goes to nobody.
    return ExecutionOutcome(state, reason=row.reason)


def mark_reverted(services: Services, session: Session, row: RequestRow, now: datetime) -> None:
    """An executed undo reverts the request (or, split out of a batch undo, the batch item:
    `batch_undo_guard.revert_originals`) it undoes. When the platform was already back in
    the earlier state (`already_applied`: someone else reverted the change), the record says so
    rather than crediting the undo with a change it did not make."""
    if row.reverts_item_id is not None:
        undo_guard.revert_originals(
            services, session, {row.reverts_item_id: None}, {"by_request": row.id}, now
        )
    if row.reverts_id is None:
        return
    original = lock_request(session, row.reverts_id)
    if original.state == RequestState.EXECUTED.value:
        found_reverted = (row.result or {}).get("already_applied") is True
        move(
            services,
            session,
            original,
            RequestState.REVERTED,
            actor=row.requester_id,
            kind="request.reverted",
            now=now,
            reason=(
                f"found already reverted on the platform when request {row.id} ran (someone "
                "else changed it back; the undo changed nothing)"
                if found_reverted
                else f"undone by request {row.id}"
            ),
            details={"undo": row.id, "already_applied": found_reverted},
        )
