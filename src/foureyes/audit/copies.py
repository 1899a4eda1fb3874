"""The indexed copies of each event's fields, checked against the event itself.

`audit_events` keeps `at`, `kind`, `actor`, `account_ref` and `request_id` beside the body so
that investigations (`foureyes audit log`, the console's timelines) can filter by index. The
tree commits to the body only, so `verify_log` proves the bodies and says nothing of these
copies: a database administrator who rewrites an event's `account_ref` hides it from "everything
that happened to chirp:president" while the log still verifies. `check_copies` parses every body
and compares; it costs a JSON parse per event (a few µs), which is why it is a separate check
(`foureyes audit verify --copies`) rather than part of every verification.

Times are compared as the time filters compare them (`AuditLog.events` ``since``/``until``):
on SQLite the column is text and a filter compares text, so the stored text must be exactly
the text foureyes writes for the body's instant (``'…+23:59'``, a ``T`` separator or dropped
microseconds name the same instant yet sort elsewhere, moving the event out of a window); on
PostgreSQL the column is a ``timestamptz`` and a filter compares instants, so the instants must
be equal (and finite).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, and_, case, func, select, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ColumnElement

from foureyes.audit.export import AuditVerificationError, Tamper
from foureyes.audit.log import (
    _stamp,  # how bodies write `at`: one definition
    stored_bytes,
)
from foureyes.store.database import Database
from foureyes.store.tables import EventRow

__all__ = ["body_at", "check_copies"]

BATCH = 5_000


def body_at(seq: int, raw: bytes) -> dict[str, Any] | None:
    """The event body `raw` of the event at `seq`, parsed, for a reader that believes the body
    and not the columns: None when it is not a JSON object saying it is the event at `seq`."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) and body.get("seq") == seq else None


_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"  # how bodies write `at` (`_stamp`)
# column → the body's key for the same value
_FIELDS = (
    ("kind", "kind"),
    ("actor", "actor"),
    ("account_ref", "account"),
    ("request_id", "request"),
)


def check_copies(database: Database, progress: Callable[[int], None] | None = None) -> int:
    """Compare every event's indexed columns with its body; return how many were checked.

    Raises `AuditVerificationError` (`modified`, naming the seq and the column) at the first
    event whose copy differs from what its body says, or whose body does not parse.
    """
    checked = 0
    with database.read() as session:
        dialect = session.get_bind().dialect
        time_key = time_key_of(dialect)
        query = copies_query(dialect)
        query = query.order_by(EventRow.seq).execution_options(yield_per=BATCH)
        for row in session.execute(query):
            problem = copy_problem(row, time_key)
            if problem is not None:
                raise AuditVerificationError(Tamper.MODIFIED, problem, seq=row.seq)
            checked += 1
            if progress is not None and checked % BATCH == 0:
                progress(checked)
    return checked


def copies_query(dialect: Dialect) -> Select[Any]:
    """The columns `copy_problem` compares, and the body, of `audit_events` rows."""
    at: ColumnElement[Any]
    if dialect.name == "postgresql":
        # 'infinity', or a year Python's datetime cannot hold (a DBA's 12026: attack
        # hide2-F2), would not load: read it as NULL, which matches nothing.
        loadable = and_(func.isfinite(EventRow.at), EventRow.at > _EARLIEST, EventRow.at < _LATEST)
        at = case((loadable, EventRow.at), else_=None)
    else:
        at = type_coerce(EventRow.at, String)  # the stored text, as filters compare it
    columns = (EventRow.seq, at.label("at"), EventRow.kind, EventRow.actor)
    return select(*columns, EventRow.account_ref, EventRow.request_id, EventRow.body)


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def copy_problem(row: Any, time_key: Callable[[datetime], object]) -> str | None:
    """Why a row of `copies_query` is not its body's copy (None when it is)."""
    try:
        body = json.loads(stored_bytes(row.body))
    except ValueError:
        return "the event is not JSON"
    if not isinstance(body, dict) or body.get("seq") != row.seq:
        return "the event does not carry its own seq"
    stamp = body.get("at")
    instant = _instant(stamp)
    if instant is None or row.at is None or row.at != time_key(instant):
        return (
            f"the indexed time {row.at!r} is not the event's {stamp!r} as time filters "
            "see it (an event moved out of an investigation's time window)"
        )
    for column, key in _FIELDS:
        if getattr(row, column) != body.get(key):
            return (
                f"the indexed {column} {getattr(row, column)!r} is not the event's "
                f"{key} {body.get(key)!r} (an event moved out of an investigation's view)"
            )
    return None


def _instant(stamp: object) -> datetime | None:
    """The body's `at` as an aware UTC time, or None unless it is in the one form bodies use."""
    if not isinstance(stamp, str):
        return None
    try:
        instant = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return instant if _stamp(instant) == stamp else None


def time_key_of(dialect: Dialect) -> Callable[[datetime], object]:
    """What a time filter's bound becomes for this database: the column type's own bind
    processing (UTC text on SQLite), so the check compares exactly what the filters compare."""
    if dialect.name == "postgresql":
        return lambda instant: instant
    column_type = EventRow.__table__.c.at.type.dialect_impl(dialect)
    bind = column_type.bind_processor(dialect)
    return (lambda instant: instant) if bind is None else bind
