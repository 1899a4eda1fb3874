"""A person's own "away": dates when they are not notified nor counted as reachable.

`set_away` and `clear_away` change only the caller's own record, each with its audit event
(`staff.away_set`, `staff.away_cleared`) in the same transaction. Nobody sets another person
away: that would silence them (a security lead marked away hears of no request), so there is
no parameter for whom, and an operation asked for someone else is Forbidden. No governed action
is offered for it either: someone truly absent is simply not reachable, which routing already
reports (`foureyes.workflow.routing`), and a person who leaves is suspended through
`foureyes.staff.update`, a governed action.

A delegate is a colleague who gets the away person's notifications about a request only when
they are an eligible approver of that request anyway (checked per request, by the engine,
when the message is routed). Being named delegate gives nothing else: approving power and what
a person may see are computed from the policy alone, never from this table.
"""

from __future__ import annotations

from datetime import date, timedelta

from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Forbidden, NotFound
from foureyes.model import StaffStatus
from foureyes.store.away import Away, away_from_row, away_on
from foureyes.store.tables import StaffAwayRow, StaffRow

__all__ = ["MAX_AWAY", "Away", "away_on", "clear_away", "my_away", "set_away"]

MAX_AWAY = timedelta(days=366)  # a longer absence is a staff change, not an "away"


def _only_self(actor: Actor, staff_id: str | None) -> None:
    if staff_id is not None and staff_id != actor.id:
        raise Forbidden(
            "a person marks only themselves away: setting someone else away would silence them"
        )


def set_away(
    services: Services,
    actor: Actor,
    starts: date,
    ends: date,
    delegate: str | None = None,
    *,
    staff_id: str | None = None,
) -> Away:
    """Mark the caller away from `starts` to `ends` (inclusive), optionally naming a delegate
    for their notifications. Replaces any earlier away. `staff_id` other than the caller's:
    Forbidden. Bad dates, an unknown or inactive delegate, or oneself as delegate: BadInput."""
    _only_self(actor, staff_id)
    if ends < starts:
        raise BadInput("away `until` is before `from`")
    if ends - starts > MAX_AWAY:
        raise BadInput("away for more than a year: ask for a staff change instead")
    if delegate is not None and delegate == actor.id:
        raise BadInput("a delegate is someone else")
    with services.database.transaction() as session:
        now = services.clock()
        if ends < now.date():
            raise BadInput("away `until` is in the past")
        if delegate is not None:
            person = session.get(StaffRow, delegate)
            if person is None:
                raise NotFound(f"no staff member {delegate!r} to delegate to")
            if person.status != StaffStatus.ACTIVE.value:
                raise BadInput(f"{delegate} is not active: choose another delegate")
        row = session.get(StaffAwayRow, actor.id)
        if row is None:
            row = StaffAwayRow(staff_id=actor.id)
            session.add(row)
        row.starts, row.ends, row.delegate_id, row.set_at = starts, ends, delegate, now
        away = Away(actor.id, starts, ends, delegate)
        record(
            services,
            session,
            kind="staff.away_set",
            actor=actor.id,
            row=None,
            payload={"identity": actor.identity, **away.to_dict()},
            now=now,
        )
    return away


def clear_away(services: Services, actor: Actor, *, staff_id: str | None = None) -> bool:
    """End the caller's away; whether there was one (an event only then)."""
    _only_self(actor, staff_id)
    with services.database.transaction() as session:
        row = session.get(StaffAwayRow, actor.id)
        if row is None:
            return False
        now = services.clock()
        session.delete(row)
        record(
            services,
            session,
            kind="staff.away_cleared",
            actor=actor.id,
            row=None,
            payload={"identity": actor.identity, "staff": actor.id},
            now=now,
        )
    return True


def my_away(services: Services, actor: Actor) -> Away | None:
    """The caller's away record, if any (also one that has not started yet)."""
    with services.database.transaction() as session:
        row = session.get(StaffAwayRow, actor.id)
        return None if row is None else away_from_row(row)
