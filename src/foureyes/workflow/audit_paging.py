"""The audit log a page at a time, newest first, with stable "newer" and "older" cursors (the
console's audit page; `GET /v1/audit/events` keeps log order for tailing and export).

A cursor is the seq of the event at a page's edge, as the page gave it out: `older` lists the
events before the oldest shown, `newer` those after the newest shown. The log is append-only,
so a page never shifts under its reader as events arrive: new events only make a "newer" page
appear. A cursor this server could not have given out (not a plain seq, or past the end of the
log) is refused with BadCursor (400), whatever the filters: nothing is read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from foureyes.audit.log import Event
from foureyes.core.services import Actor, Services
from foureyes.errors import BadCursor
from foureyes.workflow.access import require_oversight
from foureyes.workflow.audit_reads import EVENTS, EventFilter, audit_events

__all__ = ["EventPage", "audit_page", "cursor_seq"]

MAX_CURSOR = 18  # digits: beyond any log's size, and within a SQL bigint


@dataclass(frozen=True)
class EventPage:
    """Events newest first; `newer`/`older`: the cursors of the pages beside it (None: none)."""

    items: list[Event]
    newer: str | None
    older: str | None


def cursor_seq(services: Services, cursor: str) -> int:
    """The seq a cursor names; BadCursor unless it is one this log could have given out."""
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= MAX_CURSOR):
        raise BadCursor("the cursor is not one this server gave out")
    seq = int(cursor)
    with services.database.transaction() as session:
        size = services.audit.size(session)
    if seq >= size:
        raise BadCursor("the cursor is not one this server gave out")
    return seq


def audit_page(
    services: Services,
    actor: Actor,
    filters: EventFilter,
    *,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> EventPage:
    """Up to `filters.limit` events matching `filters`, newest first: the latest ones, or those
    just before `older_than` or just after `newer_than` (one cursor at most: BadCursor with
    both). Forbidden unless `actor` oversees, before any cursor is looked at."""
    require_oversight(services, actor, EVENTS)
    if older_than is not None and newer_than is not None:
        raise BadCursor("give one cursor: older or newer, not both")
    size = filters.limit
    before = cursor_seq(services, older_than) if older_than is not None else None
    after = cursor_seq(services, newer_than) if newer_than is not None else None
    one_more = replace(filters, limit=size + 1, after_seq=None, before_seq=None)
    if after is not None:
        found = audit_events(services, actor, replace(one_more, after_seq=after))
        items = list(reversed(found[:size]))
        more_newer, more_older = len(found) > size, _any(services, actor, filters, before=after + 1)
    else:
        found = audit_events(
            services, actor, replace(one_more, before_seq=before, newest_first=True)
        )
        items = found[:size]
        more_older = len(found) > size
        more_newer = before is not None and _any(services, actor, filters, after=before - 1)
    return EventPage(
        items=items,
        newer=str(items[0].seq) if items and more_newer else None,
        older=str(items[-1].seq) if items and more_older else None,
    )


def _any(
    services: Services,
    actor: Actor,
    filters: EventFilter,
    *,
    before: int | None = None,
    after: int | None = None,
) -> bool:
    """Whether an event matching `filters` lies before (or after) that seq."""
    probe = replace(filters, limit=1, before_seq=before, after_seq=after, newest_first=False)
    return bool(audit_events(services, actor, probe))
