"""The columns beside every audit event compared with its body, a slice per worker pass.

The `kind`, `actor`, `account_ref`, `request_id` and `at` columns of `audit_events` are copies
of what each event's body says, kept for look-ups; the tree's hashes cover the body only. The
re-checks that act on a request read its events by their bodies (`core.request_index`), but
other readers still find events by the columns (who may see a request in lists, when an
escalation started, timelines of accounts, investigations' filters), and `audit verify
--copies` compares them only when someone runs it. So the worker compares a slice of the log
each pass, going round it for good: a copy that differs from its body (an event relabelled,
re-pointed or re-dated by a database administrator) raises the high `record_tampered` alert
(security is told; once a day per event), as `audit verify --copies` would name it.

Cost: `SLICE` events per pass, or the log's size over `ROUNDS`, whichever is more: a 10M-event
log is gone round in about `ROUNDS` passes (14 hours at a pass every 5 s), each reading 1,000
rows; a log of up to `SLICE` events in every pass. Each process keeps its own place in the
log (from the start when it starts).
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.pool import Pool

from foureyes.audit.copies import copies_query, copy_problem, time_key_of
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.sealing import CHANNELS, DETECTOR
from foureyes.core.services import Services
from foureyes.errors import BadInput
from foureyes.store.tables import EventRow
from foureyes.store.tree import head_size, in_tree

__all__ = ["ROUNDS", "SLICE", "sweep"]

log = logging.getLogger(__name__)

SLICE = 200
ROUNDS = 10_000
AGAIN = timedelta(days=1)  # an altered event is reported again after this, while it lasts
REPORTED = 20  # alerts raised per pass at most (the rest wait for the next round)

_PLACES: weakref.WeakKeyDictionary[Pool, int] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def sweep(services: Services) -> dict[int, str]:
    """Compare the next slice of the log; raise `record_tampered` for each event whose copy
    differs (in a transaction of its own). Returns what was found: seq to why."""
    pool = services.database.engine.pool
    with _LOCK:
        place = _PLACES.get(pool, 0)
    with services.database.read() as session:
        size = int(session.scalar(select(head_size())) or 0)
    start = place if place < size else 0
    end = start + max(SLICE, size // ROUNDS)
    try:
        found = _compared(services, start, end)
    except (BadInput, ValueError, TypeError, OverflowError) as exc:
        # A row the driver cannot load (a value a DBA wrote that no event has): named, and the
        # sweep goes on past it (a sweep stuck on it would report nothing later: attack
        # hide2-F2). `Unavailable` (the database down) is not caught: the slice is read again.
        found = {
            start: f"the events from seq {start} to {end - 1} cannot all be read "
            f"({type(exc).__name__}): a row was written that no event of the log has"
        }
    with _LOCK:
        _PLACES[pool] = end
    if found:
        _report(services, found)
    return found


def _compared(services: Services, start: int, end: int) -> dict[int, str]:
    """Seq to why, for each event in [start, end) whose copy differs from its body."""
    found: dict[int, str] = {}
    with services.database.read() as session:
        dialect = session.get_bind().dialect
        time_key = time_key_of(dialect)
        query = copies_query(dialect).where(EventRow.seq >= start, EventRow.seq < end, in_tree())
        for row in session.execute(query.order_by(EventRow.seq)):
            problem = copy_problem(row, time_key)
            if problem is not None:
                found[int(row.seq)] = problem
    return found


def _report(services: Services, found: dict[int, str]) -> None:
    now = services.clock()
    with services.database.transaction() as session:
        for seq, problem in sorted(found.items())[:REPORTED]:
            raise_alert(
                services,
                session,
                NewAlert(
                    DETECTOR,
                    "high",
                    f"audit event {seq} was changed in the store: {problem}; what is found "
                    "by that column may be wrong until it is restored (`foureyes audit verify "
                    "--copies` names every such event)",
                    account=f"foureyes:events/{seq}",
                    details={"seq": seq, "problem": problem},
                ),
                now=now,
                channels=CHANNELS,
                dedupe=AGAIN,
            )
