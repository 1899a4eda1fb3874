"""The indexed copies of each event's fields, checked against the event itself.

`audit_events` keeps `at`, `kind`, `actor`, `account_ref` and `request_id` beside the body so
that investigations (`foureyes audit log`, the console's timelines) can filter by index. The
tree commits to the body only, so `verify_log` proves the bodies and says nothing of these
copies: a database administrator who rewrites an event's `account_ref` hides it from "everything
that happened to chirp:president" while the log still verifies. `check_copies` parses every body
and compares; it costs a JSON parse per event (a few µs), which is why it is a separate check
(`foureyes audit verify --copies`) rather than part of every verification.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select

from foureyes.audit.export import AuditVerificationError, Tamper
from foureyes.audit.log import _stamp  # how bodies write `at`: one definition
from foureyes.store.database import Database
from foureyes.store.tables import EventRow

__all__ = ["check_copies"]

BATCH = 5_000
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
    columns = (EventRow.seq, EventRow.at, EventRow.kind, EventRow.actor, EventRow.account_ref)
    query = select(*columns, EventRow.request_id, EventRow.body).order_by(EventRow.seq)
    with database.read() as session:
        for row in session.execute(query.execution_options(yield_per=BATCH)):
            try:
                body = json.loads(bytes(row.body))
            except ValueError:
                raise AuditVerificationError(
                    Tamper.MODIFIED, "the event is not JSON", seq=row.seq
                ) from None
            if not isinstance(body, dict) or body.get("seq") != row.seq:
                raise AuditVerificationError(
                    Tamper.MODIFIED, "the event does not carry its own seq", seq=row.seq
                )
            if body.get("at") != _stamp(row.at):
                raise AuditVerificationError(
                    Tamper.MODIFIED,
                    f"the indexed time {_stamp(row.at)} is not the event's {body.get('at')}",
                    seq=row.seq,
                )
            for column, key in _FIELDS:
                if getattr(row, column) != body.get(key):
                    raise AuditVerificationError(
                        Tamper.MODIFIED,
                        f"the indexed {column} {getattr(row, column)!r} is not the event's "
                        f"{key} {body.get(key)!r} (an event moved out of an investigation's view)",
                        seq=row.seq,
                    )
            checked += 1
            if progress is not None and checked % BATCH == 0:
                progress(checked)
    return checked
