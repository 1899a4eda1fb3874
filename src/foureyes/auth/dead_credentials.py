"""A dead credential in use is evidence: someone holds a known person's token, identity or
console session that no longer works (revoked, expired, or its owner terminated, suspended or
outside their contract) and is trying it.

The caller gets the same 401 as before, nothing more. Oversight gets a high `dead_credential`
alert about the person, and with it its `alert.raised` audit event (same transaction), at most
once per credential per `WINDOW`, so a script retrying a dead token cannot grow the log without
bound. The alerts table is the memory, shared by every process; the person's staff row is
locked while it is read, so processes noting the same credential at once write one alert. A
process also remembers what it saw, so a flood of tries costs a dictionary lookup each.

Garbage never gets here (an unknown token id, a wrong secret, a malformed token, a name no one
has): it is counted (throttle, metrics) and not logged, as before, so strangers cannot write to
the log either.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import DeadCredential, FoureyesError
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, StaffRow

__all__ = ["DETECTOR", "WINDOW", "note", "note_in"]

log = logging.getLogger(__name__)

DETECTOR = "dead_credential"
SEVERITY = "high"
WINDOW = timedelta(hours=1)
CHANNELS = ("security",)  # the detectors' default channel
_MEMO_LIMIT = 10_000  # credentials remembered per database (then forgotten all at once)

# Per database: (staff, credential) -> when its latest alert was raised.
_memos: weakref.WeakKeyDictionary[Database, dict[tuple[str, str], datetime]] = (
    weakref.WeakKeyDictionary()
)
_memo_lock = threading.Lock()


def _memo(database: Database) -> dict[tuple[str, str], datetime]:
    with _memo_lock:
        memo = _memos.get(database)
        if memo is None or len(memo) > _MEMO_LIMIT:
            memo = _memos[database] = {}
        return memo


def _fresh(raised: datetime | None, now: datetime) -> bool:
    return raised is not None and timedelta(0) <= now - raised < WINDOW


def note(services: Services, dead: DeadCredential, *, where: str, client: str = "") -> None:
    """Raise the alert for `dead` (tried at `where`, from `client`) unless this credential
    raised one within `WINDOW`. Never raises: the caller answers 401 whatever happens here, and
    a failure to write the alert is logged as an error."""
    now = services.clock()
    key = (dead.staff, dead.credential)
    memo = _memo(services.database)
    if _fresh(memo.get(key), now):
        return
    try:
        with services.database.read() as session:
            raised = _latest(session, dead, now)
        if not _fresh(raised, now):
            with services.database.transaction() as session:
                raised = note_in(services, session, dead, now=now, where=where, client=client)
    except (FoureyesError, SQLAlchemyError):
        log.exception("could not record the use of a dead credential of %s", dead.staff)
        return
    if raised is not None:
        memo[key] = raised


def note_in(
    services: Services,
    session: Session,
    dead: DeadCredential,
    *,
    now: datetime,
    where: str,
    client: str = "",
) -> datetime | None:
    """`note` in the caller's transaction: the alert (and its audit event) unless one was
    raised for this credential within `WINDOW`. Returns when the credential's latest alert was
    raised (now, if by this call); None if the person is unknown (then nothing is written)."""
    person = session.scalar(
        select(StaffRow.id).where(StaffRow.id == dead.staff).with_for_update(key_share=True)
    )
    if person is None:
        return None
    raised = _latest(session, dead, now)
    if _fresh(raised, now):
        return raised
    raise_alert(
        services,
        session,
        NewAlert(
            DETECTOR,
            SEVERITY,
            f"{dead.staff}'s credential {dead.credential} was tried after it stopped working "
            f"({dead.reason}), at {where}",
            staff=dead.staff,
            details={
                "credential": dead.credential,
                "reason": dead.reason,
                "where": where,
                "client": client,
                "window_seconds": int(WINDOW.total_seconds()),
            },
        ),
        now=now,
        channels=CHANNELS,
    )
    return now


def _latest(session: Session, dead: DeadCredential, now: datetime) -> datetime | None:
    """When this credential's latest alert within `WINDOW` of `now` was raised, if any."""
    rows = session.execute(
        select(AlertRow.created_at, AlertRow.details).where(
            AlertRow.detector == DETECTOR,
            AlertRow.staff_id == dead.staff,
            AlertRow.created_at > now - WINDOW,
        )
    )
    times = [at for at, details in rows if (details or {}).get("credential") == dead.credential]
    return max(times, default=None)
