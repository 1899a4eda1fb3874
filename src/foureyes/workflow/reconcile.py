"""Reconciliation: finishing a request whose execution was interrupted mid-call.

An execution is interrupted when its process stops holding it: it died (kill -9, out of memory),
hung, or could not reach the database for a whole lease (`workflow.lease`). The request is left
`executing`; once its lease has lapsed (never before: a slow platform call is still held), a
worker takes the attempt over and asks the platform what *its record of the request's
idempotency key* says (`Connector.reconcile`), never whether the account happens to look changed:
another request, or someone on the platform, may have made the same change meanwhile, and that
must not be credited to this request (docs/reconciliation.md).

- applied (the platform recorded the key): `executed`, with the summary the platform kept;
- not applied (the platform records every key it applies and has none for this one): back to
  `approved`, to run again under the same key (re-checked like any execution);
- cannot tell (the platform keeps no such record, or it could not be read): `failed`, with the
  reason, for a person to check the platform.

Each raises the `execution_interrupted` alert (high when the outcome is unknown, medium
otherwise): a process stopped in the middle of a platform call, and someone should know why.
A platform that cannot be asked now (a transient error, or an order it says is still in
progress) leaves the request `executing` and is asked again after a back-off (30 s, doubling,
at most an hour), `RECONCILE_TRIES` times in all; then the request ends `failed`, "outcome
unknown: platform did not answer reconciliation", with a high alert. A platform that says "not
applied" to the last execution attempt (`execute.MAX_ATTEMPTS`) ends it `failed` too.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from foureyes.connectors.base import Connector, ExecutionOrder, Reconciliation
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import expect_state, lock_request, move
from foureyes.core.services import Services, json_safe
from foureyes.errors import Conflict, ConnectorError, FoureyesError
from foureyes.model import RequestState
from foureyes.workflow import integrity, lease
from foureyes.workflow.execute import MAX_ATTEMPTS, mark_reverted, order_of

log = logging.getLogger(__name__)

# How often reconciliation asks a platform that cannot answer now (or whose order is still in
# progress), and how long it waits between two tries: 30 s, doubling, at most an hour (about
# an hour and four minutes from the first try to the last). docs/reconciliation.md says so.
RECONCILE_TRIES = 8
RECONCILE_BACKOFF = timedelta(seconds=30)
RECONCILE_MAX_WAIT = timedelta(hours=1)
UNANSWERED = "outcome unknown: platform did not answer reconciliation"


def reconcile(services: Services, request_id: str) -> RequestState:
    """Finish a request whose execution was interrupted (see the module docstring); answers
    the state it is left in (`executing` when the platform could not be asked now). Conflict
    when it is not `executing`, or its attempt is still held (by its executor or another
    reconciler): it is not this caller's to finish."""
    taken = _take_over(services, request_id)
    if isinstance(taken, RequestState):
        return taken
    order, attempt, connector = taken
    try:
        verdict = connector.reconcile(order)
    except ConnectorError as exc:
        if exc.transient:
            return _ask_again_later(services, request_id, attempt, exc.message)
        verdict = Reconciliation(applied=None, why=exc.message)
    except FoureyesError as exc:  # NotFound, BadInput...: the platform cannot say
        verdict = Reconciliation(applied=None, why=exc.message)
    return _settle(services, request_id, attempt, verdict)


def _take_over(
    services: Services, request_id: str
) -> tuple[ExecutionOrder, int, Connector] | RequestState:
    """Lock the request and its last attempt; if the attempt's lease has lapsed, take it over
    (`lease.TAKEN_OVER`, the lease the reconciler's now) and answer the order to ask about.
    A request altered in the store is failed instead (`integrity.refuse`): the platform is asked
    only about the order that was approved. So is one without an execution attempt (every
    execution writes one with its move to `executing`: a row written in, or an attempt deleted,
    behind foureyes' back), so that it does not stay `executing` for every pass to trip on."""
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        expect_state(row, RequestState.EXECUTING)
        attempt = lease.latest_attempt(session, row.id, lock=True)
        if attempt is None:
            found = integrity.trail(session, row.id)
            problem = (
                found.request_problem(row)
                or found.lifecycle_problem(row)
                or "it is executing, but its execution attempt is missing from the store"
            )
            integrity.refuse(
                services, session, row, found, problem, now, actor=None, during="reconciliation"
            )
            return RequestState(row.state)
        until = lease.held_until(attempt, now)
        if until is not None:
            raise Conflict(
                f"request {row.id} is being carried out: attempt {attempt.attempt} is held "
                f"until {until.isoformat()}",
                request_id=row.id,
                state=row.state,
            )
        found = integrity.trail(session, row.id)
        altered = found.request_problem(row) or found.lifecycle_problem(row)
        if altered is not None:
            attempt.finished_at, attempt.outcome = now, "unknown"
            integrity.refuse(
                services, session, row, found, altered, now, actor=None, during="reconciliation"
            )
            return RequestState(row.state)
        attempt.outcome = lease.TAKEN_OVER
        attempt.lease_until = now + services.execution_lease
        return (
            order_of(row, (), attempt.attempt),
            attempt.attempt,
            services.connector(row.account_ref.partition(":")[0]),
        )


def backoff(tries: int) -> timedelta:
    """How long reconciliation waits after its `tries`-th unanswered try."""
    wait: timedelta = RECONCILE_BACKOFF * (2 ** (tries - 1))
    return min(wait, RECONCILE_MAX_WAIT)


def _ask_again_later(
    services: Services, request_id: str, attempt_no: int, error: str
) -> RequestState:
    """The platform could not say now: count the try on the attempt and hold it (the
    reconciler's lease) until the back-off has passed; after `RECONCILE_TRIES`, fail it."""
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        expect_state(row, RequestState.EXECUTING)
        attempt = lease.latest_attempt(session, row.id, lock=True)
        if attempt is None or attempt.attempt != attempt_no or attempt.outcome != lease.TAKEN_OVER:
            raise Conflict(f"request {row.id} was finished meanwhile", request_id=row.id)
        detail = dict(attempt.detail or {})
        tries = int(detail.get("reconcile_tries", 0)) + 1
        detail.update(reconcile_tries=tries, reconcile_error=error)
        attempt.detail = detail
        if tries < RECONCILE_TRIES:
            attempt.lease_until = now + backoff(tries)
            log.warning(
                "request %s: the platform cannot say now (try %d of %d, next in %s): %s",
                request_id,
                tries,
                RECONCILE_TRIES,
                backoff(tries),
                error,
            )
            return RequestState.EXECUTING
    why = f"asked {tries} times over {_spent(tries)}; the last answer: {error}"
    return _settle(
        services, request_id, attempt_no, Reconciliation(applied=None, why=why), unanswered=True
    )


def _spent(tries: int) -> str:
    total = sum((backoff(n) for n in range(1, tries)), timedelta())
    minutes = int(total.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(total.total_seconds())} s"


def _settle(
    services: Services,
    request_id: str,
    attempt_no: int,
    verdict: Reconciliation,
    *,
    unanswered: bool = False,
) -> RequestState:
    with services.database.transaction() as session:
        now = services.clock()
        row = lock_request(session, request_id)
        expect_state(row, RequestState.EXECUTING)
        attempt = lease.latest_attempt(session, row.id, lock=True)
        if attempt is None or attempt.attempt != attempt_no or attempt.outcome != lease.TAKEN_OVER:
            raise Conflict(f"request {row.id} was finished meanwhile", request_id=row.id)
        attempt.finished_at = now
        key = f"idempotency key {row.id}"
        seen: dict[str, Any] = {"attempt": attempt_no, "state": json_safe(dict(verdict.state))}
        if verdict.applied:
            attempt.outcome = "reconciled"
            summary = dict(verdict.summary) if verdict.summary is not None else {}
            row.result = json_safe(summary) if summary else {"reconciled": True}
            vouched: dict[str, str] = {}  # for what the platform reported only (as execute)
            if verdict.undo_params is not None and row.undo_params is None:
                row.undo_params = json_safe(dict(verdict.undo_params))
                vouched = integrity.vouch_for_undo_params(row)
            move(
                services,
                session,
                row,
                RequestState.EXECUTED,
                actor=None,
                kind="request.reconciled",
                now=now,
                reason=(
                    f"its execution was interrupted; the platform's record of its {key} shows "
                    "it applied"
                ),
                details={
                    "verdict": "applied",
                    **seen,
                    "summary": json_safe(summary),
                    **vouched,
                },
            )
            mark_reverted(services, session, row, now)
            severity, outcome = "medium", "the platform recorded it as applied: executed"
        elif verdict.applied is False and attempt_no >= MAX_ATTEMPTS:
            attempt.outcome = "interrupted"
            move(
                services,
                session,
                row,
                RequestState.FAILED,
                actor=None,
                kind="request.reconciled",
                now=now,
                reason=(
                    f"its execution was interrupted {attempt_no} times before the platform "
                    f"applied it (the platform has no record of its {key}); out of attempts"
                ),
                details={"verdict": "not_applied", **seen},
            )
            severity, outcome = "medium", "the platform has no record of it: out of attempts"
        elif verdict.applied is False:
            attempt.outcome = "interrupted"
            row.not_before = now
            move(
                services,
                session,
                row,
                RequestState.APPROVED,
                actor=None,
                kind="request.reconciled",
                now=now,
                reason=(
                    "its execution was interrupted before the platform applied it (the platform "
                    f"has no record of its {key}); it runs again"
                ),
                details={"verdict": "not_applied", **seen},
            )
            severity, outcome = "medium", "the platform has no record of it: it runs again"
        else:
            attempt.outcome = "unknown"
            why = verdict.why or "the platform cannot say"
            reason = (
                f"{UNANSWERED} ({why}). Check the platform by hand"
                if unanswered
                else "its execution was interrupted, and whether the platform applied it is "
                f"unknown: {why}. Check the platform by hand"
            )
            move(
                services,
                session,
                row,
                RequestState.FAILED,
                actor=None,
                kind="request.reconciled",
                now=now,
                reason=reason,
                details={"verdict": "unknown", "why": why, **seen},
            )
            said = UNANSWERED if unanswered else "whether it was applied is unknown"
            severity, outcome = "high", f"{said} ({why}): failed"
        raise_alert(
            services,
            session,
            NewAlert(
                detector=lease.INTERRUPTED_ALERT,
                severity=severity,
                summary=(
                    f"the execution of request {row.id} ({row.action} on {row.account_ref}) "
                    f"was interrupted; {outcome}"
                ),
                account=row.account_ref,
                request=row.id,
                details={"verdict": verdict.applied, "attempt": attempt_no, "reason": row.reason},
            ),
            now=now,
        )
        return RequestState(row.state)
