"""The detector pipeline: a pass over the audit events written since the last pass (by `seq`
cursor), run by the worker on every tick, plus the heartbeat `detector_silence` watches.

One pass is one write transaction: the alerts it raises, the cursor move and the
`detectors.read` event that vouches for it commit together, so an event is looked at once, even
with several workers (the state row is claimed with SKIP LOCKED; a worker that finds it taken
leaves the pass to the other). On SQLite a pass that raises nothing looks first and writes only
the cursor (`_pass`). The cursor row is believed only where the log vouches for it
(`foureyes.detect.cursor`): a row moved outside foureyes raises `detector_cursor_moved` and the
pass reads on from where the log says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, case, cast, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, defer

from foureyes.core.alerts import CLOCK_SKEW, LOOKING_ONLY, NewAlert, WouldStore, raise_alert
from foureyes.core.services import Services
from foureyes.detect import batches, cursor
from foureyes.detect.detectors import BY_KIND, PassReads, Seen
from foureyes.detect.lookalikes import batch_lookalike
from foureyes.errors import FoureyesError, Unavailable
from foureyes.model import parse_duration
from foureyes.policy.schema import DetectorsSpec
from foureyes.store.bulk import chunks
from foureyes.store.tables import DetectorStateRow, EventRow, RequestRow
from foureyes.store.tree import in_tree

log = logging.getLogger(__name__)

STATE_ID = 1
# Events per pass, one transaction each: what a pass holds locks for (on SQLite, the write
# lock: a pass of 500 held it for up to 0.8 s under load, stalling every submit).
BATCH = 100
# Events one `run` reads at most, pass after pass while each is full: a backlog drains faster
# than a busy server fills it (three events per submit) rather than one pass per worker tick.
MOST_PER_RUN = 5_000
AHEAD_WINDOW = timedelta(hours=1)
"""How often a heartbeat dated in the future is alerted about while it lasts."""

# The detectors of batches (`foureyes.detect.lookalikes`, `foureyes.detect.batches`), beside
# those of requests (`BY_KIND`).
BATCH_KINDS = {
    **batches.BY_KIND,
    batches.SUBMITTED: (("batch_lookalike", batch_lookalike), *batches.BY_KIND[batches.SUBMITTED]),
}


def run(services: Services, *, batch: int = BATCH) -> list[int]:
    """Look at the audit events since the last pass, `batch` per pass (one transaction each)
    while passes find a full batch, up to `MOST_PER_RUN`; return the ids of the alerts raised.

    Each pass also beats the heartbeat and, if the previous beat is older than
    `detector_silence.gap`, raises that alert first. If a pass fails, nothing of it is kept
    (the cursor stays, the heartbeat stays old; earlier passes of this run are kept) and the
    silence check runs on its own, so a pipeline that keeps failing raises `detector_silence`
    once the gap has passed; the error is raised again (for the caller to log, in one line if
    it is a FoureyesError: the store being down is no bug).
    """
    raised: list[int] = []
    for _ in range(max(1, MOST_PER_RUN // batch)):
        alerts, full = _guarded_pass(services, batch)
        raised.extend(alerts)
        if not full:
            break
    return raised


def _guarded_pass(services: Services, batch: int) -> tuple[list[int], bool]:
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


def _pass(services: Services, batch: int) -> tuple[list[int], bool]:
    """One pass (`run`): the alerts it raised, and whether it read a full `batch` of events
    (more may be waiting).

    On SQLite a write transaction holds the whole file, and every submit waits for it: the
    pass first looks at its events in a read transaction (`_look_ahead`), up to the first one
    that raises an alert, and moves the cursor past those in a short write transaction
    (`_advance`). From an event that raises an alert (or a moved cursor, or another pass that
    moved it meanwhile) it is the whole pass in one write transaction, as on PostgreSQL (whose
    row locks leave submits alone)."""
    if services.database.is_sqlite:
        looked = _look_ahead(services, batch)
        if looked is not None and (looked.last > looked.start or not looked.stopped):
            advanced = _advance(services, looked)
            if advanced is not None and not looked.stopped:
                return advanced
    return _whole_pass(services, batch)


@dataclass(frozen=True)
class _Looked:
    """What a look ahead found raising nothing: the events after `start` up to `last`."""

    start: int
    last: int
    read: bool  # some event was not the pipeline's own record
    full: bool  # a whole batch: more may be waiting
    vouched_none: bool  # the log vouches for no cursor yet
    now: datetime
    stopped: bool = False  # at the event after `last`, which raises an alert


def _look_ahead(services: Services, batch: int) -> _Looked | None:
    """The pass's events looked at in a read transaction, nothing stored, up to the first that
    would store an alert (`stopped`). None when the pass would store anything before its
    events (the silence alert, a cursor moved outside foureyes), or cannot tell."""
    with services.database.read() as session:
        session.info[LOOKING_ONLY] = True
        try:
            state = session.get(DetectorStateRow, STATE_ID)
            if state is None:
                return None
            now = services.clock()
            try:
                _, policy = services.policy_in_force(session)
            except Unavailable:
                return None
            settings = policy.document.detectors
            _silence(services, session, settings, now)
            vouched = cursor.Vouched.read(session)
            start = state.cursor
            if vouched.moved(start) is not None:
                return None
            seen = _look(services, session, settings, start, batch, now)
        except WouldStore:
            return None
        finally:
            session.info.pop(LOOKING_ONLY, None)
    assert not seen.raised  # nothing is stored while looking
    return _Looked(
        start,
        seen.last,
        seen.read,
        seen.count >= batch,
        vouched.cursor is None,
        now,
        stopped=seen.stopped,
    )


def _advance(services: Services, looked: _Looked) -> tuple[list[int], bool] | None:
    """Move the cursor past what `_look_ahead` looked at (its `detectors.read` event and the
    heartbeat): the pass's answer, or None when the cursor moved meanwhile (look again)."""
    with services.database.transaction() as session:
        state = _claim(session)
        if state is None:
            return [], False  # another worker is in a pass right now
        if state.cursor != looked.start:
            return None
        # A look that stopped before an alert is half a pass: the heartbeat is beaten by the
        # whole pass that stores it, never here (a pass that keeps failing at that alert, one
        # the database refuses, must go silent: attack led7-F7).
        _move_cursor(services, session, state, looked, beat=not looked.stopped)
        return [], looked.read and looked.full


def _whole_pass(services: Services, batch: int) -> tuple[list[int], bool]:
    """The pass in one write transaction: its alerts, the cursor move and their events."""
    with services.database.transaction() as session:
        state = _claim(session)
        if state is None:
            return [], False  # another worker is in a pass right now
        now = services.clock()
        try:
            _, policy = services.policy_in_force(session)
        except Unavailable:
            return [], False
        settings = policy.document.detectors
        raised = _silence(services, session, settings, now)
        vouched = cursor.Vouched.read(session)
        start = state.cursor
        moved = vouched.moved(start)
        if moved is not None:
            log.error("%s; reading on from event %d", moved.reason, moved.resume)
            alert = cursor.moved_alert(services, session, settings, moved)
            raised.extend([] if alert is None else [alert])
            start = moved.resume
        seen = _look(services, session, settings, start, batch, now)
        raised.extend(seen.raised)
        full = seen.count >= batch
        looked = _Looked(start, seen.last, seen.read, full, vouched.cursor is None, now)
        _move_cursor(services, session, state, looked)
        return raised, seen.read and full


@dataclass
class _Seen:
    """What `_look` found: the alerts raised, the last event looked at, whether any was not
    the pipeline's own record, how many were read, and whether it stopped before an event
    that would store an alert (a look ahead)."""

    raised: list[int]
    last: int
    read: bool = False
    count: int = 0
    stopped: bool = False


def _look(
    services: Services,
    session: Session,
    settings: DetectorsSpec,
    start: int,
    batch: int,
    now: datetime,
) -> _Seen:
    """Run the detectors over up to `batch` events after `start`. In a look ahead
    (`LOOKING_ONLY`), stop before the first event that would store an alert."""
    events = session.scalars(
        select(EventRow).where(EventRow.seq > start, in_tree()).order_by(EventRow.seq).limit(batch)
    ).all()
    catalog = services.catalog()
    reads = PassReads(requests=_requests_read(session, events))
    found = _Seen(raised=[], last=start, count=len(events))
    for event in events:
        if event.account_ref != cursor.ACCOUNT:  # else: the pipeline's own record of a pass
            detectors = BY_KIND.get(event.kind) or BATCH_KINDS.get(event.kind, ())
            if detectors:
                body = json.loads(event.body)
                seen = Seen(services, session, settings, event, body, now, catalog, reads)
                try:
                    for name, detector in detectors:
                        if getattr(settings, name).enabled:
                            detector(seen)
                except WouldStore:
                    found.stopped = True
                    return found
                found.raised.extend(seen.raised)
            found.read = True
        found.last = event.seq
    return found


def _move_cursor(
    services: Services,
    session: Session,
    state: DetectorStateRow,
    looked: _Looked,
    *,
    beat: bool = True,
) -> None:
    """The cursor moved to `looked.last` with the `detectors.read` event that vouches for it (when
    the pass read anything, or the log vouches for no cursor yet), and the heartbeat beaten
    (`beat`: the pass is whole)."""
    if looked.read or (looked.vouched_none and looked.start > 0):
        # Where the row now stands, in the log: the next pass believes the row only there.
        services.audit.append(
            session,
            kind=cursor.READ,
            actor=None,
            account_ref=cursor.ACCOUNT,
            request_id=None,
            payload={"cursor": looked.last, "from": looked.start},
            at=looked.now,
        )
        state.cursor = looked.last
    else:
        state.cursor = looked.start  # nothing but our own records: the row stays where vouched
    if beat:
        state.heartbeat_at = looked.now


def _requests_read(session: Session, events: Sequence[EventRow]) -> list[RequestRow]:
    """The requests `events` name, read in one statement into the session: its identity map
    then answers each detector's `Seen.request` without a statement of its own (it holds
    them weakly: the caller keeps the list for the pass)."""
    ids = sorted({e.request_id for e in events if e.request_id is not None})
    found: list[RequestRow] = []
    for chunk in chunks(ids):
        found.extend(session.scalars(select(RequestRow).where(RequestRow.id.in_(chunk))))
    return found


@dataclass(frozen=True)
class Silence:
    """Why the detectors cannot be said to be running (`check_silence`)."""

    reason: str
    ahead: bool
    """The heartbeat is dated in the future (written outside foureyes), not merely old."""
    alert: int | None
    """The `detector_silence` alert this check raised (None: raised before, or not at all)."""

    @property
    def status(self) -> str:
        """What `/healthz` says of the detectors."""
        return "heartbeat-ahead" if self.ahead else "silent"


def check_silence(services: Services) -> Silence | None:
    """For a health check, every time: whether the pipeline has gone without a pass for longer
    than its `gap` (or its heartbeat is dated in the future), as long as that lasts; None
    while it runs. Raises the `detector_silence` alert about it (once per silence; a future
    heartbeat, once an hour)."""
    with services.database.transaction() as session:
        try:
            _, policy = services.policy_in_force(session)
        except Unavailable:
            return None
        return _silent(services, session, policy.document.detectors, services.clock())


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
    # The heartbeat is not loaded with the row (`_beat` reads it): a value a DBA wrote that
    # the driver cannot turn into a time (PostgreSQL's 'infinity') must not stop every pass.
    return session.scalar(
        select(DetectorStateRow)
        .options(defer(DetectorStateRow.heartbeat_at))
        .where(DetectorStateRow.id == STATE_ID)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


@dataclass(frozen=True)
class _Beat:
    last: datetime | None
    """The last heartbeat, when it is not in the future (None: no pass has run yet)."""
    ahead: str | None
    """The heartbeat as stored, when it is dated in the future."""


_FLOOR = datetime(1970, 1, 1, tzinfo=UTC)


def _beat(session: Session, now: datetime) -> _Beat:
    """The heartbeat, read so that any value a DBA wrote comes back: one dated later than `now`
    (give or take `CLOCK_SKEW`) as its text, one before 1970 (or '-infinity') as 1970."""
    beat = DetectorStateRow.heartbeat_at
    ahead = beat > now + CLOCK_SKEW
    found = session.execute(
        select(
            case((ahead, cast(beat, String)), else_=None),
            type_coerce(
                case((ahead, None), (beat < _FLOOR, literal(_FLOOR, beat.type)), else_=beat),
                beat.type,
            ),
        ).where(DetectorStateRow.id == STATE_ID)
    ).first()
    return _Beat(None, None) if found is None else _Beat(found[1], found[0])


def _silence(
    services: Services, session: Session, settings: DetectorsSpec, now: datetime
) -> list[int]:
    found = _silent(services, session, settings, now)
    return [] if found is None or found.alert is None else [found.alert]


def _silent(
    services: Services, session: Session, settings: DetectorsSpec, now: datetime
) -> Silence | None:
    """The silence the heartbeat shows at `now` (None: none), with its alert: raised once per
    silence (an alert dated after the last heartbeat, up to now, is that silence's), and for a
    heartbeat dated in the future, which would hide any silence, once an hour."""
    spec = settings.detector_silence
    beat = _beat(session, now)
    if not spec.enabled:
        return None
    if beat.ahead is not None:
        reason = (
            f"the detectors' heartbeat is dated {beat.ahead}, in the future: it was written "
            "outside foureyes, and whether the detectors run cannot be told until their next "
            "pass"
        )
        alert = NewAlert("detector_silence", "high", reason, details={"heartbeat": beat.ahead})
        row = raise_alert(
            services, session, alert, now=now, channels=spec.notify, dedupe=AHEAD_WINDOW
        )
        return Silence(reason, True, None if row is None else row.id)
    last = beat.last
    if last is None:
        # No heartbeat: before the first pass, or one a DBA cleared to hide a stopped pipeline.
        # Either way the detectors have not run since the log began.
        last = session.scalar(select(EventRow.at).where(EventRow.seq == 0))
        if last is None:
            return None  # an empty log: nothing to detect yet
    gap = now - last
    if gap <= parse_duration(spec.gap):
        return None
    reason = (
        f"the detectors have not run since {last.isoformat()} "
        f"({int(gap.total_seconds())}s, more than {spec.gap})"
    )
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
        dedupe=gap,  # once per silence: an alert raised since the last heartbeat is this one's
    )
    return Silence(reason, False, None if row is None else row.id)
