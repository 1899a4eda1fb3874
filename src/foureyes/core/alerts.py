"""Raising an alert: stored, with an `alert.raised` audit event, and handed to the notifiers,
all in the caller's transaction. The one module through which the core and the detectors raise
alerts (reading and acknowledging them is `foureyes.workflow.alerts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.services import Services, json_safe
from foureyes.notify import enqueue
from foureyes.store.tables import AlertRow


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
            **about(row),
            "alert_request": row.request_id,
            "details": row.details,
            "event_seq": event_seq,
        },
        at=now,
    )
    for channel in channels:
        _notify(session, channel, row)
    return row


def about(row: AlertRow) -> dict[str, Any]:
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
