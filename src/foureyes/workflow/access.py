"""Need-to-know reads: who may see a request, and who may read the audit log's events.

The threat is the malicious insider (a bribed contractor; support staff phished for their
login): staff see what they take part in, and oversight staff watch everyone.

A request is **visible** to a person when, checked in this order:

1. they oversee (`Services.oversees`: in one of the settings' `oversight_groups`);
2. they asked for it (the requester);
3. they took part in it: an audit event of the request *of a kind that records taking part*
   (`PARTICIPATION`: a review, a post-review, a decision their review settled, a cancellation,
   an execution they started, an undo they asked for) names them as its actor. Other events
   naming someone (a ticket re-check made for a step, and anything written for an attempt that
   was refused) never make them a participant;
4. they may act on it now as a colleague: review it (pending, and their approval would count
   for a factor), cancel it while its delay runs (scheduled, and eligible to review it), or
   sign off a break-glass execution (eligible under the rules the break-glass skipped).
   "Eligible" is always under a `require` rule that matches the request *now*
   (`eligible_approver`): a decision that is not pending has no approvers at all, so a
   request an `allow` rule schedules with a `delay`, or one the policy in force now denies,
   is for nobody under rule 4 (the requester and oversight staff still see it).

To anyone else a request does not exist: reading it, and every action on it, answers the same
NotFound as an unknown id (`visible_request`), so that no refusal gives away that it exists,
its state or its action. Rule 4 holds only while it lasts: a colleague who never took part
stops seeing a request once it moves on (a reviewer who loses a race to the requester's cancel
is answered 404, not 409). The audit log's *events* (who did what to whom, with justifications
and parameters' digests) are for oversight staff (`require_oversight`); its checkpoints and
proofs are hashes, open to all staff so that anyone can verify the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from foureyes.audit.copies import body_at
from foureyes.audit.log import stored_bytes
from foureyes.config import OVERSIGHT_GROUPS
from foureyes.core import found_events, request_index
from foureyes.core.services import Actor, Services
from foureyes.errors import Forbidden, NotFound
from foureyes.model import Outcome, RequestState, Review, ReviewDecision
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store import page_memo
from foureyes.store.bulk import one_of
from foureyes.store.tables import EventRow, RequestRow
from foureyes.store.tree import in_tree
from foureyes.workflow import holds
from foureyes.workflow.approvals import prefetch_reviews, review_rows
from foureyes.workflow.subject import redecide

__all__ = [
    "OVERSIGHT_GROUPS",
    "PARTICIPATION",
    "eligible_approver",
    "may_review_now",
    "may_see",
    "participant",
    "prefetch",
    "require_oversight",
    "reviewable_in_page",
    "stored",
    "stored_many",
    "took_part",
    "unknown_request",
    "visible_clause",
    "visible_request",
]

# The events of a request that record its actor taking part in it (rule 3). Anything else
# (`request.ticket_checked`, evidence of a refusal, an alert) does not: only a step the
# person was allowed to take, and took, makes them a participant.
PARTICIPATION = frozenset(
    {
        "request.submitted",
        "review.recorded",
        "break_glass.post_review",
        "request.approved",
        "request.denied",
        "request.vetoed",
        "request.cancelled",
        "request.executing",
        "request.reverted",
    }
)

# States in which a colleague who has not taken part may still act on a request (review it;
# cancel it while its delay runs). A break-glass request may be post-reviewed in any state.
_ACTIONABLE = (RequestState.PENDING.value, RequestState.SCHEDULED.value)


def require_oversight(services: Services, actor: Actor, what: str) -> None:
    """Forbidden (naming the groups) unless `actor` oversees; `what` names what they asked
    for, e.g. "alerts" → "alerts are for staff in leads or security"."""
    if not services.oversees(actor.staff):
        groups = " or ".join(sorted(services.oversight_groups))
        raise Forbidden(f"{what} are for staff in {groups}")


def unknown_request(request_id: str) -> NotFound:
    """The one answer for a request that does not exist *or* that the reader may not see."""
    return NotFound(f"no request {request_id!r}")


def took_part(actor: Actor) -> ColumnElement[bool]:
    """SQL: the actor asked for the request, or an event of it names them as its actor."""
    return or_(
        RequestRow.requester_id == actor.id,
        exists(
            select(EventRow.seq).where(
                EventRow.request_id == RequestRow.id,
                EventRow.actor == actor.id,
                EventRow.kind.in_(PARTICIPATION),
                in_tree(),
            )
        ),
    )


def visible_clause(services: Services, actor: Actor) -> ColumnElement[bool] | None:
    """SQL that keeps every request `actor` may see and, besides, only requests they might be
    able to act on (to be checked with `may_see`); None when they oversee (no filter). Rows
    this clause keeps because they are actionable still need `may_see`, a policy question."""
    if services.oversees(actor.staff):
        return None
    return or_(
        took_part(actor),
        RequestRow.state.in_(_ACTIONABLE),
        RequestRow.break_glass.is_(True),
    )


def may_see(services: Services, session: Session, row: RequestRow, actor: Actor) -> bool:
    """Whether `actor` may see the request (the rules in this module's docstring)."""
    if services.oversees(actor.staff) or row.requester_id == actor.id:
        return True
    if _has_event_by(session, row.id, actor.id):
        return True
    return _may_act_now(services, session, row, actor)


def stored(session: Session, request_id: str) -> RequestRow | None:
    """The request's row (None if there is none), read once per page (`page_memo`)."""
    return page_memo.recall("request-row", request_id, lambda: session.get(RequestRow, request_id))


def stored_many(
    services: Services, session: Session, request_ids: Sequence[str], actor: Actor
) -> list[RequestRow]:
    """The rows of `request_ids`, in that order (any that no longer exists left out): inside a
    page (`page_memo`), those the page has read already as it read them, the others in one
    statement, remembered, and what deciding them reads read with them (`prefetch`)."""
    held = {i: page_memo.peek("request-row", i) for i in request_ids}
    missing = [i for i, row in held.items() if not isinstance(row, RequestRow)]
    if missing:
        read = list(
            session.scalars(select(RequestRow).where(one_of(session, RequestRow.id, missing)))
        )
        for row in read:
            page_memo.remember("request-row", row.id, row)
            held[row.id] = row
        prefetch(services, session, read, actor)
    return [row for row in held.values() if isinstance(row, RequestRow)]


def reviewable_in_page(request_id: str, actor: Actor) -> RequestRow | None:
    """Inside a page (`page_memo`): the request's row when the page has already found that
    `actor` may review it now (so may see it); None otherwise (ask as usual). Lets a card
    skip a transaction that would only read what the page holds."""
    row = page_memo.peek("request-row", request_id)
    if isinstance(row, RequestRow) and page_memo.peek("may-review", (row.id, row.state, actor.id)):
        return row
    return None


def visible_request(
    services: Services, session: Session, row: RequestRow | None, request_id: str, actor: Actor
) -> RequestRow:
    """`row` if `actor` may see it; otherwise the same NotFound as for an unknown id."""
    if row is None or not may_see(services, session, row, actor):
        raise unknown_request(request_id)
    return row


def may_review_now(services: Services, session: Session, row: RequestRow, actor: Actor) -> bool:
    """Whether `actor` may still approve this request now: pending, not theirs, not yet
    reviewed by them, and their approval would count for some factor (once per page)."""
    return page_memo.recall(
        "may-review",
        (row.id, row.state, actor.id),
        lambda: _may_review(services, session, row, actor),
    )


def prefetch(
    services: Services, session: Session, rows: Sequence[RequestRow], actor: Actor
) -> None:
    """Inside a page (`page_memo`), what deciding who may see and review these requests reads,
    in one statement per kind for all of them: the accounts' pins, the reviews, whether `actor`
    took part in each (and the directory and the policy, read once)."""
    if not page_memo.active() or not rows:
        return
    ids = [row.id for row in rows]
    if any(row.state == RequestState.PENDING.value for row in rows):
        services.prefetch_directory(session)  # what deciding and viewing them reads anyway
    services.prefetch_pins(session, ids)
    prefetch_reviews(session, ids)
    bodies: dict[str, dict[int, bytes]] = {request_id: {} for request_id in ids}
    for request_id, seq, raw in session.execute(
        select(EventRow.request_id, EventRow.seq, EventRow.body).where(
            one_of(session, EventRow.request_id, ids), EventRow.kind.in_(PARTICIPATION), in_tree()
        )
    ):
        bodies[str(request_id)][int(seq)] = stored_bytes(raw)
    for request_id, found in bodies.items():
        page_memo.remember("participants", request_id, _taking_part(session, request_id, found))


def _may_review(services: Services, session: Session, row: RequestRow, actor: Actor) -> bool:
    if row.state != RequestState.PENDING.value or row.requester_id == actor.id:
        return False
    if any(r.reviewer_id == actor.id for r in review_rows(session, row.id)):
        return False
    decision = redecide(services, session, row, services.clock())
    return eligible_approver(decision, actor, submitted=_start(services, session, row))


def _may_act_now(services: Services, session: Session, row: RequestRow, actor: Actor) -> bool:
    if row.state == RequestState.PENDING.value:
        return may_review_now(services, session, row, actor)
    if row.state == RequestState.SCHEDULED.value:
        # While the delay runs anyone eligible to review it may cancel it (review.cancel).
        decision = redecide(services, session, row, services.clock())
        return eligible_approver(decision, actor, submitted=_start(services, session, row))
    if row.break_glass:
        # Post-reviewers are eligible approvers under the rules the break-glass skipped.
        normal = redecide(services, session, row, services.clock(), break_glass=False)
        return eligible_approver(normal, actor, submitted=_start(services, session, row))
    return False


def _start(services: Services, session: Session, row: RequestRow) -> datetime:
    """When the request's escalation started counting (`holds.decidable_since`)."""
    return holds.escalation_start(services, session, row)


def eligible_approver(
    decision: Decision, actor: Actor, *, submitted: datetime | None = None
) -> bool:
    """Whether an approval by `actor` would count for some factor of `decision`: False for a
    decision that is not pending. `satisfied` ignores nobody when there are no factors (an
    allowed or denied decision), so "not ignored" alone would make everyone eligible.
    `submitted`: the request's submission, from which its escalation runs (engine.satisfied)."""
    if decision.outcome != Outcome.PENDING:
        return False
    probe = satisfied(decision, [Review(actor.staff, ReviewDecision.APPROVE)], submitted=submitted)
    return not any(who == actor.id for who, _ in probe.ignored)


def _has_event_by(session: Session, request_id: str, staff_id: str) -> bool:
    return staff_id in page_memo.recall(
        "participants", request_id, lambda: _participants(session, request_id)
    )


def _participants(session: Session, request_id: str) -> frozenset[str]:
    """The actors of the request's participation events, as their bodies say (the columns are
    copies a DBA can edit unnoticed: relabelling another event as a review by someone made
    them a participant). Read by the request alone (a few events): a look-up by the actor too
    let SQLite's planner walk the actor's index, every event that person ever acted in, for
    each request they open."""
    found = session.execute(
        select(EventRow.seq, EventRow.body).where(
            EventRow.request_id == request_id, EventRow.kind.in_(PARTICIPATION), in_tree()
        )
    )
    return _taking_part(session, request_id, {int(seq): stored_bytes(raw) for seq, raw in found})


def _taking_part(session: Session, request_id: str, found: dict[int, bytes]) -> frozenset[str]:
    """Who took part, from the participation events the columns `found` (seq to body) and
    those this process's index of the bodies adds (`core.request_index`: a review whose
    request or kind column was changed still counts, attack led7-F4)."""
    since = found_events.submission_of(session, request_id, found)
    if since is not None:
        more = request_index.hidden(session, request_id, since, found, PARTICIPATION)
        found = {**found, **more.bodies}
    people = (participant(seq, raw, request_id) for seq, raw in found.items())
    return frozenset(who for who in people if who is not None)


def participant(seq: int, raw: bytes, request_id: str) -> str | None:
    """The actor of a participation event of `request_id`, as its body says (None if the body
    says it is another event, another request's, not one recording taking part, or no one's)."""
    body = body_at(seq, raw)
    if body is None or body.get("request") != request_id or body.get("kind") not in PARTICIPATION:
        return None
    who = body.get("actor")
    return who if isinstance(who, str) and who else None
