"""The `checkpoint_stale` alert: events the log holds that no signed checkpoint has covered for
longer than the schedule allows, or a checkpoint the worker was refused.

Without a recent witnessed checkpoint, a rollback or rewrite of what came after the last one is
not evident; so the worker checks after each checkpoint attempt, and `/healthz` checks too (a
deployment where no worker signs at all is seen by its load balancer's probes). One query of
three indexed lookups decides; only a stale log costs more (one alert per stretch of unsigned
events: none is raised again until a checkpoint covers them).

The alert is `high`, and goes to the channels of `detector_silence` (the integrity-monitoring
alert's, from the policy); it is raised whatever the policy says, as the integrity of the log
is not a detector one switches off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import Unavailable
from foureyes.store.tables import AuditHeadRow, CheckpointRow, EventRow

__all__ = ["DETECTOR", "CheckpointLag", "CheckpointStatus", "check_checkpoints", "checkpoint_lag"]

log = logging.getLogger(__name__)

DETECTOR = "checkpoint_stale"
SEVERITY = "high"
_HEAD_ID = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # an alert raised at the stretch's very start counts


@dataclass(frozen=True)
class CheckpointLag:
    """How far the log is ahead of its latest signed checkpoint."""

    size: int
    signed: int
    """The size of the latest stored checkpoint (0 if none)."""
    unsigned_since: datetime | None
    """When the first event no checkpoint covers happened (None if there is none, or its row
    is missing)."""
    signed_at: datetime | None = None
    """When the latest checkpoint was stored (None if there is none)."""

    @property
    def unsigned(self) -> int:
        return max(0, self.size - self.signed)

    def stale(self, now: datetime, deadline: timedelta) -> bool:
        """Whether an event has waited longer than `deadline` for a checkpoint."""
        if not self.unsigned:
            return False
        return self.unsigned_since is None or now - self.unsigned_since > deadline


@dataclass(frozen=True)
class CheckpointStatus:
    stale: bool
    alert: int | None
    """The alert raised by this check, if any."""


def checkpoint_lag(session: Session) -> CheckpointLag:
    """Read the lag in one statement: head, latest checkpoint, the first unsigned event's time."""
    signed = select(func.coalesce(func.max(CheckpointRow.size), 0)).scalar_subquery()
    head = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID).scalar_subquery()
    first = select(EventRow.at).where(EventRow.seq == signed).scalar_subquery()
    made = select(CheckpointRow.created_at).where(CheckpointRow.size == signed).scalar_subquery()
    size, signed_size, since, signed_at = session.execute(select(head, signed, first, made)).one()
    return CheckpointLag(size or 0, signed_size or 0, since, signed_at)


def check_checkpoints(
    services: Services, deadline: timedelta, *, refused: str | None = None
) -> CheckpointStatus:
    """Raise `checkpoint_stale` if events have waited longer than `deadline` for a signed
    checkpoint, or at once if `refused` says why the worker could not sign one (the log is
    not consistent with its witness); once per stretch of unsigned events."""
    with services.database.transaction() as session:
        lag = checkpoint_lag(session)
        now = services.clock()
        stale = lag.stale(now, deadline) or (refused is not None and lag.unsigned > 0)
        if not stale and refused is None:
            return CheckpointStatus(False, None)
        # The stretch this alert is about began with the first unsigned event (or, when a
        # refusal leaves none unsigned, with the latest checkpoint): one alert raised since
        # then (not one dated in the future: `raise_alert` names that) is enough.
        since = lag.unsigned_since if lag.unsigned else lag.signed_at
        row = raise_alert(
            services,
            session,
            _alert(lag, now, deadline, refused),
            now=now,
            channels=_channels(services, session),
            dedupe=max(now - _EPOCH if since is None else now - _utc(since), _TICK) + _TICK,
        )
        return CheckpointStatus(stale, None if row is None else row.id)


def _alert(lag: CheckpointLag, now: datetime, deadline: timedelta, refused: str | None) -> NewAlert:
    waited = None if lag.unsigned_since is None else int((now - lag.unsigned_since).total_seconds())
    if refused is not None:
        summary = f"no checkpoint could be signed: {refused}"
    else:
        summary = (
            f"{lag.unsigned} audit events (from seq {lag.signed}) have no signed checkpoint "
            f"after {waited if waited is not None else 'an unknown number of'}s, more than "
            f"{int(deadline.total_seconds())}s: a rollback or rewrite of them would not be "
            "evident (is a worker with the log's signing key and witness running?)"
        )
    return NewAlert(
        DETECTOR,
        SEVERITY,
        summary,
        details={
            "size": lag.size,
            "checkpoint_size": lag.signed,
            "unsigned_since": lag.unsigned_since,
            "waited_seconds": waited,
            "deadline_seconds": int(deadline.total_seconds()),
            "refused": refused,
        },
    )


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _channels(services: Services, session: Session) -> list[str]:
    try:
        _, policy = services.policy_in_force(session)
    except Unavailable:
        return []
    return list(policy.document.detectors.detector_silence.notify)
