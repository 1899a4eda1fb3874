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
column says they are alerts' (one scan of that column in the database, 0.36 s for a 1M-event
log: reading every body took 20 s, too long for a first `/healthz`; an index on `kind` led
SQLite's planner away from the account and request indexes other reads need), and then swept
by bodies, `SWEEP` events per use,
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

import bisect
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

from foureyes.audit.copies import body_at

# `alerts` imports this module too (`raise_alert` asks the ledger for a fresh id): used at call
# time only.
from foureyes.audit.log import stored_bytes
from foureyes.core import alert_log, alerts
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
    "raised_view",
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
    """What one check found: the table against the log, up to event `through`.

    An alert is its `alert.raised` event (its seq), never its row's id: a DBA who deletes the
    newest row lets the database hand its id to the next alert (SQLite without AUTOINCREMENT,
    PostgreSQL after `setval`), and two events naming one id are two alerts."""

    through: int
    open: Mapping[int, str]
    """Alert ids with a raise the log holds no acknowledgement of that counts, other than one
    shown apart (`absent`): to the detector (as the event's body says)."""
    missing: Mapping[int, int] = field(default_factory=dict)
    """Raises no row shows (their id's row is gone, or names another event): the seq of the
    `alert.raised` event to its alert id. Shown as that event says, not as any row does."""
    absent: frozenset[int] = frozenset()
    """Those of `missing` (seqs) shown apart from any row: their id has no row, or its row
    shows another raise of that id (a repeated id)."""
    replaced: Mapping[int, int] = field(default_factory=dict)
    """Alert id to the seq of the missing raise shown in place of its row (a stray)."""
    strays: frozenset[int] = frozenset()
    """Rows no `alert.raised` event vouches for as they stand (written in, or re-pointed)."""
    open_raises: Mapping[int, int] = field(default_factory=dict)
    """The raises the log holds no acknowledgement of that counts: seq to alert id."""

    @property
    def tampered(self) -> bool:
        return bool(self.missing or self.strays)

    def reason(self) -> str | None:
        """For `/healthz`: what is wrong with the alerts table (None: nothing)."""
        parts = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} alert(s) the audit log holds have no alerts row "
                f"(deleted, re-pointed or their id given again outside foureyes: "
                f"{_some(frozenset(self.missing.values()))}; audit events "
                f"{_some(frozenset(self.missing))})"
            )
        if self.strays:
            parts.append(
                f"{len(self.strays)} alerts row(s) the audit log does not vouch for "
                f"({_some(self.strays)})"
            )
        return "; ".join(parts) or None

    def missing_of(self, alert: int) -> list[int]:
        """The seqs of `alert`'s missing raises, oldest first."""
        return sorted(seq for seq, of in self.missing.items() if of == alert)


def _some(ids: Mapping[int, int] | frozenset[int]) -> str:
    shown = sorted(ids)[:5]
    more = "" if len(ids) <= len(shown) else f" and {len(ids) - len(shown)} more"
    return ", ".join(str(i) for i in shown) + more


KEY_LIFE = 60.0
"""Seconds one pair of mixing numbers is used for (then drawn afresh, and the expected mix
recomputed over every alert, in this process): rows written in to balance the sums for one pair
do not balance them for the next."""


@dataclass(frozen=True, slots=True)
class _Raise:
    alert: int
    detector: str
    subjects: frozenset[str]


@dataclass(frozen=True)
class _Judged:
    missing: dict[int, int]
    replaced: dict[int, int]
    absent: frozenset[int]
    strays: frozenset[int]


class Ledger:
    """This process's reading of the alerts' events (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[tuple[str, int], datetime] = {}  # what `look` reported, when
        self._top = 0  # the highest alert id an alert.raised event names, as far as read
        self._top_through = 0  # `_top` covers the alert.raised events below this seq
        self._reset()

    def _reset(self) -> None:
        self._through = 0  # events below this seq have been read (history: see `_swept`)
        self._swept = 0  # the history's bodies below this seq have been read
        self._history = 0  # the log's size at this process's first look
        self._raises: dict[int, _Raise] = {}  # seq of each alert.raised event: what it says
        self._by_alert: dict[int, list[int]] = {}  # alert id: its raises' seqs, in order
        # alert id: its alert.acknowledged events' seqs, to the raise each names (None: an
        # older body, naming none) and who gave it
        self._acks: dict[int, dict[int, tuple[int | None, str | None]]] = {}
        self._acked: dict[int, int] = {}  # raises an acknowledgement counts for: its last seq
        self._open: dict[int, int] = {}  # the other raises: seq to alert id
        self._repeated: set[int] = set()  # alert ids more than one raise names
        self._sums = (0, 0, 0)  # count, ids and seqs of the raises of ids raised once
        self._drawn = -KEY_LIFE  # when the mixing numbers were drawn (monotonic seconds)
        self._key = (1, 1)
        self._mix = 0  # the sum of those raises' mixes under `_key`

    def due(self, key: tuple[str, int], now: datetime) -> bool:
        """Whether `key` was not reported by this process within `TAMPERED_AGAIN`."""
        with self._lock:
            last = self._reports.get(key)
        return last is None or not (now - alerts.TAMPERED_AGAIN < last <= now)

    def reported(self, key: tuple[str, int], now: datetime) -> None:
        with self._lock:
            self._reports[key] = now

    def highest(self, session: Session) -> int:
        """The highest alert id any `alert.raised` event names, as far as this process has
        read, and in the events of that kind appended since (found by their `kind` column
        among the events since, by seq; those of this transaction too). For `raise_alert`,
        which never gives an id the log has raised again. Never changes what the ledger
        judges by (an event of this transaction may yet be rolled back: it only makes an id
        be skipped)."""
        with self._lock:
            since = max(self._top_through, self._through)
            top = max(self._top, max(self._by_alert, default=0))
        head = int(session.scalar(select(head_size())) or 0)
        for seq, raw in session.execute(
            select(EventRow.seq, EventRow.body).where(
                EventRow.kind == alert_log.RAISED, EventRow.seq >= since, EventRow.seq < head
            )
        ):
            body = _alert_body(int(seq), stored_bytes(raw))
            if body is not None and body.get("kind") == alert_log.RAISED:
                top = max(top, int(body["alert"]))
        with self._lock:
            self._top, self._top_through = max(self._top, top), max(self._top_through, head)
        return top

    def check(self, session: Session) -> Seen:
        """The table against the log (see the module's docstring for the cost)."""
        with self._lock:
            self._catch_up(session)
            if time.monotonic() - self._drawn >= KEY_LIFE:
                self._draw()
            through, (a, b) = self._through, self._key
            expected = (*self._sums, self._mix)
            repeated = sorted(self._repeated)
            opened = {self._raises[s].alert: self._raises[s].detector for s in self._open}
            open_raises = dict(self._open)
        others = _checked(through)
        if repeated:  # their rows are read below, one by one
            others = and_(others, not_(_among(session, repeated)))
        found = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(AlertRow.id), 0),
                func.coalesce(func.sum(_seq()), 0),
                func.coalesce(func.sum(_mix(a, b)), 0),
            ).where(others)
        ).one()
        if tuple(int(value) for value in found) == expected:
            if not repeated:
                return Seen(through, opened, open_raises=open_raises)
            # Only the rows of the ids raised more than once (a handful) to compare.
            query = select(AlertRow.id, _seq()).where(_checked(through), _among(session, repeated))
            ids: list[int] | None = repeated
        else:  # something differs: which rows (one statement over the table's ids and seqs)
            query = select(AlertRow.id, _seq()).where(_checked(through))
            ids = None
        rows = {int(row): int(seq) for row, seq in session.execute(query)}
        with self._lock:
            judged = self._judge(rows, ids)
            # A row is open to the query for its id's open raises shown with it, not apart.
            opened = {
                self._raises[s].alert: self._raises[s].detector
                for s in open_raises
                if s not in judged.absent
            }
        return Seen(
            through,
            opened,
            judged.missing,
            judged.absent,
            judged.replaced,
            judged.strays,
            open_raises,
        )

    def _judge(self, rows: dict[int, int], ids: list[int] | None) -> _Judged:
        """Which raises of the alert `ids` (None: all) no row shows, and which of `rows` (id
        to the seq it names) no raise vouches for. A raise whose id's row shows another raise
        of that id (a repeated id) and which the log has acknowledged is not missing: it can
        have no row, and was seen to: acknowledged after the id's last raise (an older
        acknowledgement was given before anyone could see the id repeated)."""
        missing: dict[int, int] = {}
        replaced: dict[int, int] = {}
        absent: set[int] = set()
        for alert in self._by_alert if ids is None else ids:
            seqs = self._by_alert.get(alert, [])
            named = rows.get(alert)
            shows_one = named in seqs
            last = seqs[-1] if seqs else -1
            lost = [
                s for s in seqs if s != named and not (shows_one and self._acked.get(s, -1) > last)
            ]
            for seq in lost:
                missing[seq] = alert
            if lost and named is not None and not shows_one:
                replaced[alert] = lost[0]  # the row is a stray: shown as its first raise says
                lost = lost[1:]
            absent.update(lost)
        strays = frozenset(
            row for row, seq in rows.items() if seq not in self._by_alert.get(row, ())
        )
        return _Judged(missing, replaced, frozenset(absent), strays)

    def _draw(self) -> None:
        self._key = (secrets.randbelow(_PRIME - 1) + 1, secrets.randbelow(_PRIME - 1) + 1)
        self._mix = sum(
            _mixed(alert, seqs[0], *self._key)
            for alert, seqs in self._by_alert.items()
            if len(seqs) == 1
        )
        self._drawn = time.monotonic()

    def _catch_up(self, session: Session) -> None:
        """Read the events appended since the last use; at the first use, the history's
        alert events found by their `kind` column (one scan in the database), and at each use
        a slice of `SWEEP` more of the history's bodies (again from the start if the log is now
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
                self._note(int(seq), stored_bytes(raw))
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
                self._note(int(seq), stored_bytes(raw))
            start = end if len(rows) < CHUNK else int(rows[-1][0]) + 1
        return end

    def _note(self, seq: int, raw: bytes) -> None:
        """One event's body, once (the sweep reads again what the first look read)."""
        body = _alert_body(seq, raw)
        if body is None:
            return
        alert = int(body["alert"])
        if body.get("kind") == alert_log.RAISED:
            if seq in self._raises:
                return
            self._raises[seq] = _Raise(
                alert,
                sys.intern(str(body.get("detector"))),
                frozenset(sys.intern(who) for who in alert_log.subjects(body)),
            )
            seqs = self._by_alert.setdefault(alert, [])
            bisect.insort(seqs, seq)
            if len(seqs) == 1:
                self._count(alert, seq, 1)
            else:  # a repeated id: its rows are compared one by one
                if len(seqs) == 2:
                    self._count(alert, seqs[0] if seqs[1] == seq else seqs[1], -1)
                self._repeated.add(alert)
        else:
            acks = self._acks.setdefault(alert, {})
            if seq in acks:
                return
            named = body.get("raised_seq")
            actor = body.get("actor")
            acks[seq] = (
                named if isinstance(named, int) and not isinstance(named, bool) else None,
                actor if isinstance(actor, str) else None,
            )
        self._settle(alert)

    def _count(self, alert: int, seq: int, sign: int) -> None:
        count, ids, seqs = self._sums
        self._sums = (count + sign, ids + sign * alert, seqs + sign * seq)
        self._mix += sign * _mixed(alert, seq, *self._key)

    def _settle(self, alert: int) -> None:
        """Which of `alert`'s raises an acknowledgement counts for: one recorded after it,
        naming it (older bodies, naming none: the latest raise of the id before it), given by
        someone it is not about. The others are open."""
        seqs = self._by_alert.get(alert, [])
        counted: dict[int, int] = {}
        for ack, (named, actor) in self._acks.get(alert, {}).items():
            before = bisect.bisect_left(seqs, ack)
            latest = seqs[before - 1] if before else None
            target = latest if named is None else named
            raise_ = None if target is None else self._raises.get(target)
            if raise_ is None or target is None or raise_.alert != alert or target >= ack:
                continue
            if actor is None or actor in raise_.subjects:
                continue
            counted[target] = max(ack, counted.get(target, ack))
        for seq in seqs:
            if seq in counted:
                self._acked[seq] = counted[seq]
                self._open.pop(seq, None)
            else:
                self._acked.pop(seq, None)
                self._open[seq] = alert


def _alert_body(seq: int, raw: bytes) -> dict[str, Any] | None:
    """The body of an alert's event at `seq` (None if it is none: another kind, not JSON, not
    at its seq, naming no alert id)."""
    if not any(mark in raw for mark in _MARKS):
        return None
    body = body_at(seq, raw)
    if body is None:
        return None
    alert = body.get("alert")
    if not isinstance(alert, int) or isinstance(alert, bool):
        return None
    if body.get("kind") not in (alert_log.RAISED, alert_log.ACKNOWLEDGED):
        return None
    return body


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
    return or_(AlertRow.acknowledged_at.is_(None), _among(session, ids))


def _among(session: Session, ids: list[int]) -> ColumnElement[bool]:
    """`AlertRow.id` is one of `ids`, in one parameter however many."""
    if session.get_bind().dialect.name == "postgresql":
        return AlertRow.id == any_(bindparam(None, ids, type_=ARRAY(BigInteger)))
    # SQLite allows a few thousand parameters per statement
    listed = func.json_each(json.dumps(ids)).table_valued("value")
    return AlertRow.id.in_(select(listed.c.value))


def missing_view(session: Session, missing: Mapping[int, int]) -> list[dict[str, Any]]:
    """The `missing` alerts (the seq of an `alert.raised` event: its alert id) as oversight
    reads them, rebuilt from their events' bodies (one statement), open and flagged; newest
    first."""
    bodies = alert_log.bodies(session, missing.keys())
    views: list[dict[str, Any]] = []
    for seq, alert in sorted(missing.items(), key=lambda item: (item[1], item[0]), reverse=True):
        views.append(raised_view(alert, seq, bodies.get(seq, {})))
    return views


def raised_view(alert: int, seq: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """A missing alert as its `alert.raised` event's body says, open and flagged."""
    return {
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


def missing_problem(alert: int, seq: int) -> str:
    return (
        f"its alerts row is missing or shows another event (alert {alert} deleted, re-pointed "
        f"or its id given again): the audit log says it was raised (audit event {seq}); shown "
        "open from that event"
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
        missing = {s: a for s, a in seen.missing.items() if ledger.due(("missing", s), now)}
        stray_ids = [a for a in sorted(seen.strays) if ledger.due(("stray", a), now)]
        strays: dict[int, str] = {}
        if report and stray_ids:
            rows = session.scalars(select(AlertRow).where(AlertRow.id.in_(stray_ids[:REPORTED])))
            found = alert_log.problems(session, rows)
            strays = {a: found.get(a, "no alert.raised event vouches for it") for a in stray_ids}
    if report and (missing or strays):
        try:
            with services.database.transaction() as session:
                alerts.report_missing(
                    services, session, dict(sorted(missing.items())[:REPORTED]), now=now
                )
                alerts.report_forged(
                    services, session, dict(sorted(strays.items())[:REPORTED]), now=now
                )
        except Exception:  # shown flagged whatever this is
            log.exception("could not raise the alert about alerts %s", sorted(seen.missing))
        else:
            for seq in sorted(missing)[:REPORTED]:
                ledger.reported(("missing", seq), now)
            for alert in sorted(strays)[:REPORTED]:
                ledger.reported(("stray", alert), now)
    return seen
