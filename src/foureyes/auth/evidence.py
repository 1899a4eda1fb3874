"""Evidence that someone is trying what foureyes refuses, raised at most once an hour per what
is tried: a dead credential (`dead_credentials`, per credential), a failed step-up
(`step_up_failures`, per person and per credential of theirs presented).

Each is a high alert about the person with its `alert.raised` audit event (same transaction),
at most once per (detector, person, `limited_per`) per `WINDOW`, so that a script retrying
cannot grow the log without bound. The alerts table is the memory, shared by every process
(the alert's details carry `limited_per`); the person's staff row is locked while it is read,
so processes noting the same thing at once write one alert. Where a try otherwise writes
nothing (a dead credential), a process also remembers what it saw (`seen`, `remember`), so a
flood of tries costs a dictionary lookup each.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core import alert_log
from foureyes.core.alerts import CLOCK_SKEW, NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, StaffRow

__all__ = [
    "CHANNELS",
    "SEVERITY",
    "WINDOW",
    "Evidence",
    "fresh",
    "latest",
    "note_in",
    "remember",
    "seen",
]

SEVERITY = "high"
WINDOW = timedelta(hours=1)
CHANNELS = ("security",)  # the detectors' default channel
_MEMO_LIMIT = 10_000  # entries remembered per database (then forgotten all at once)

Key = tuple[str, str, str]  # (detector, staff, limited_per)

# Per database: key -> when its latest alert was raised.
_memos: weakref.WeakKeyDictionary[Database, dict[Key, datetime]] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class Evidence:
    """One alert's worth: about `staff`, limited per `limited_per` (a credential, or the
    person's step-ups) within the detector."""

    detector: str
    staff: str
    limited_per: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    account: str | None = None
    request: str | None = None
    channels: tuple[str, ...] = CHANNELS  # who is notified, besides the alert itself

    @property
    def key(self) -> Key:
        return (self.detector, self.staff, self.limited_per)


def _memo(database: Database) -> dict[Key, datetime]:
    with _memo_lock:
        memo = _memos.get(database)
        if memo is None or len(memo) > _MEMO_LIMIT:
            memo = _memos[database] = {}
        return memo


def fresh(raised: datetime | None, now: datetime) -> bool:
    """Whether an alert raised at `raised` still silences its key at `now`."""
    return raised is not None and timedelta(0) <= now - raised < WINDOW


def seen(services: Services, evidence: Evidence, now: datetime) -> bool:
    """Whether this process knows that `evidence` raised its alert within `WINDOW` (then
    nothing need be read or written)."""
    return fresh(_memo(services.database).get(evidence.key), now)


def remember(services: Services, evidence: Evidence, raised: datetime) -> None:
    """Remember when `evidence`'s latest alert was raised; call once that has committed."""
    _memo(services.database)[evidence.key] = raised


def latest(session: Session, evidence: Evidence, now: datetime) -> datetime | None:
    """When the latest alert for `evidence` within `WINDOW` of `now` was raised, if any (one
    dated in the future, a row written in, is none)."""
    detector, staff, limited_per = evidence.key
    rows = session.scalars(
        select(AlertRow).where(
            AlertRow.detector == detector,
            AlertRow.staff_id == staff,
            AlertRow.created_at > now - WINDOW,
            AlertRow.created_at <= now + CLOCK_SKEW,
        )
    )
    times = [
        row.created_at
        # Only alerts foureyes raised (a row written in silences nothing: `core.alert_log`).
        for row in alert_log.vouched(session, rows)
        if (row.details or {}).get("limited_per") == limited_per
    ]
    return max(times, default=None)


def note_in(
    services: Services, session: Session, evidence: Evidence, *, now: datetime
) -> datetime | None:
    """The alert (and its audit event) in the caller's transaction, unless one was raised for
    the same key within `WINDOW`. Returns when its latest alert was raised (now, if by this
    call); None if the person is unknown (then nothing is written)."""
    person = session.scalar(
        select(StaffRow.id).where(StaffRow.id == evidence.staff).with_for_update(key_share=True)
    )
    if person is None:
        return None
    raised = latest(session, evidence, now)
    if fresh(raised, now):
        return raised
    raise_alert(
        services,
        session,
        NewAlert(
            evidence.detector,
            SEVERITY,
            evidence.summary,
            staff=evidence.staff,
            account=evidence.account,
            request=evidence.request,
            details={
                **evidence.details,
                "limited_per": evidence.limited_per,
                "window_seconds": int(WINDOW.total_seconds()),
            },
        ),
        now=now,
        channels=evidence.channels,
    )
    return now
