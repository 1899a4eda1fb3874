"""Which alerts the audit log says were raised and acknowledged, whatever the `alerts` table
now holds.

The table is a copy: a database administrator who deletes a row (an alert about a colleague),
re-points its `raised_seq` at another alert's event, or swaps acknowledgements between rows
would otherwise silence an alert. The log's `alert.raised` and `alert.acknowledged` events,
judged by their *bodies* (which the tree's hashes cover; the `kind`, `actor` columns a DBA can
edit unnoticed), are the alerts and their acknowledgements; the rows are checked against them.

- An `alert.raised` event no row names (the row with its alert id is missing, or names another
  event) is shown OPEN, rebuilt from the event's body and flagged, in the alerts list, the open
  count and `/healthz`, and the high `alert_tampered` alert is raised about it (once an hour
  while it lasts, as for rows written in: `foureyes.core.alerts.report_missing`).
- An alert is open unless an `alert.acknowledged` event's body names it (`Seen.open`): an
  acknowledgement moved to another row in the table acknowledges nothing.
- A row no event vouches for (written in, re-pointed) is a stray: shown open, flagged.

Cost. Each process keeps a `Ledger` in memory: per alert raised, the seq of its event; per
alert acknowledged, that it was (a few dozen bytes per alert). Each use brings it up to the
log's head by reading the bodies of the events appended since its last use (one statement per
`CHUNK` events, parsed only when they look like an alert's event). The history (the log as it
was at the process's first use) is read at that first use only where the events' `kind`
column says they are alerts' (an index look-up: reading every body of a 1M-event log took
20 s, too long for a first `/healthz`), and then swept by bodies, `SWEEP` events per use,
until read whole: an old alert event whose `kind` column a DBA also relabelled is found when
the sweep reaches it (within 1,000 looks on a 10M-event log: the worker looks every pass), or
by `foureyes audit verify --copies` at once. Each `Ledger.check` then compares the table with it
without reading the table out: one aggregate statement over the `alerts` rows (their count,
the sums of their ids and seqs, and the sum of a mix of both with two numbers drawn afresh for
each check, so no row written in can be made to balance one deleted), an index-only pass in the
database and one row back. Only when the sums differ (a row deleted, re-pointed or written in)
are the rows' ids and seqs read (one statement) to say which.

What this does not cover: a DBA who also appends forged events (appending needs no key; they
stay in the log for good, as forged seals do), or who deletes events (the log's verification
names that).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger

from foureyes.core import alert_log
from foureyes.core.alerts import TAMPERED_AGAIN, report_forged, report_missing
from foureyes.store.tables import AlertRow, EventRow
from foureyes.store.tree import head_size, in_tree

if TYPE_CHECKING:
    from foureyes.core.services import Services

__all__ = [
    "CHUNK",
    "Ledger",
    "Seen",
    "ledger_of",
    "look",
    "missing_view",
    "open_rows",
    "restored",
]

log = logging.getLogger(__name__)

CHUNK = 5_000
"""Events read per statement while the ledger catches up with the log."""

SWEEP = 10_000
"""Events of the history (the log as it was at the process's first look) whose bodies each
look reads, until all have been read."""

_PRIME = 2_147_483_629  # below 2**31: each product of the mix stays within 63 bits
_MARKS = (b'"kind":"alert.raised"', b'"kind":"alert.acknowledged"')  # canonical JSON: no spaces


@dataclass(frozen=True)
class Seen:
    """What one check found: the table against the log, up to event `through`."""

    through: int
    open: Mapping[int, str]
    """Alerts the log says were raised and no `alert.acknowledged` body names: alert id to its
    detector (as the event's body says)."""
    missing: Mapping[int, int] = field(default_factory=dict)
    """Alerts the log says were raised whose row is gone or names another event: alert id to
    the seq of its `alert.raised` event. Shown as that event says, not as any row does."""
    absent: frozenset[int] = frozenset()
    """Those of `missing` with no row at all (the others' rows are `strays`)."""
    strays: frozenset[int] = frozenset()
    """Rows no `alert.raised` event vouches for as they stand (written in, or re-pointed)."""

    @property
    def tampered(self) -> bool:
        return bool(self.missing or self.strays)

    def reason(self) -> str | None:
        """For `/healthz`: what is wrong with the alerts table (None: nothing)."""
        parts = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} alert(s) the audit log holds have no alerts row "
                f"(deleted or re-pointed outside foureyes: {_some(self.missing)})"
            )
        if self.strays:
            parts.append(
                f"{len(self.strays)} alerts row(s) the audit log does not vouch for "
                f"({_some(self.strays)})"
            )
        return "; ".join(parts) or None


def _some(ids: Mapping[int, int] | frozenset[int]) -> str:
    shown = sorted(ids)[:5]
    more = "" if len(ids) <= len(shown) else f" and {len(ids) - len(shown)} more"
    return ", ".join(str(i) for i in shown) + more


KEY_LIFE = 60.0
"""Seconds one pair of mixing numbers is used for (then drawn afresh, and the expected mix
recomputed over every alert, in this process): rows written in to balance the sums for one pair
do not balance them for the next."""


class Ledger:
    """This process's reading of the alerts' events (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[tuple[str, int], datetime] = {}  # what `look` reported, when
        self._reset()

    def _reset(self) -> None:
        self._through = 0  # events below this seq have been read (history: see `_swept`)
        self._swept = 0  # the history's bodies below this seq have been read
        self._history = 0  # the log's size at this process's first look
        self._raised: dict[int, int] = {}  # alert id: seq of its (first) alert.raised event
        self._acknowledged: set[int] = set()  # alert ids an alert.acknowledged body names
        self._open: dict[int, str] = {}  # raised, not acknowledged: alert id to detector
        self._sums = (0, 0)  # of the raised alerts' ids and seqs
        self._drawn = -KEY_LIFE  # when the mixing numbers were drawn (monotonic seconds)
        self._key = (1, 1)
        self._mix = 0  # the sum of the raised alerts' mixes under `_key`

    def due(self, key: tuple[str, int], now: datetime) -> bool:
        """Whether `key` was not reported by this process within `TAMPERED_AGAIN`."""
        with self._lock:
            last = self._reports.get(key)
        return last is None or not (now - TAMPERED_AGAIN < last <= now)

    def reported(self, key: tuple[str, int], now: datetime) -> None:
        with self._lock:
            self._reports[key] = now

    def check(self, session: Session) -> Seen:
        """The table against the log (see the module's docstring for the cost)."""
        with self._lock:
            self._catch_up(session)
            if time.monotonic() - self._drawn >= KEY_LIFE:
                self._draw()
            through, (a, b) = self._through, self._key
            expected = (len(self._raised), *self._sums, self._mix)
            opened = dict(self._open)
        found = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(AlertRow.id), 0),
                func.coalesce(func.sum(_seq()), 0),
                func.coalesce(func.sum(_mix(a, b)), 0),
            ).where(_checked(through))
        ).one()
        if tuple(int(value) for value in found) == expected:
            return Seen(through, opened)
        # Something differs: which rows (one statement over the table's ids and seqs).
        listed = session.execute(select(AlertRow.id, _seq()).where(_checked(through)))
        rows = {int(row): int(seq) for row, seq in listed}
        with self._lock:
            raised = {a: s for a, s in self._raised.items() if s < through}
        missing = {alert: seq for alert, seq in raised.items() if rows.get(alert) != seq}
        strays = frozenset(row for row, seq in rows.items() if raised.get(row) != seq)
        return Seen(through, opened, missing, frozenset(missing.keys() - rows.keys()), strays)

    def _draw(self) -> None:
        self._key = (secrets.randbelow(_PRIME - 1) + 1, secrets.randbelow(_PRIME - 1) + 1)
        self._mix = sum(_mixed(alert, seq, *self._key) for alert, seq in self._raised.items())
        self._drawn = time.monotonic()

    def _catch_up(self, session: Session) -> None:
        """Read the events appended since the last use; at the first use, the history's
        alert events found by their `kind` column (an index look-up), and at each use a slice
        of `SWEEP` more of the history's bodies (again from the start if the log is now
        shorter than what was read)."""
        head = int(session.scalar(select(head_size())) or 0)
        if head < self._through:
            self._reset()  # the log was rolled back: read it afresh
        if self._through == 0 and head > 0:
            self._history = self._through = head
            for seq, raw in session.execute(
                select(EventRow.seq, EventRow.body).where(
                    EventRow.kind.in_((alert_log.RAISED, alert_log.ACKNOWLEDGED)),
                    EventRow.seq < head,
                    in_tree(),
                )
            ):
                self._note(int(seq), bytes(raw))
        self._through = self._read(session, self._through, head)
        if self._swept < self._history:
            self._swept = self._read(session, self._swept, min(self._history, self._swept + SWEEP))

    def _read(self, session: Session, start: int, end: int) -> int:
        """Note the bodies of the events in [start, end); returns `end`."""
        while start < end:
            rows = session.execute(
                select(EventRow.seq, EventRow.body)
                .where(EventRow.seq >= start, EventRow.seq < end, in_tree())
                .order_by(EventRow.seq)
                .limit(CHUNK)
            ).all()
            for seq, raw in rows:
                self._note(int(seq), bytes(raw))
            start = end if len(rows) < CHUNK else int(rows[-1][0]) + 1
        return end

    def _note(self, seq: int, raw: bytes) -> None:
        if not any(mark in raw for mark in _MARKS):
            return
        try:
            body = json.loads(raw)
        except ValueError:
            return
        if not isinstance(body, dict) or body.get("seq") != seq:
            return
        alert = body.get("alert")
        if not isinstance(alert, int) or isinstance(alert, bool):
            return
        first = self._raised.get(alert)
        if body.get("kind") == alert_log.RAISED and (first is None or seq < first):
            if first is not None:  # the sweep found an earlier one: the first stands
                self._sums = (self._sums[0] - alert, self._sums[1] - first)
                self._mix -= _mixed(alert, first, *self._key)
            self._raised[alert] = seq
            self._sums = (self._sums[0] + alert, self._sums[1] + seq)
            self._mix += _mixed(alert, seq, *self._key)
            if alert not in self._acknowledged:
                self._open[alert] = sys.intern(str(body.get("detector")))
        elif body.get("kind") == alert_log.ACKNOWLEDGED:
            self._acknowledged.add(alert)
            self._open.pop(alert, None)


def _seq() -> ColumnElement[int]:
    """A row's raised_seq, -1 for none (no event is at -1: it never matches the log)."""
    return func.coalesce(AlertRow.raised_seq, -1)


def _checked(through: int) -> ColumnElement[bool]:
    """The rows a check compares: all but those naming an event appended after the ledger
    read the log (raised meanwhile: the next check takes them). A row naming an event beyond
    the head, or none, is compared (and is a stray)."""
    return not_(and_(_seq() >= through, _seq() < func.coalesce(head_size(), through)))


def _mix(a: int, b: int) -> ColumnElement[int]:
    """A row's mix of its id and seq, in 64-bit integers on both databases."""
    prime = literal(_PRIME, BigInteger)
    return (
        (cast(AlertRow.id, BigInteger) % prime) * literal(a, BigInteger)
        + (cast(_seq(), BigInteger) % prime) * literal(b, BigInteger)
    ) % prime


def _mixed(alert: int, seq: int, a: int, b: int) -> int:
    """`_mix` as the database computes it (both are non-negative here: no sign to differ on)."""
    return ((alert % _PRIME) * a + (seq % _PRIME) * b) % _PRIME


_LEDGERS_LOCK = threading.Lock()


def ledger_of(services: Services) -> Ledger:
    """The process's ledger for `services` (made on first use)."""
    found = services.alert_ledger
    if found is None:
        with _LEDGERS_LOCK:
            found = services.alert_ledger
            if found is None:
                found = services.alert_ledger = Ledger()
    return found


def open_rows(session: Session, seen: Seen) -> ColumnElement[bool]:
    """For a query on `AlertRow`: the rows to show as open, each then checked against its
    events' bodies (`alert_log.problems`): those that show no acknowledgement, those the log
    holds no acknowledgement for (whatever the row claims) and the strays."""
    ids = sorted(seen.open.keys() | seen.strays)
    if not ids:
        return AlertRow.acknowledged_at.is_(None)
    among: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        among = AlertRow.id == any_(bindparam(None, ids, type_=ARRAY(BigInteger)))
    else:  # one parameter however many (SQLite allows a few thousand per statement)
        listed = func.json_each(json.dumps(ids)).table_valued("value")
        among = AlertRow.id.in_(select(listed.c.value))
    return or_(AlertRow.acknowledged_at.is_(None), among)


def missing_view(session: Session, missing: Mapping[int, int]) -> list[dict[str, Any]]:
    """The `missing` alerts (alert id: seq of its `alert.raised` event) as oversight reads
    them, rebuilt from their events' bodies (one statement), open and flagged; newest first."""
    bodies = alert_log.bodies(session, missing.values())
    views: list[dict[str, Any]] = []
    for alert, seq in sorted(missing.items(), reverse=True):
        body = bodies.get(seq, {})
        views.append(
            {
                "id": alert,
                "detector": str(body.get("detector")),
                "severity": str(body.get("severity")),
                "staff": body.get("staff"),
                "account": body.get("alert_account"),
                "request": body.get("alert_request"),
                "summary": str(body.get("summary")),
                "details": body.get("details") if isinstance(body.get("details"), dict) else {},
                "state": "open",
                "created_at": _time(body.get("at")).isoformat(),
                "acknowledged_by": None,
                "acknowledged_at": None,
                "note": None,
                "tampered": missing_problem(alert, seq),
                "claimed_acknowledgement": None,
                "missing": True,
            }
        )
    return views


def missing_problem(alert: int, seq: int) -> str:
    return (
        f"its alerts row is missing or names another event: the audit log says it was raised "
        f"(audit event {seq}); shown open from that event"
    )


def _time(stamp: object) -> datetime:
    """An event body's time (`alert_log.stamp`); the start of time if it is not one."""
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def restored(session: Session, alert: int, seq: int, row: AlertRow | None) -> AlertRow | None:
    """The row of a missing alert written back as its `alert.raised` event's body says (`row`:
    the one that now names another event, rewritten; None: a new one), in the caller's
    transaction, so it can be acknowledged; None if the body cannot say it."""
    body = alert_log.bodies(session, [seq]).get(seq)
    if body is None or body.get("alert") != alert or body.get("kind") != alert_log.RAISED:
        return None
    details = body.get("details")
    event_seq = body.get("event_seq")
    if row is None:
        row = AlertRow(id=alert)
        session.add(row)
    row.detector = str(body.get("detector"))
    row.severity = str(body.get("severity"))
    row.staff_id = body.get("staff")
    row.account_ref = body.get("alert_account")
    row.request_id = body.get("alert_request")
    row.summary = str(body.get("summary"))
    row.details = details if isinstance(details, dict) else {}
    row.event_seq = event_seq if isinstance(event_seq, int) else None
    row.created_at = _time(body.get("at"))
    row.raised_seq = seq
    row.acknowledged_seq = None
    row.acknowledged_by = None
    row.acknowledged_at = None
    row.acknowledgement_note = None
    session.flush()
    return row


REPORTED = 20
"""How many missing alerts, and how many stray rows, one look reports (the rest, the next)."""


def look(services: Services, *, report: bool = True) -> Seen:
    """The alerts table checked against the log (`Ledger.check`, in a read transaction) and,
    with `report`, the high `alert_tampered` alert about each alert that differs, in a
    transaction of its own (`report_missing`, `report_forged`: once an hour each; this process
    does not ask again within the hour). Reporting never raises: a failure is logged (the
    finding is shown whatever happens there). For the worker's passes and `/healthz`."""
    ledger = ledger_of(services)
    with services.database.read() as session:
        seen = ledger.check(session)
        now = services.clock()
        missing = {a: s for a, s in seen.missing.items() if ledger.due(("missing", a), now)}
        stray_ids = [a for a in sorted(seen.strays) if ledger.due(("stray", a), now)]
        strays: dict[int, str] = {}
        if report and stray_ids:
            rows = session.scalars(select(AlertRow).where(AlertRow.id.in_(stray_ids[:REPORTED])))
            found = alert_log.problems(session, rows)
            strays = {a: found.get(a, "no alert.raised event vouches for it") for a in stray_ids}
    if report and (missing or strays):
        try:
            with services.database.transaction() as session:
                report_missing(services, session, dict(sorted(missing.items())[:REPORTED]), now=now)
                report_forged(services, session, dict(sorted(strays.items())[:REPORTED]), now=now)
        except Exception:  # shown flagged whatever this is
            log.exception("could not raise the alert about alerts %s", sorted(seen.missing))
        else:
            for alert in sorted(missing)[:REPORTED]:
                ledger.reported(("missing", alert), now)
            for alert in sorted(strays)[:REPORTED]:
                ledger.reported(("stray", alert), now)
    return seen
