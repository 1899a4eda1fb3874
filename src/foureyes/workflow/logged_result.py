"""What an executed request's row says of its execution, checked against the log before an
undo, or the console's offer of one, believes it (attack F2, session h2).

The row's `result` (what the platform reported: its `already_applied` says the request changed
nothing, so there is nothing of foureyes' to undo) and `finished_at` are written with the
execution's event (`request.executed`, or `request.reconciled` to `executed`), which records
the same report (`summary`) and time; the write-once trigger does not guard them. A row that
says otherwise was edited behind foureyes' back: that is a high `request_tampered` alert, and
what follows is decided by the event, never by the row (a DBA who marks a suspension as
"already applied" must not make its honest undo impossible, nor one who clears it make an
undo of nothing possible).

The event holds the report as the log may (the values of the account's private attributes
redacted: `redaction.event_payload`); a value the event holds redacted is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core import alert_log
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.policy.catalog import MASK
from foureyes.store.tables import AlertRow, RequestRow
from foureyes.workflow import integrity

__all__ = ["Logged", "agrees", "alert_once", "check"]

_RECONCILED = "request.reconciled"


@dataclass(frozen=True)
class Logged:
    """What the log says of a request's execution: whether it changed nothing
    (`already_applied`); why the row says otherwise (`problem`, None: it agrees); `unproven`:
    the log holds no single execution of it, so it says nothing to decide by (fail closed)."""

    already_applied: bool = False
    problem: str | None = None
    unproven: str | None = None


def check(row: RequestRow, found: integrity.Trail) -> Logged:
    """The log's word on `row`'s execution (`found`: its trail) and where the row differs."""
    executions = [e for e in found.outcomes if e.get("to") == RequestState.EXECUTED.value]
    if len(executions) != 1:
        return Logged(
            unproven=(
                f"it has {len(executions)} audit events of its execution, not one: the log "
                "does not say what it changed"
            )
        )
    event = executions[0]
    summary = event.get("summary")
    logged: Mapping[str, Any] = summary if isinstance(summary, Mapping) else {}
    applied = logged.get("already_applied") is True
    found_problems = []
    # Reconciliation stores `{"reconciled": True}` for a platform that reported nothing.
    expected: Any = (
        {"reconciled": True} if event.get("kind") == _RECONCILED and not logged else logged
    )
    if not agrees(row.result, expected):
        found_problems.append(
            "its stored result (what the platform reported) is not the one its execution's "
            "audit event recorded"
            + (
                f" (the log says it {'changed nothing' if applied else 'made the change'})"
                if ((row.result or {}).get("already_applied") is True) != applied
                else ""
            )
        )
    ended = _last_end(found)
    if ended is None or row.finished_at is None or _utc(row.finished_at) != ended:
        shown = "never" if row.finished_at is None else row.finished_at.isoformat()
        logged_at = "never" if ended is None else ended.isoformat()
        found_problems.append(f"it says it ended at {shown}, but its audit events say {logged_at}")
    return Logged(already_applied=applied, problem="; ".join(found_problems) or None)


def agrees(stored: Any, logged: Any) -> bool:
    """Whether a stored report says what the log's copy of it says: the same keys and values,
    a value the log holds redacted (it holds `MASK`) not compared, true never taken for 1."""
    if isinstance(logged, str) and MASK in logged:
        return True
    if isinstance(logged, Mapping):
        return (
            isinstance(stored, Mapping)
            and set(stored) == set(logged)
            and all(agrees(stored[key], logged[key]) for key in logged)
        )
    if isinstance(logged, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(logged)
            and all(agrees(s, v) for s, v in zip(stored, logged, strict=True))
        )
    if isinstance(logged, bool) or isinstance(stored, bool):
        return stored is logged
    return bool(stored == logged)


def _last_end(found: integrity.Trail) -> datetime | None:
    """When the log says the request last reached a final state (`records.move` sets
    `finished_at` then): its execution, or its revert since."""
    for event in reversed(found.moves):
        try:
            final = RequestState(event.get("to")).final
        except ValueError:
            final = False
        if final:
            at = event.get("at")
            try:
                return datetime.fromisoformat(at) if isinstance(at, str) else None
            except ValueError:
                return None
    return None


def _utc(when: datetime) -> datetime:
    """A stored time as the log's (SQLite gives it back without its zone: UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def alert_once(
    services: Services,
    session: Session,
    row: RequestRow,
    found: integrity.Trail,
    problem: str,
    *,
    actor: str | None,
    during: str,
) -> None:
    """The high `request_tampered` alert naming `problem` of `row`, in the caller's
    transaction, unless one naming the same problem of it was raised already (each look at
    the request, each undo tried, would raise it again; a deleted alert is raised afresh).
    Nothing else changes: the request stays as it is, decided by its log (`found`, which
    names its account as submitted)."""
    raised = session.scalars(
        select(AlertRow).where(
            AlertRow.request_id == row.id, AlertRow.detector == integrity.DETECTOR
        )
    )
    for alert in alert_log.vouched(session, raised):  # a row written in silences nothing
        if isinstance(alert.details, Mapping) and alert.details.get("problem") == problem:
            return
    submitted = found.submitted[0] if len(found.submitted) == 1 else {}
    account = submitted.get("account")
    raise_alert(
        services,
        session,
        NewAlert(
            detector=integrity.DETECTOR,
            severity="high",
            summary=f"request {row.id} was altered in the store: {problem}",
            account=account if isinstance(account, str) else None,
            request=row.id,
            details={"problem": problem, "found_during": during, "by": actor, "state": row.state},
        ),
        now=services.clock(),
    )
