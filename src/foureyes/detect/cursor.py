"""The detectors' cursor, vouched for by the audit log.

The pipeline's progress (`detector_state.cursor`: the last event it has read) is a store row a
database administrator can edit: moved forward, it would silence the detectors over the events
it skips while `/healthz` says ok; moved back, it would repeat their alerts. So every pass that
reads events other than its own appends, in its transaction, a `detectors.read` event whose
`cursor` is where the row now stands (`from`: where it stood). The log, not the row, says how
far the detectors have read: at the start of each pass the row is compared with the latest
such event (one backward step on the `(account_ref, seq)` index, as seals are read), and a row
that differs — ahead of the log's head, moved forward, moved back, deleted — is a finding:

- a high `detector_cursor_moved` alert (with its audit event) names both positions;
- the pass reads on from the position the log vouches for, so skipped events are looked at
  and none is looked at twice (and an alert about one event is never raised twice anyway:
  `Seen.alert` keys it by detector, event and whom it is about);
- `/healthz` reports the detectors as degraded, with the reason, while the row differs and
  until that alert is acknowledged.

A pass that reads only its own `detectors.read` events leaves the row where it is and appends
nothing, so a quiet log does not grow. What this does not cover: a DBA who also appends a
forged `detectors.read` event (appending needs no key; the event stays in the log for good,
as forged seals do). A `cursor` at or beyond its own event's seq is not believed past it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.core import alert_ledger
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.policy.schema import DetectorsSpec
from foureyes.store.tables import AuditHeadRow, DetectorStateRow, EventRow
from foureyes.store.tree import in_tree

__all__ = ["ACCOUNT", "DETECTOR", "READ", "Moved", "Vouched", "check_cursor", "moved_alert"]

ACCOUNT = "foureyes:detectors"
"""The `account` of the pipeline's own events (so the latest is one index step away)."""
READ = "detectors.read"
DETECTOR = "detector_cursor_moved"
SEVERITY = "high"
STATE_ID = 1
_HEAD_ID = 1


@dataclass(frozen=True)
class Moved:
    """A cursor that is not where the log says the detectors have read to."""

    found: int
    """The row's cursor (0 when the row is missing)."""
    resume: int
    """Where the pass reads on from: the position the log vouches for (0 without one)."""
    head: int
    why: str

    @property
    def reason(self) -> str:
        return (
            f"the detectors' cursor is at event {self.found} but the audit log says they have "
            f"read through event {self.resume} ({self.why}): it was moved outside foureyes"
        )


@dataclass(frozen=True)
class Vouched:
    """What the log says about the pipeline's position, read with the log's head."""

    cursor: int | None
    """The cursor of the latest `detectors.read` event (None: there is none yet)."""
    head: int
    """The log's size (audit_head)."""
    row: int
    """The cursor row's position as read in the same statement (0 when there is no row)."""

    @classmethod
    def read(cls, session: Session) -> Vouched:
        """One statement (one snapshot, also on PostgreSQL): the latest `detectors.read`
        event, the head and the cursor row."""
        size, seq, body, row = session.execute(_VOUCHED).one()
        return cls(_claimed(seq, body), int(size or 0), int(row or 0))

    def moved(self, cursor: int) -> Moved | None:
        """Whether a row at `cursor` is not where the log says (None: it is)."""
        if self.cursor is None:
            # A store from before the cursor was vouched for (or a fresh one): the row is taken
            # as it is, and the pass records it; only a row beyond the log cannot be right.
            if cursor > 0 and cursor >= self.head:
                return Moved(cursor, 0, self.head, f"ahead of the log's head ({self.head} events)")
            return None
        if cursor == self.cursor:
            return None
        if cursor >= self.head:
            why = f"ahead of the log's head ({self.head} events)"
        elif cursor > self.cursor:
            why = "moved forward: the events in between would have gone unseen"
        else:
            why = "moved back: the events in between would have been looked at again"
        return Moved(cursor, self.cursor, self.head, why)


_LATEST = (
    select(EventRow.seq, EventRow.body)
    .where(EventRow.account_ref == ACCOUNT, EventRow.kind == READ, in_tree())
    .order_by(EventRow.seq.desc())
    .limit(1)
)
_VOUCHED = select(
    select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID).scalar_subquery(),
    _LATEST.with_only_columns(EventRow.seq).scalar_subquery(),
    _LATEST.with_only_columns(EventRow.body).scalar_subquery(),
    select(DetectorStateRow.cursor).where(DetectorStateRow.id == STATE_ID).scalar_subquery(),
)


def _claimed(seq: object, body: object) -> int | None:
    """The position a `detectors.read` event vouches for: its `cursor`, never at or beyond the
    event itself (a genuine one is always below it; a forged one is not believed past it)."""
    if seq is None:
        return None
    try:
        cursor = json.loads(stored_bytes(body)).get("cursor")
    except (ValueError, AttributeError):
        cursor = None
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
        return 0  # an event that says nothing usable vouches for nothing past the start
    return min(cursor, int(str(seq)) - 1)


def moved_alert(
    services: Services, session: Session, settings: DetectorsSpec, moved: Moved
) -> int | None:
    """Raise the high `detector_cursor_moved` alert about `moved` in the pass's transaction
    (to the `detector_silence` channels: the detectors watching themselves; raised whatever
    the policy says); its id."""
    row = raise_alert(
        services,
        session,
        NewAlert(
            DETECTOR,
            SEVERITY,
            f"{moved.reason}; the detectors read on from event {moved.resume}",
            details={"found": moved.found, "vouched": moved.resume, "head": moved.head},
        ),
        now=services.clock(),
        channels=settings.detector_silence.notify,
    )
    return None if row is None else row.id


def check_cursor(services: Services) -> str | None:
    """For a health check: why the detectors cannot be said to have read the log (None: they
    can). The row differs from the position the log vouches for now, or an alert about a
    moved cursor is not acknowledged yet (by the log: `core.alert_ledger`, whose check costs
    what its docstring says). Raises nothing of its own."""
    with services.database.read() as session:
        vouched = Vouched.read(session)
        moved = vouched.moved(vouched.row)
        if moved is not None:
            return moved.reason
        # Open unless an acknowledgement's event body names it, as its `alert.raised` event
        # says (the rows' columns a DBA can edit; a deleted row hides nothing).
        seen = alert_ledger.ledger_of(services).check(session)
        found = [alert for alert, detector in seen.open.items() if detector == DETECTOR]
        if not found and seen.missing:
            gone = alert_ledger.missing_view(session, seen.missing)
            found = [view["id"] for view in gone if view["detector"] == DETECTOR]
    open_alert = max(found, default=None)
    if open_alert is not None:
        return (
            f"the detectors' cursor was moved outside foureyes (alert {open_alert}, not "
            "acknowledged yet)"
        )
    return None
