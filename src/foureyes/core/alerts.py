"""Raising an alert: stored, with an `alert.raised` audit event, and handed to the notifiers,
all in the caller's transaction. The one module through which the core and the detectors raise
alerts (reading and acknowledging them is `foureyes.workflow.alerts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from foureyes.core.services import Services, json_safe
from foureyes.notify import enqueue
from foureyes.store.tables import AlertRow

CLOCK_SKEW = timedelta(minutes=1)
"""How far ahead of this process's clock another process's alert may be dated and still be
taken as raised now (the servers' clocks must agree to well within it). An `alerts` row dated
later than that was not written by foureyes: it silences nothing, and is named."""


# Session.info key: alerts are only looked for in this (read) transaction, never stored; one
# that would be stored raises `WouldStore` (`foureyes.detect.pipeline`'s look ahead).
LOOKING_ONLY = "foureyes.alerts.looking_only"


class WouldStore(Exception):
    """`raise_alert` in a transaction that only looks (`LOOKING_ONLY`) found an alert to store."""


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
    on any account): an alert dated from `now - dedupe` up to `now` (give or take
    `CLOCK_SKEW`). One dated later than that (a row written in) silences nothing: the alert is
    raised, naming it.

    In a transaction that only looks (`LOOKING_ONLY` in its session's info) nothing is stored:
    an alert that would be raises `WouldStore`, one deduplicated answers None as above.

    The event is why an alert cannot quietly disappear: someone who deletes or edits the alert
    row (a DBA covering a colleague) leaves the log saying what was raised, when and about whom."""
    if dedupe is not None:
        earlier = _earliest(session, alert, now - dedupe, now + CLOCK_SKEW, dedupe_any_account)
        if earlier is not None and earlier[1]:
            return None
        if earlier is not None:
            alert = _naming_future(alert, earlier[0], earlier[2])
    if session.info.get(LOOKING_ONLY):
        raise WouldStore(alert.detector)
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


def _earliest(
    session: Session, alert: NewAlert, since: datetime, until: datetime, any_account: bool
) -> tuple[int, bool, str] | None:
    """The earliest of this detector's alerts about the same person (and account) dated after
    `since`, if any: its id, whether it is dated no later than `until`, and its time as stored.
    Compared and shown by the database: a time a DBA wrote may be one the driver cannot read
    (PostgreSQL's 'infinity')."""
    query = select(
        AlertRow.id, AlertRow.created_at <= until, cast(AlertRow.created_at, String)
    ).where(
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
    found = session.execute(query.order_by(AlertRow.created_at, AlertRow.id).limit(1)).first()
    return None if found is None else (int(found[0]), bool(found[1]), str(found[2]))


def _naming_future(alert: NewAlert, alert_id: int, shown: str) -> NewAlert:
    """`alert`, saying that an alerts row dated in the future would have silenced it."""
    return replace(
        alert,
        summary=(
            f"{alert.summary} (alert {alert_id}, dated {shown}, in the future, would have "
            "silenced this one: it was written outside foureyes)"
        ),
        details={**(alert.details or {}), "future_dated_alert": {"id": alert_id, "at": shown}},
    )


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
