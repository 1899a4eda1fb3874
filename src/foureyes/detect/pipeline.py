"""The detector pipeline: a pass over the audit events written since the last pass (by `seq`
cursor), run by the worker on every tick, plus the heartbeat `detector_silence` watches.

One pass is one transaction: the alerts it raises, the cursor move and the `detectors.read`
event that vouches for it commit together, so an event is looked at once, even with several
workers (the state row is claimed with SKIP LOCKED; a worker that finds it taken leaves the pass
to the other). The cursor row is believed only where the log vouches for it
(`foureyes.detect.cursor`): a row moved outside foureyes raises `detector_cursor_moved` and the
pass reads on from where the log says.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.detect import cursor
from foureyes.detect.detectors import BY_KIND, Seen
from foureyes.errors import FoureyesError, Unavailable
from foureyes.model import parse_duration
from foureyes.policy.schema import DetectorsSpec
from foureyes.store.tables import AlertRow, DetectorStateRow, EventRow

log = logging.getLogger(__name__)

STATE_ID = 1
BATCH = 500


def run(services: Services, *, batch: int = BATCH) -> list[int]:
    """Look at every audit event since the last pass; return the ids of the alerts raised.

    Also beats the heartbeat and, if the previous beat is older than `detector_silence.gap`,
    raises that alert first. If the pass fails, nothing of it is kept (the cursor stays, the
    heartbeat stays old) and the silence check runs on its own, so a pipeline that keeps failing
    raises `detector_silence` once the gap has passed; the error is raised again (for the caller
    to log, in one line if it is a FoureyesError: the store being down is no bug).
    """
    try:
        return _pass(services, batch)
    except Exception:
        try:
            check_silence(services)
        except FoureyesError as exc:  # the store is failing: the caller logs the first error
            log.debug("the detector silence check failed too: %s", exc.message)
        except Exception:  # a bug of its own: its traceback
            log.exception("the detector silence check failed too")
        raise


def _pass(services: Services, batch: int) -> list[int]:
    with services.database.transaction() as session:
        state = _claim(session)
        if state is None:
            return []  # another worker is in a pass right now
        now = services.clock()
        try:
            _, policy = services.policy_in_force(session)
        except Unavailable:
            return []
        settings = policy.document.detectors
        raised = _silence(services, session, settings, state.heartbeat_at, now)
        vouched = cursor.Vouched.read(session)
        start = state.cursor
        moved = vouched.moved(start)
        if moved is not None:
            log.error("%s; reading on from event %d", moved.reason, moved.resume)
            alert = cursor.moved_alert(services, session, settings, moved)
            raised.extend([] if alert is None else [alert])
            start = moved.resume
        events = session.scalars(
            select(EventRow).where(EventRow.seq > start).order_by(EventRow.seq).limit(batch)
        ).all()
        catalog = services.catalog()
        last, read = start, False
        for event in events:
            last = event.seq
            if event.account_ref == cursor.ACCOUNT:
                continue  # the pipeline's own record of an earlier pass
            read = True
            detectors = BY_KIND.get(event.kind, ())
            if detectors:
                body = json.loads(event.body)
                seen = Seen(services, session, settings, event, body, now, catalog)
                for name, detector in detectors:
                    if getattr(settings, name).enabled:
                        detector(seen)
                raised.extend(seen.raised)
        if read or (vouched.cursor is None and start > 0):
            # Where the row now stands, in the log: the next pass believes the row only there.
            services.audit.append(
                session,
                kind=cursor.READ,
                actor=None,
                account_ref=cursor.ACCOUNT,
                request_id=None,
                payload={"cursor": last, "from": start},
                at=now,
            )
            state.cursor = last
        else:
            state.cursor = start  # nothing but our own records: the row stays where vouched
        state.heartbeat_at = now
        return raised


def check_silence(services: Services) -> int | None:
    """For a health check: raise the `detector_silence` alert if the pipeline has not run for
    longer than its `gap` (once per silence); the alert's id, or None."""
    with services.database.transaction() as session:
        state = session.get(DetectorStateRow, STATE_ID)
        try:
            _, policy = services.policy_in_force(session)
        except Unavailable:
            return None
        raised = _silence(
            services,
            session,
            policy.document.detectors,
            None if state is None else state.heartbeat_at,
            services.clock(),
        )
        return raised[0] if raised else None


def _claim(session: Session) -> DetectorStateRow | None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            pg_insert(DetectorStateRow)
            .values(id=STATE_ID, cursor=0)
            .on_conflict_do_nothing(index_elements=["id"])
        )
    elif session.get(DetectorStateRow, STATE_ID) is None:
        session.add(DetectorStateRow(id=STATE_ID, cursor=0))
        session.flush()
    return session.scalar(
        select(DetectorStateRow)
        .where(DetectorStateRow.id == STATE_ID)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def _silence(
    services: Services,
    session: Session,
    settings: DetectorsSpec,
    last: datetime | None,
    now: datetime,
) -> list[int]:
    spec = settings.detector_silence
    if not spec.enabled or last is None:
        return []
    gap = now - last
    if gap <= parse_duration(spec.gap):
        return []
    # Once per silence: the alert names the last heartbeat it saw.
    already = session.scalar(
        select(AlertRow.id)
        .where(AlertRow.detector == "detector_silence", AlertRow.created_at > last)
        .limit(1)
    )
    if already is not None:
        return []
    row = raise_alert(
        services,
        session,
        NewAlert(
            "detector_silence",
            spec.severity,
            f"the detectors did not run from {last.isoformat()} to {now.isoformat()} "
            f"({int(gap.total_seconds())}s, more than {spec.gap}): events in between "
            "are looked at only now",
            details={"last_heartbeat": last, "gap_seconds": int(gap.total_seconds())},
        ),
        now=now,
        channels=spec.notify,
    )
    return [] if row is None else [row.id]
