"""Reminder rounds and escalation notices for pending requests, run by the worker.

A rule's `escalate: {after, to, remind_every}`: while a request is pending and undecided, its
reviewers are reminded every `remind_every` (round k is due at start + k x remind_every,
k >= 1), and when `after` has passed the people who may now approve (the escalation group
included, `foureyes.policy.engine.satisfied`) are told once, as `review.escalated` (round 0;
-1, -2, ... for later `after`s of other factors), before any later reminder: a reminder round
due no later than the escalation notice is folded into it, so the escalation group's first
message is always the escalation notice. The start is when the request became decidable
(`foureyes.workflow.holds.decidable_since`: its submission, or when the request it waited for
was decided), from the services' clock, never from a timer in a web process.

Each round happens once: it is a `request_reminders` row (primary key: request, round) written
in the same transaction as its outbox messages, under the request's row lock. A worker that
restarts, or a second worker, finds the row and sends nothing again. A worker that was down
for several rounds sends the latest one only. Who is told is `foureyes.notify.recipients`:
people away are not, a delegate only where eligible anyway. A request that waits for another
on its account (`one_pending_per_account`) is not approvable yet: no reminder.

Each pass first computes the pending requests' reachability again when the policy, the day,
who is away or the directory changed since the last (`reflag_unreachable`): a request that
nobody reachable can approve any more is flagged to oversight (an `unreachable_approvers`
alert) then, not only at its submission.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Collection, Hashable, Iterator
from datetime import datetime

from sqlalchemy import select

from foureyes.core import redaction
from foureyes.core.events import lock_request
from foureyes.core.services import Services
from foureyes.errors import RecordAltered, Unavailable
from foureyes.model import Outcome, RequestState
from foureyes.notify import hooks as notify_hooks
from foureyes.policy.decision import Decision
from foureyes.store.database import Database
from foureyes.store.tables import ReminderRow, RequestRow
from foureyes.workflow import holds, routing
from foureyes.workflow.approvals import engine_reviews, review_rows
from foureyes.workflow.subject import redecide

__all__ = ["ESCALATED_ROUND", "due_round", "reflag_unreachable", "remind_due"]

log = logging.getLogger(__name__)
ESCALATED_ROUND = 0  # the notice that the escalation group may now approve
PAGE = 100


def due_round(
    decision: Decision, start: datetime, now: datetime, sent: Collection[int] = ()
) -> int | None:
    """The round due at `now` for a request decidable since `start`, given the rounds already
    `sent`: first any escalation notice whose `after` has passed and was not sent (0 for the
    earliest `after`, -1 for the next, ...), else the latest reminder round k (>= 1) of the
    shortest `remind_every` when it falls after every escalation notice due, else None."""
    escalations = [r.escalation for r in decision.factor_rules if r.escalation is not None]
    if not escalations:
        return None
    elapsed = now - start
    afters = sorted({e.after for e in escalations})
    for j, after in enumerate(afters):
        if elapsed >= after and ESCALATED_ROUND - j not in sent:
            return ESCALATED_ROUND - j
    periods = [e.remind_every for e in escalations if e.remind_every is not None]
    if not periods:
        return None
    period = min(periods)
    k = elapsed // period
    told = [after for after in afters if elapsed >= after]
    if k >= 1 and (not told or k * period > max(told)):
        return int(k)
    return None


def _pending(services: Services) -> Iterator[str]:
    """Every pending request id, page by page (keyset, one transaction per page)."""
    after = ""
    while True:
        with services.database.transaction() as session:
            ids = list(
                session.scalars(
                    select(RequestRow.id)
                    .where(RequestRow.state == RequestState.PENDING.value, RequestRow.id > after)
                    .order_by(RequestRow.id)
                    .limit(PAGE)
                )
            )
        yield from ids
        if len(ids) < PAGE:
            return
        after = ids[-1]


# Per database: the routing stamp of the last reachability sweep that went through (weakly
# keyed: a database closed and another opened, as tests do, is never taken for it).
_SWEPT: weakref.WeakKeyDictionary[Database, Hashable] = weakref.WeakKeyDictionary()


def reflag_unreachable(services: Services) -> list[str]:
    """Compute every pending request's reachability again when anything it depends on changed
    since the last sweep (`routing.routing_stamp`: the policy, the day, who is away, the
    directory), flagging to oversight each one nobody reachable can approve any more
    (`routing.reflag_unreachable`). The ids flagged or found unreachable."""
    where = services.database
    with services.database.read() as session:
        stamp = routing.routing_stamp(services, session, services.clock())
    if _SWEPT.get(where) == stamp:
        return []  # nothing any request's reachability depends on changed
    unreachable = []
    for request_id in _pending(services):
        try:
            reach = _reflag_one(services, request_id)
        except RecordAltered:
            continue  # reported (`sealing.report`); the request is refused where it is used
        except Unavailable:
            raise  # the database is down: the next pass retries
        except Exception:  # one request must not stop the others' (nor the reminders)
            log.exception("reachability of request %s not computed again", request_id)
            continue
        if reach is not None and not reach.reachable:
            unreachable.append(request_id)
    _SWEPT[where] = stamp
    return unreachable


def _reflag_one(services: Services, request_id: str) -> routing.Reach | None:
    with services.database.transaction() as session:
        row = lock_request(session, request_id, skip_locked=True)
        if row is None:
            return None  # another worker has it
        return routing.reflag_unreachable(services, session, row, services.clock())


def remind_due(services: Services) -> list[str]:
    """One pass: send each pending request's due round, once. Answers `request_id:round` of
    the rounds sent. Reachability is computed again first when it may have changed
    (`reflag_unreachable`)."""
    with services.database.read() as session:
        try:
            _, policy = services.policy_in_force(session)
        except Unavailable:
            return []  # no policy loaded yet: nothing can be pending, nothing to remind
    try:
        reflag_unreachable(services)
    except Unavailable:
        raise  # the database is down: the next pass retries
    except Exception:  # reachability must not stop the reminders
        log.exception("pending requests' reachability not computed again")
    if not any(rule.escalation is not None for rule in policy.rules):
        return []  # nothing escalates: no request to look at (the common case, at no cost)
    sent = []
    for request_id in _pending(services):
        try:
            done = _remind_one(services, request_id)
        except Unavailable:
            raise  # the database is down: the next pass retries
        except Exception:  # one request must not stop the reminders of every other
            log.exception("no reminder for request %s", request_id)
            continue
        if done is not None:
            sent.append(done)
    return sent


def _remind_one(services: Services, request_id: str) -> str | None:
    """The due round of one request, if not sent yet: `request_id:round`, or None."""
    with services.database.transaction() as session:
        row = lock_request(session, request_id, skip_locked=True)
        if row is None or row.state != RequestState.PENDING.value:
            return None  # another worker has it, or it moved on
        now = services.clock()
        decision = redecide(services, session, row, now)
        if decision.outcome != Outcome.PENDING:
            return None
        _, policy = services.policy_in_force(session)
        if holds.held_by(session, policy, row) is not None:
            return None  # not approvable yet: nobody is asked
        start = holds.decidable_since(session, policy, row, now)
        sent = set(
            session.scalars(select(ReminderRow.round).where(ReminderRow.request_id == row.id))
        )
        round_ = due_round(decision, start, now, sent)
        if round_ is None or round_ in sent:
            return None
        session.add(ReminderRow(request_id=row.id, round=round_, sent_at=now))
        notify_hooks.request_needs_review(
            session,
            row,
            decision,
            now,
            params=redaction.notified_params(services, session, row),
            reviews=engine_reviews(
                services, session, review_rows(session, row.id), step_up=decision.options.step_up
            ),
            kind="review.escalated" if round_ <= ESCALATED_ROUND else "review.reminder",
            submitted=start,
        )
        return f"{row.id}:{round_}"
