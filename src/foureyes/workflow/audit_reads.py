"""Reading the audit log's events, for oversight staff only (`access.require_oversight`).

Events say who did what to whom and why (justifications, comments, decisions): a browsing
insider's map of colleagues and accounts. One event of a request its reader may see (its
timeline shows it anyway) may be read with its proof. The log's checkpoints and proofs are
hashes and stay open to all staff (`AuditLog.checkpoint`, `.inclusion`, `.consistency`), so
that anyone can verify the log without reading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.audit.log import Event, InclusionProof
from foureyes.core.services import Actor, Services
from foureyes.errors import NotFound
from foureyes.store.tables import RequestRow
from foureyes.workflow.access import may_see, require_oversight

EVENTS = "the audit log's events"


@dataclass(frozen=True)
class EventFilter:
    """What `AuditLog.events` filters on; every field given must match. Times are aware."""

    account: str | None = None
    actor: str | None = None
    action: str | None = None
    kind: str | None = None
    request: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    limit: int = 100
    before_seq: int | None = None
    newest_first: bool = False


def audit_events(services: Services, actor: Actor, filters: EventFilter) -> list[Event]:
    """Events matching `filters`, in log order. Forbidden unless `actor` oversees."""
    require_oversight(services, actor, EVENTS)
    with services.database.transaction() as session:
        return services.audit.events(
            session,
            account=filters.account,
            actor=filters.actor,
            action=filters.action,
            kind=filters.kind,
            request=filters.request,
            since=filters.since,
            until=filters.until,
            after_seq=filters.after_seq,
            limit=filters.limit,
            before_seq=filters.before_seq,
            newest_first=filters.newest_first,
        )


def audit_event(services: Services, actor: Actor, seq: int) -> tuple[Event, InclusionProof]:
    """Event `seq` and its inclusion proof in the log as it is now: for oversight staff, and
    for anyone who may see the request the event belongs to (its timeline is theirs already).
    Forbidden otherwise; NotFound for a seq the log does not hold."""
    with services.database.transaction() as session:
        found = services.audit.events(session, after_seq=seq - 1, limit=1)
        if not found or found[0].seq != seq:
            raise NotFound(f"no event {seq} in the audit log")
        event = found[0]
        if not _of_visible_request(services, session, event, actor):
            require_oversight(services, actor, EVENTS)
        return event, services.audit.inclusion(session, seq)


def _of_visible_request(services: Services, session: Session, event: Event, actor: Actor) -> bool:
    if event.request_id is None:
        return False
    row = session.get(RequestRow, event.request_id)
    return row is not None and may_see(services, session, row, actor)
