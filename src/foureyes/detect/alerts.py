"""Alerts: raising one (stored, with an `alert.raised` audit event, and handed to the notifiers,
all in the same transaction), listing them, and acknowledging one (an audit event).

Who sees alerts: oversight staff (`Services.oversight_groups`, by default `security` and
`leads`; alerts name colleagues). Nobody acknowledges an alert about themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.notify import enqueue
from foureyes.store.tables import AlertRow
from foureyes.workflow.access import require_oversight
from foureyes.workflow.records import record
from foureyes.workflow.services import Actor, Services, json_safe

MAX_PAGE = 200
State = Literal["open", "acknowledged", "all"]


@dataclass(frozen=True)
class NewAlert:
    detector: str
    severity: str
    summary: str
    staff: str | None = None
    account: str | None = None
    request: str | None = None
    details: Mapping[str, Any] | None = None


def raise_alert(
    services: Services,
    session: Session,
    alert: NewAlert,
    *,
    now: datetime,
    channels: Sequence[str] = (),
    event_seq: int | None = None,
    dedupe: timedelta | None = None,
    dedupe_any_account: bool = False,
) -> AlertRow | None:
    """Store an alert, append its `alert.raised` event and notify `channels`, in the caller's
    transaction. With `dedupe`, None (and nothing stored) when this detector already flagged
    the same person and account within that time (with `dedupe_any_account`, the same person
    on any account).

    The event is why an alert cannot quietly disappear: someone who deletes or edits the alert
    row (a DBA covering a colleague) leaves the log saying what was raised, when and about whom."""
    if dedupe is not None and _recent(session, alert, now - dedupe, dedupe_any_account):
        return None
    row = AlertRow(
        detector=alert.detector,
        severity=alert.severity,
        staff_id=alert.staff,
        account_ref=alert.account,
        request_id=alert.request,
        summary=alert.summary,
        details=json_safe(dict(alert.details or {})),
        event_seq=event_seq,
        created_at=now,
    )
    session.add(row)
    session.flush()
    # The account and request go in the body, not in the event's account and request columns:
    # those put an event in a request's timeline and an account's history, which people other
    # than oversight staff read, and alerts are for oversight staff only.
    services.audit.append(
        session,
        kind="alert.raised",
        actor=None,
        account_ref=None,
        request_id=None,
        payload={
            **_about(row),
            "alert_request": row.request_id,
            "details": row.details,
            "event_seq": event_seq,
        },
        at=now,
    )
    for channel in channels:
        _notify(session, channel, row)
    return row


def _about(row: AlertRow) -> dict[str, Any]:
    """What an alert's audit events say it is. The account goes in the body as
    `alert_account`, not in the event's account field (see `raise_alert`)."""
    return {
        "alert": row.id,
        "detector": row.detector,
        "severity": row.severity,
        "staff": row.staff_id,
        "alert_account": row.account_ref,
        "summary": row.summary,
    }


def _recent(session: Session, alert: NewAlert, since: datetime, any_account: bool) -> bool:
    query = select(AlertRow.id).where(
        AlertRow.detector == alert.detector,
        AlertRow.created_at > since,
        AlertRow.staff_id.is_(None) if alert.staff is None else AlertRow.staff_id == alert.staff,
    )
    if not any_account:
        query = query.where(
            AlertRow.account_ref.is_(None)
            if alert.account is None
            else AlertRow.account_ref == alert.account
        )
    return session.scalar(query.limit(1)) is not None


def _notify(session: Session, channel: str, row: AlertRow) -> None:
    """The one call site of the notifiers: an outbox row in this transaction, delivered by the
    worker (foureyes.notify)."""
    enqueue(
        session,
        channel=channel,
        kind=f"alert.{row.detector}",
        subject=f"[{row.severity}] {row.summary}",
        body=_body(row),
        link=f"/v1/alerts/{row.id}",
        now=row.created_at,
    )


def _body(row: AlertRow) -> str:
    lines = [row.summary, "", f"detector: {row.detector}", f"severity: {row.severity}"]
    for label, value in (
        ("staff", row.staff_id),
        ("account", row.account_ref),
        ("request", row.request_id),
    ):
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines)


def alert_view(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "detector": row.detector,
        "severity": row.severity,
        "staff": row.staff_id,
        "account": row.account_ref,
        "request": row.request_id,
        "summary": row.summary,
        "details": row.details,
        "state": "open" if row.acknowledged_at is None else "acknowledged",
        "created_at": row.created_at.isoformat(),
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": None if row.acknowledged_at is None else row.acknowledged_at.isoformat(),
    }


def _may_see(services: Services, actor: Actor) -> None:
    require_oversight(services, actor, "alerts")


def list_alerts(
    services: Services,
    actor: Actor,
    *,
    state: State = "open",
    detector: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Alerts, newest first; and the id to pass as `before` for the next page (or None)."""
    _may_see(services, actor)
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}")
    query = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit + 1)
    if state == "open":
        query = query.where(AlertRow.acknowledged_at.is_(None))
    elif state == "acknowledged":
        query = query.where(AlertRow.acknowledged_at.is_not(None))
    if detector is not None:
        query = query.where(AlertRow.detector == detector)
    if before is not None:
        query = query.where(AlertRow.id < before)
    with services.database.transaction() as session:
        rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return [alert_view(r) for r in rows], (rows[-1].id if more else None)


def show_alert(services: Services, actor: Actor, alert_id: int) -> dict[str, Any]:
    _may_see(services, actor)
    with services.database.transaction() as session:
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return alert_view(row)


def acknowledge(
    services: Services, actor: Actor, alert_id: int, comment: str = ""
) -> dict[str, Any]:
    """Mark an alert as seen and handled, with an `alert.acknowledged` audit event in the same
    transaction. Conflict if it already is; Forbidden for an alert about yourself."""
    _may_see(services, actor)
    with services.database.transaction() as session:
        row = session.scalar(select(AlertRow).where(AlertRow.id == alert_id).with_for_update())
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        if row.staff_id == actor.id:
            raise Forbidden("an alert about you is acknowledged by someone else")
        if row.acknowledged_at is not None:
            raise Conflict(
                f"alert {alert_id} was acknowledged by {row.acknowledged_by}",
                alert_id=alert_id,
            )
        now = services.clock()
        row.acknowledged_by = actor.id
        row.acknowledged_at = now
        record(
            services,
            session,
            kind="alert.acknowledged",
            actor=actor.id,
            row=None,
            payload={**_about(row), "comment": comment, "identity": actor.identity},
            now=now,
        )
        return alert_view(row)
