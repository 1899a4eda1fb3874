"""What the console's inbox says besides its cards: how many requests wait for the reader (the
unread badge), and, when requests by people they manage are kept from them, why.

Both read only what `foureyes.workflow.access` lets the reader act on, and say no more: the
manager's note gives a count and the rules, never which request, account or action."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from foureyes.core.services import Actor, Services
from foureyes.model import Outcome, RequestState
from foureyes.store.tables import RequestRow, StaffRow
from foureyes.workflow.access import may_review_now, visible_clause
from foureyes.workflow.subject import redecide

__all__ = ["ManagerNote", "manager_note", "waiting"]

# The badge counts up to this many ("20+" beyond): each row is a policy question.
BADGE_CAP = 20
_SCAN = 200


def waiting(services: Services, actor: Actor) -> tuple[int, bool]:
    """How many pending requests `actor` may approve now (up to BADGE_CAP), and whether more
    wait: the inbox's unread badge (what `list_requests(reviewable=True)` would list)."""
    query = (
        select(RequestRow)
        .where(RequestRow.state == RequestState.PENDING.value, RequestRow.requester_id != actor.id)
        .order_by(RequestRow.created_at.desc())
        .limit(_SCAN)
    )
    visible = visible_clause(services, actor)
    if visible is not None:
        query = query.where(visible)
    count = 0
    with services.database.read() as session:
        for row in session.scalars(query):
            if may_review_now(services, session, row, actor):
                count += 1
                if count > BADGE_CAP:
                    return BADGE_CAP, True
    return count, False


@dataclass(frozen=True)
class ManagerNote:
    """Requests by people the reader manages that they may not approve, because a rule's
    approvers exclude the requester's manager: how many, and which rules say so."""

    count: int
    rules: tuple[str, ...]


def manager_note(services: Services, actor: Actor) -> ManagerNote | None:
    """Why requests by `actor`'s reports are not in their inbox, or None when none are kept
    from them that way. Counts pending requests whose requester's manager is `actor`, that
    `actor` may not approve, and whose approvers' condition names `requester.manager`."""
    query = (
        select(RequestRow)
        .join(StaffRow, StaffRow.id == RequestRow.requester_id)
        .where(RequestRow.state == RequestState.PENDING.value, StaffRow.manager == actor.id)
        .limit(_SCAN)
    )
    count = 0
    rules: set[str] = set()
    with services.database.read() as session:
        for row in session.scalars(query):
            if may_review_now(services, session, row, actor):
                continue
            decision = redecide(services, session, row, services.clock())
            if decision.outcome != Outcome.PENDING:
                continue
            why = {f.rule for f in decision.factors if "requester.manager" in (f.approvers or "")}
            if why:
                count += 1
                rules |= why
    return ManagerNote(count, tuple(sorted(rules))) if count else None
