"""Whether an `alerts` row is what the audit log says: the alert it claims to be was raised
(its `alert.raised` event), and the acknowledgement it shows was given (its
`alert.acknowledged` event).

A database administrator can write any `alerts` row: one dated now and "acknowledged" would
silence every later alert of its detector about the same person (`raise_alert`'s dedupe), and
acknowledgement columns set by hand would make a real alert look handled. So a row names its
own events (`raised_seq`, `acknowledged_seq`) and is believed only where the event's *body*
(which the tree's hashes cover; its columns a DBA can edit unnoticed) says the same: for the
raised event its detector, person, account, request and time; for the acknowledgement who,
when and the note. A row that does not match is not an earlier alert (it silences nothing)
and is not acknowledged (it is shown open, flagged); `foureyes.core.alerts.report_forged`
raises the high `alert_tampered` alert about it. Which alerts are open, and which the log holds
that no row shows (deleted, re-pointed), is `foureyes.core.alert_ledger`: by the events' bodies
too, never by their columns.

What this does not cover: a DBA who also appends forged events (appending needs no key; the
forged event stays in the log for good, as forged seals do).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.store.tables import AlertRow, EventRow
from foureyes.store.tree import in_tree

__all__ = [
    "ACKNOWLEDGED",
    "RAISED",
    "TAMPERED",
    "acknowledgement_problem",
    "bodies",
    "problems",
    "raised_problem",
    "requests",
    "stamp",
    "subjects",
    "vouched",
]

RAISED = "alert.raised"
ACKNOWLEDGED = "alert.acknowledged"
TAMPERED = "alert_tampered"
"""The detector of the high alert about an `alerts` row the log does not vouch for."""


def stamp(at: datetime) -> str:
    """A time as event bodies carry it (RFC 3339 UTC, microseconds); SQLite's naive times
    are UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bodies(session: Session, seqs: Iterable[int | None]) -> dict[int, Mapping[str, Any]]:
    """The bodies of the events at `seqs` the tree covers, by seq (one statement; none for
    no seqs). A body that is not a JSON object is left out (it vouches for nothing)."""
    wanted = sorted({seq for seq in seqs if seq is not None})
    if not wanted:
        return {}
    found: dict[int, Mapping[str, Any]] = {}
    query = select(EventRow.seq, EventRow.body).where(EventRow.seq.in_(wanted), in_tree())
    for seq, raw in session.execute(query):
        try:
            body = json.loads(stored_bytes(raw))
        except ValueError:
            continue
        if isinstance(body, dict):
            found[int(seq)] = body
    return found


def subjects(body: Mapping[str, Any] | None) -> frozenset[str]:
    """Whom an `alert.raised` body says the alert is about: its `staff`, and for an
    `alert_tampered` alert the staff of the alert it is about (`details.alert_staff`). Nobody
    acknowledges an alert about themselves (`foureyes.workflow.alerts.acknowledge`), and an
    acknowledgement in the log by one of them counts for nothing (`core.alert_ledger`)."""
    if body is None:
        return frozenset()
    details = body.get("details")
    named = details.get("alert_staff") if isinstance(details, dict) else None
    found = [body.get("staff"), *(named if isinstance(named, list) else [named])]
    return frozenset(who for who in found if isinstance(who, str))


def requests(body: Mapping[str, Any] | None) -> frozenset[str]:
    """The requests an `alert.raised` body says the alert is on (for `alert_tampered`, the
    request of the alert it is about too): whoever took part in one does not acknowledge it."""
    if body is None:
        return frozenset()
    details = body.get("details")
    named = details.get("alert_request") if isinstance(details, dict) else None
    found = [body.get("alert_request"), *(named if isinstance(named, list) else [named])]
    return frozenset(request for request in found if isinstance(request, str))


def raised_problem(
    row: AlertRow, body: Mapping[str, Any] | None, *, shown: bool = False
) -> str | None:
    """Why `row` is not an alert foureyes raised (None: its `alert.raised` event says the
    same detector, person, account, request and time). With `shown`, its severity, summary
    and details too (what a reader weighs: a `name_lookalike` alert's details say whom the
    name looks like; attack led7-F2)."""
    if row.raised_seq is None or body is None:
        return "the audit log holds no alert.raised event for it"
    expected: dict[str, Any] = {
        "kind": RAISED,
        "seq": row.raised_seq,
        "alert": row.id,
        "detector": row.detector,
        "staff": row.staff_id,
        "alert_account": row.account_ref,
        "alert_request": row.request_id,
        "at": stamp(row.created_at),
    }
    if shown:
        expected |= {"severity": row.severity, "summary": row.summary, "details": row.details}
    differ = sorted(key for key, value in expected.items() if body.get(key) != value)
    if differ:
        return (
            f"its alert.raised event (audit event {row.raised_seq}) says another "
            f"{', '.join(differ)}"
        )
    return None


def acknowledgement_problem(
    row: AlertRow, body: Mapping[str, Any] | None, raised: Mapping[str, Any] | None = None
) -> str | None:
    """Why the acknowledgement `row` shows was not given (None: it shows none, or its
    `alert.acknowledged` event says the same who, when and note, and acknowledges the raise
    the row names). An acknowledgement acknowledges only a raise before it (the one its body
    names in `raised_seq`; older bodies, without it, the row's, if before), and none given by
    the person the alert is about (`raised`: the row's `alert.raised` body)."""
    if row.acknowledged_at is None and row.acknowledged_by is None:
        return None
    if row.acknowledged_seq is None or body is None:
        return "it shows an acknowledgement the audit log holds no alert.acknowledged event for"
    expected: dict[str, Any] = {
        "kind": ACKNOWLEDGED,
        "seq": row.acknowledged_seq,
        "alert": row.id,
        "actor": row.acknowledged_by,
        "at": None if row.acknowledged_at is None else stamp(row.acknowledged_at),
        "comment": row.acknowledgement_note or "",
    }
    differ = sorted(key for key, value in expected.items() if body.get(key) != value)
    if differ:
        return (
            f"its acknowledgement differs from its alert.acknowledged event (audit event "
            f"{row.acknowledged_seq}) in {', '.join(differ)}"
        )
    named = body.get("raised_seq", row.raised_seq)
    if row.raised_seq is None or named != row.raised_seq:
        return (
            f"its alert.acknowledged event (audit event {row.acknowledged_seq}) acknowledges "
            f"another raise of alert {row.id} (audit event {named})"
        )
    if row.acknowledged_seq <= row.raised_seq:
        return (
            f"its alert.acknowledged event (audit event {row.acknowledged_seq}) was recorded "
            f"before the alert was raised (audit event {row.raised_seq})"
        )
    if body.get("actor") in subjects(raised):
        return "it was acknowledged by the person it is about"
    return None


def problems(session: Session, rows: Iterable[AlertRow]) -> dict[int, str]:
    """What the log does not vouch for in each of `rows` (raised, as shown, and acknowledged),
    by alert id; rows it vouches for are not in it. One statement for all of them."""
    rows = list(rows)
    found = bodies(session, [seq for r in rows for seq in (r.raised_seq, r.acknowledged_seq)])
    out: dict[int, str] = {}
    for row in rows:
        problem = raised_problem(
            row, found.get(row.raised_seq or -1), shown=True
        ) or acknowledgement_problem(
            row, found.get(row.acknowledged_seq or -1), found.get(row.raised_seq or -1)
        )
        if problem is not None:
            out[row.id] = problem
    return out


def vouched(session: Session, rows: Iterable[AlertRow]) -> list[AlertRow]:
    """Those of `rows` foureyes raised (their `alert.raised` event says so), in order: for the
    checks of "was this raised already", which a row written in must not answer. One
    statement, none for no rows."""
    rows = list(rows)
    if not rows:
        return []
    found = bodies(session, [row.raised_seq for row in rows])
    return [row for row in rows if raised_problem(row, found.get(row.raised_seq or -1)) is None]
