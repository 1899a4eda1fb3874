"""Raising an alert: stored, with an `alert.raised` audit event, and handed to the notifiers,
all in the caller's transaction. The one module through which the core and the detectors raise
alerts (reading and acknowledging them is `foureyes.workflow.alerts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, select, text
from sqlalchemy.orm import Session

from foureyes.core import alert_ledger, alert_log
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
    `CLOCK_SKEW`) whose `alert.raised` event says so (`foureyes.core.alert_log`). A row the log
    does not vouch for, or one dated later than that (a row written in), silences nothing: the
    alert is raised, naming it, and the row is reported (`report_forged`). The row keeps the
    seq of its own event (`raised_seq`).

    In a transaction that only looks (`LOOKING_ONLY` in its session's info) nothing is stored:
    an alert that would be raises `WouldStore`, one deduplicated answers None as above.

    The event is why an alert cannot quietly disappear: someone who deletes or edits the alert
    row (a DBA covering a colleague) leaves the log saying what was raised, when and about whom."""
    if dedupe is not None:
        silenced, forged = _earlier(
            session, alert, now - dedupe, now + CLOCK_SKEW, dedupe_any_account
        )
        if forged and alert.detector != alert_log.TAMPERED:
            # Rows the log does not vouch for silence nothing, and are themselves reported
            # (an `alert_tampered` alert's own forged look-alikes are only named in it).
            report_forged(services, session, {f.id: f.problem for f in forged}, now=now)
        if silenced:
            return None
        if forged:
            alert = _naming(alert, forged[0])
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
    _fresh_id(services, session, row)
    # The account and request go in the body, not in the event's account and request columns:
    # those put an event in a request's timeline and an account's history, which people other
    # than oversight staff read, and alerts are for oversight staff only.
    event = services.audit.append(
        session,
        kind=alert_log.RAISED,
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
    row.raised_seq = event.seq
    for channel in channels:
        _notify(session, channel, row)
    return row


def deduplicated(session: Session, alert: NewAlert, *, now: datetime, within: timedelta) -> bool:
    """Whether `raise_alert(alert, now=now, dedupe=within)` would store nothing and report
    nothing: an alert of its detector about the same person and account that the log vouches
    for is in the window, and no row on the way is one the log does not vouch for. Lets a
    detector skip deciding an alert (a count over a window) that would be deduplicated; where
    this is False, it decides and raises as before (a forged row is reported there)."""
    silenced, forged = _earlier(session, alert, now - within, now + CLOCK_SKEW, False)
    return silenced and not forged


def _fresh_id(services: Services, session: Session, row: AlertRow) -> None:
    """Give `row` an id no `alert.raised` event in the log names, if the database gave it
    one that one does. The database reuses ids: SQLite (no AUTOINCREMENT) gives the highest
    row's id + 1, so a DBA who deletes the newest row has the next alert take its id, and on
    PostgreSQL a DBA moves the sequence back (`setval`). Neither can be ruled out in the
    schema (`sqlite_sequence` and the sequence are the DBA's to edit too), so the id is checked
    against the log itself: the log's highest raised id as this process's ledger read it, and
    the `alert.raised` events since (`Ledger.highest`). The ledger judges a repeated id an
    alert of its own anyway; this keeps foureyes from making one."""
    top = alert_ledger.ledger_of(services).highest(session)
    if row.id > top:
        return
    highest_row = session.scalar(select(func.max(AlertRow.id))) or 0
    row.id = max(top, int(highest_row)) + 1
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        # Past the id given (never back: another transaction may have taken a later one).
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('alerts', 'id'), GREATEST(:id, "
                "nextval(pg_get_serial_sequence('alerts', 'id'))))"
            ),
            {"id": row.id},
        )


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


EARLIER_LOOKED_AT = 20
"""How many rows `_earlier` looks at past the start of the window: rows written in ahead of a
real alert (which the log does not vouch for) cost one look each, and past this many the
alert is raised (a flood of them silences nothing)."""


@dataclass(frozen=True)
class _Forged:
    id: int
    shown: str  # its time as the database shows it
    future: bool  # dated later than any clock of foureyes' could have
    problem: str


def _earlier(
    session: Session, alert: NewAlert, since: datetime, until: datetime, any_account: bool
) -> tuple[bool, list[_Forged]]:
    """Whether one of this detector's alerts about the same person (and account), dated after
    `since` and no later than `until`, was raised by foureyes (its `alert.raised` event says
    so); and the rows on the way, in time order, that the log does not vouch for. One
    statement when there is none (the usual case), two otherwise. Times are compared and
    shown by the database: a time a DBA wrote may be one the driver cannot read as written
    (PostgreSQL's 'infinity')."""
    query = select(
        AlertRow,
        (AlertRow.created_at <= until).label("in_window"),
        cast(AlertRow.created_at, String).label("shown"),
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
    found = session.execute(
        query.order_by(AlertRow.created_at, AlertRow.id).limit(EARLIER_LOOKED_AT)
    ).all()
    if not found:
        return False, []
    events = alert_log.bodies(session, [row.raised_seq for row, _, _ in found])
    forged: list[_Forged] = []
    for row, in_window, shown in found:
        problem = alert_log.raised_problem(row, events.get(row.raised_seq or -1))
        if problem is None and in_window:
            return True, forged
        if problem is not None:
            forged.append(_Forged(int(row.id), str(shown), not in_window, problem))
        if not in_window:
            break  # later rows are later still: none could silence this alert
    return False, forged


def _naming(alert: NewAlert, forged: _Forged) -> NewAlert:
    """`alert`, saying that an alerts row the log does not vouch for would have silenced it."""
    if forged.future:
        summary = (
            f"{alert.summary} (alert {forged.id}, dated {forged.shown}, in the future, would "
            "have silenced this one: it was written outside foureyes)"
        )
        key = "future_dated_alert"
    else:
        summary = (
            f"{alert.summary} (alert {forged.id}, dated {forged.shown}, would have silenced "
            f"this one, but {forged.problem}: it was written outside foureyes)"
        )
        key = "forged_alert"
    return replace(
        alert,
        summary=summary,
        details={**(alert.details or {}), key: {"id": forged.id, "at": forged.shown}},
    )


TAMPERED_AGAIN = timedelta(hours=1)
"""How often an `alerts` row the log does not vouch for is alerted again while it stays."""


def report_forged(
    services: Services, session: Session, problems: Mapping[int, str], *, now: datetime
) -> None:
    """The high `alert_tampered` alert about each alert row in `problems` (alert id: what the
    log does not vouch for), in the caller's transaction; once an hour per row (deduplicated
    by alerts the log vouches for, so a row written in cannot silence it). It names whom the
    row's `alert.raised` event (if it names one of that alert) and the row say the alert is
    about, so none of them acknowledges it (`foureyes.workflow.alerts.acknowledge`)."""
    if not problems:
        return
    rows = {
        row.id: row
        for row in session.scalars(select(AlertRow).where(AlertRow.id.in_(sorted(problems))))
    }
    events = alert_log.bodies(session, [row.raised_seq for row in rows.values()])
    for alert_id, problem in sorted(problems.items()):
        row = rows.get(alert_id)
        body = None if row is None else events.get(row.raised_seq or -1)
        if body is not None and body.get("alert") != alert_id:
            body = None
        staff = set(alert_log.subjects(body))
        requests = set(alert_log.requests(body))
        if row is not None:
            staff.update(who for who in (row.staff_id,) if who is not None)
            requests.update(request for request in (row.request_id,) if request is not None)
        _tampered(
            services,
            session,
            alert_id,
            f"alert {alert_id} does not match the audit log: {problem}; it was written or "
            "changed outside foureyes, and is neither taken as raised nor as acknowledged",
            problem,
            now,
            about=(staff, requests, row.raised_seq if row is not None else None),
        )


def report_missing(
    services: Services, session: Session, missing: Mapping[int, int], *, now: datetime
) -> None:
    """The high `alert_tampered` alert about each alert in `missing` (the seq of its
    `alert.raised` event: its alert id) no row shows (its row is gone, names another event,
    or its id was given again: `foureyes.core.alert_ledger`), in the caller's transaction;
    once an hour per alert, as `report_forged` (the same key). It names whom the event says
    the alert is about, so none of them acknowledges it."""
    events = alert_log.bodies(session, missing.keys())
    for seq, alert_id in sorted(missing.items()):
        body = events.get(seq)
        problem = (
            f"its row is missing or shows another event than its alert.raised ({seq}): "
            "deleted, re-pointed, or its id given again"
        )
        _tampered(
            services,
            session,
            alert_id,
            f"alert {alert_id} was raised (audit event {seq}) but no alerts row shows it: it "
            "was deleted or changed outside foureyes, or its id given to another alert, and is "
            "shown open as the audit log says it was raised",
            problem,
            now,
            about=(set(alert_log.subjects(body)), set(alert_log.requests(body)), seq),
        )


def _tampered(
    services: Services,
    session: Session,
    alert_id: int,
    summary: str,
    problem: str,
    now: datetime,
    *,
    about: tuple[set[str], set[str], int | None],
) -> None:
    staff, requests, seq = about
    raise_alert(
        services,
        session,
        NewAlert(
            alert_log.TAMPERED,
            "high",
            summary,
            account=f"foureyes:alert/{alert_id}",
            details={
                "alert": alert_id,
                "raised_seq": seq,
                "problem": problem,
                # Whom the alert it is about is about: they do not acknowledge this one either.
                "alert_staff": sorted(staff),
                "alert_request": sorted(requests),
            },
        ),
        now=now,
        dedupe=TAMPERED_AGAIN,
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
