"""What the console's inbox says besides its cards: how many requests wait for the reader (the
unread badge), and, when requests by people they manage are kept from them, why.

Both read only what `foureyes.workflow.access` lets the reader act on, and say no more: the
manager's note gives a count and the rules, never which request, account or action."""

from __future__ import annotations

from sqlalchemy import select

from foureyes.core.services import Actor, Services
from foureyes.model import RequestState
from foureyes.store import page_memo
from foureyes.store.tables import RequestRow, StaffRow
from foureyes.workflow.access import may_review_now, stored_many, visible_clause

__all__ = ["manager_note", "waiting"]

# The badge counts up to this many ("20+" beyond): each row is a policy question.
BADGE_CAP = 20
_SCAN = 200


def waiting(services: Services, actor: Actor) -> tuple[int, bool]:
    """How many pending requests `actor` may approve now (up to BADGE_CAP), and whether more
    wait: the inbox's unread badge (what `list_requests(reviewable=True)` would list)."""
    query = (
        select(RequestRow.id)
        .where(RequestRow.state == RequestState.PENDING.value, RequestRow.requester_id != actor.id)
        .order_by(RequestRow.created_at.desc())
        .limit(_SCAN)
    )
    visible = visible_clause(services, actor)
    if visible is not None:
        query = query.where(visible)
    count = 0
    with page_memo.page(), services.database.read() as session:
        ids = list(session.scalars(query))
        # On a page that listed them already (the inbox, the home page) the rows and what
        # deciding them needs are not read again, and each is decided once for both. The
        # first BADGE_CAP + 1 first: when they all wait for the reader, that is the answer.
        for part in (ids[: BADGE_CAP + 1], ids[BADGE_CAP + 1 :]):
            for row in stored_many(services, session, part, actor):
                if may_review_now(services, session, row, actor):
                    count += 1
                    if count > BADGE_CAP:
                        return BADGE_CAP, True
    return count, False


def manager_note(services: Services, actor: Actor) -> bool:
    """Whether to tell `actor` why requests by people they manage may wait for review without
    reaching their inbox: they manage someone, and a rule in force keeps a requester's manager
    from approving (its approvers condition reads `requester.manager`). It depends on nothing
    pending: a count or the rules that held a request back would tell a manager of requests
    that, to them, do not exist (the rule's name can say the account is very important)."""
    with services.database.read() as session:
        reports = select(StaffRow.id).where(StaffRow.manager == actor.id).limit(1)
        if session.scalar(reports) is None:
            return False
        _, policy = services.policy_in_force(session)
    return any(
        rule.approvers is not None
        and any(tuple(path[:2]) == ("requester", "manager") for path in rule.approvers.paths)
        for rule in policy.rules
    )
