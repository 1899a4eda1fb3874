"""Routing a pending request to people: who can be reached, who is told, and which requests on
the same account wait for each other.

Everything here reads eligibility from the engine (`engine.satisfied`, with the request's
submission time, so escalation counts as it does at review and execution) and changes none of
it: being away or a delegate never makes anyone able (or unable) to approve.

- `reachability`: whether the people who could approve (the escalation groups counted), less
  those away, can satisfy every factor (distinct people, requester excluded): the engine is
  asked whether their approvals would be enough. A request they cannot satisfy is flagged at
  submission (`flag_unreachable`: an alert, and the request's `routing` field), not found out
  when it expires; and again by the worker's reminder pass whenever the policy, the day, who is
  away or the directory changed (`routing_stamp`, `reflag_unreachable`: a request that became
  unreachable after its submission is flagged to oversight then).
- Who is told (`foureyes.notify.recipients`): candidates not away, and delegates eligible anyway.
- `one pending per account` (the policy's `one_pending_per_account`, `foureyes.workflow.holds`):
  `guard_one_pending` at a request's submission and `guard_batch` at a batch's (under the
  accounts' locks on PostgreSQL: concurrent submissions are ordered), `refuse_while_held` at
  approval, `view` after. A pending request or batch is named (id, action, requester, time) only
  to a reader who may see it (`foureyes.workflow.access`, `batch_views`); to anyone else it is
  "another request pending on this account", nothing more (M2 of the routing attack run).

Reachability asks the engine about every active person: it is computed at submission and on a
read only when something it depends on changed since (the decision, the directory's latest
seal, who is away today, the day), and remembered in this process (`_REMEMBERED`), so reading
a pending request again costs no pass over the directory.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foureyes.core import alert_log
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Actor, Services
from foureyes.errors import Conflict
from foureyes.model import Outcome, RequestState, Review, ReviewDecision, Staff
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store import page_memo
from foureyes.store.away import away_on
from foureyes.store.queries import everyone
from foureyes.store.tables import AlertRow, BatchRow, EventRow, RequestRow
from foureyes.workflow import batch_views, holds
from foureyes.workflow.access import may_see
from foureyes.workflow.holds import Pending, held_by
from foureyes.workflow.subject import redecide

__all__ = [
    "ANOTHER",
    "Reach",
    "flag_unreachable",
    "guard_batch",
    "guard_one_pending",
    "held_by",
    "reachability",
    "reflag_unreachable",
    "refuse_while_held",
    "routing_stamp",
    "view",
]

UNREACHABLE_DETECTOR = "unreachable_approvers"
# What a reader is told of a pending request or batch they may not see: that it exists, no more.
ANOTHER = "another request is pending on this account"
_REMEMBER = 2048  # reachability answers kept (per process)


@dataclass(frozen=True)
class Reach:
    """Whether a pending request can be approved by people reachable now, and why not."""

    reachable: bool
    reason: str | None
    away: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"reachable": self.reachable, "reason": self.reason, "away": list(self.away)}


def _active(session: Session) -> list[Staff]:
    return everyone(session, active_only=True)


def _latest(decision: Decision, submitted: datetime, now: datetime) -> datetime:
    """A moment when every escalation of `decision` has begun (now, if later)."""
    afters = [r.escalation.after for r in decision.factor_rules if r.escalation is not None]
    return max(now, submitted + max(afters, default=timedelta(0)))


def _enough(
    decision: Decision, people: Sequence[Staff], submitted: datetime, at: datetime
) -> tuple[bool, tuple[str, ...]]:
    """Whether approvals by all of `people` at `at` would satisfy `decision` (the engine's
    own count: distinct people, requester excluded, `exclude` and escalation applied)."""
    reviews = [Review(person, ReviewDecision.APPROVE, at=at) for person in people]
    status = satisfied(decision, reviews, today=at.date(), submitted=submitted, now=at)
    return status.satisfied, status.reasons


class _Remembered:
    """Reachability answers by what they depend on (a bounded, thread-safe LRU)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: OrderedDict[Hashable, Reach] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Reach | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: Hashable, reach: Reach) -> None:
        with self._lock:
            self._found[key] = reach
            self._found.move_to_end(key)
            while len(self._found) > self._size:
                self._found.popitem(last=False)


_REMEMBERED = _Remembered(_REMEMBER)


def _directory_stamp(session: Session) -> int | None:
    """The seq of the directory's latest seal: every change foureyes makes to a person (their
    record, their logins) appends one (`foureyes.store.seals`), so a new one means a change.
    Read once per page (`page_memo`)."""
    return page_memo.recall(
        "directory-stamp",
        None,
        lambda: session.scalar(
            select(func.max(EventRow.seq)).where(
                EventRow.account_ref >= "foureyes:staff/", EventRow.account_ref < "foureyes:staff0"
            )
        ),
    )


def _key(decision: Decision, at: datetime, stamp: int | None, away: frozenset[str]) -> Hashable:
    """What a reachability answer depends on: the decision's factors and rules and the
    people and account its conditions see, the directory, who is away, and the day."""
    subject = json.dumps(decision.subject, sort_keys=True, default=str)
    rules = tuple(rule.id for rule in decision.factor_rules)
    factors = tuple((f.rule, f.approvals) for f in decision.factors)
    shape = (decision.policy_version, decision.requester, decision.action, decision.tier)
    return (shape, rules, factors, subject, stamp, away, at.date())


def reachability(session: Session, decision: Decision, submitted: datetime, now: datetime) -> Reach:
    """Whether the active people not away today could approve `decision` (see the module).
    `submitted`: when its escalation started counting (`holds.decidable_since`)."""
    if decision.outcome != Outcome.PENDING:
        return Reach(True, None)
    at = _latest(decision, submitted, now)
    away = away_on(session, now)
    # One process may serve several databases (tests do): keyed by the database's pool, which
    # its read and write sessions share (their binds differ: `Database.read`'s carries an option).
    bind = session.get_bind()
    where = (id(bind.engine.pool), str(bind.engine.url))
    key = (where, _key(decision, at, _directory_stamp(session), frozenset(away)))
    found = _REMEMBERED.get(key)
    if found is None:
        found = _reach(session, decision, submitted, at, away)
        _REMEMBERED.put(key, found)
    return found


def _reach(
    session: Session,
    decision: Decision,
    submitted: datetime,
    at: datetime,
    away: Mapping[str, object],
) -> Reach:
    people = _active(session)
    enough, reasons = _enough(decision, people, submitted, at)
    if not enough:
        return Reach(False, "nobody can approve it: " + "; ".join(reasons))
    present = [person for person in people if person.id not in away]
    enough, reasons = _enough(decision, present, submitted, at)
    if not enough:
        return Reach(
            False,
            "everyone who could approve it is away: " + "; ".join(reasons),
            _eligible_away(decision, [p for p in people if p.id in away], submitted, at),
        )
    return Reach(True, None)


def _eligible_away(
    decision: Decision, away: Sequence[Staff], submitted: datetime, at: datetime
) -> tuple[str, ...]:
    """Who of those away could approve `decision` (the engine's candidates): the only absences
    a request names (it is shown to its requester), never anyone else's, nor the requester's."""
    could = satisfied(decision, [], candidates=away, today=at.date(), submitted=submitted, now=at)
    named = {who for factor in could.factors for who in factor.candidates}
    return tuple(sorted(named - {decision.requester}))


def flag_unreachable(
    services: Services, session: Session, row: RequestRow, decision: Decision, now: datetime
) -> Reach:
    """At submission: an alert when nobody reachable can approve the request."""
    start = holds.escalation_start(services, session, row)
    reach = reachability(session, decision, start, now)
    if not reach.reachable:
        raise_alert(
            services,
            session,
            NewAlert(
                detector=UNREACHABLE_DETECTOR,
                severity="medium",
                summary=f"request {row.id} ({row.action}) cannot be approved by anyone "
                "reachable now",
                staff=row.requester_id,
                account=row.account_ref,
                request=row.id,
                details={"reason": reach.reason, "away": list(reach.away)},
            ),
            now=now,
        )
    return reach


def routing_stamp(services: Services, session: Session, now: datetime) -> Hashable:
    """What every pending request's reachability depends on beyond the request itself: the
    policy in force, the day, who is away (and their delegates), the directory's latest seal.
    The same stamp twice: no request's reachability changed in between."""
    version, _ = services.policy_in_force(session)
    away = frozenset(away_on(session, now).items())
    return (version, now.date(), away, _directory_stamp(session))


def reflag_unreachable(
    services: Services, session: Session, row: RequestRow, now: datetime
) -> Reach | None:
    """A pending request's reachability computed again (away, delegation, staff or policy
    changed since its submission): an alert for oversight when nobody reachable can approve
    it now, unless its latest `unreachable_approvers` alert already says so for the same
    reason. The Reach, or None for a request that is not pending under the policy in force."""
    decision = redecide(services, session, row, now)
    if row.state != RequestState.PENDING.value or decision.outcome != Outcome.PENDING:
        return None
    start = holds.escalation_start(services, session, row)
    reach = reachability(session, decision, start, now)
    if reach.reachable:
        return reach
    told = session.scalars(
        select(AlertRow)
        .where(AlertRow.request_id == row.id, AlertRow.detector == UNREACHABLE_DETECTOR)
        .order_by(AlertRow.id.desc())
        .limit(1)
    ).first()
    # Only an alert foureyes raised says so (a row written in silences nothing).
    latest = told.details if told is not None and alert_log.vouched(session, [told]) else None
    if isinstance(latest, dict) and latest.get("reason") == reach.reason:
        return reach  # oversight has been told, for this very reason
    return flag_unreachable(services, session, row, decision, now)


# --- one pending request per account ------------------------------------------------------


def _sees(services: Services, session: Session, pending: Pending, reader: Actor | None) -> bool:
    """Whether `reader` may see `pending` (None: the system's own view, which sees all)."""
    if reader is None:
        return True
    if pending.kind == "batch":
        batch = session.get(BatchRow, pending.id)
        return batch is not None and batch_views.may_see(services, session, batch, reader)
    row = session.get(RequestRow, pending.id)
    return row is not None and may_see(services, session, row, reader)


def _named(services: Services, session: Session, pending: Pending, reader: Actor | None) -> str:
    """`pending` as a message to `reader` names it: its id and action only if they may see it."""
    if _sees(services, session, pending, reader):
        return f"{pending.kind} {pending.id} ({pending.action})"
    return "another request"


def guard_one_pending(
    services: Services,
    session: Session,
    policy: Policy,
    actor: Actor,
    action: str,
    account_ref: str,
    outcome: Outcome,
) -> None:
    """At a request's submission, in its transaction, before it is recorded: take the
    account's lock; in `refuse` mode, Conflict when something covered is pending on the
    account (a request, or a pending batch's item), named only if `actor` may see it."""
    spec = holds.spec_for(policy, action)
    if spec is None or outcome != Outcome.PENDING:
        return
    holds.lock(session, account_ref)
    if spec.mode != "refuse":
        return
    pending = holds.queue(session, spec, account_ref)
    if pending:
        named = _named(services, session, pending[0], actor)
        raise Conflict(
            f"{named} is already pending on {account_ref}: the policy allows one at a time "
            "(one_pending_per_account); ask again once it is decided"
        )


class BatchBusy(Conflict):
    """A batch refused because some of its accounts have something pending (`accounts`)."""

    def __init__(self, message: str, *, accounts: list[str]) -> None:
        super().__init__(message, accounts=accounts)
        self.accounts = accounts


def guard_batch(
    services: Services,
    session: Session,
    policy: Policy,
    actor: Actor,
    action: str,
    accounts: Sequence[str],
) -> None:
    """At a batch's submission, in its transaction, before it is recorded: take its included
    accounts' locks (sorted: two batches never wait for each other in a cycle) and refuse it
    (Conflict, nothing recorded) when any of them has something covered pending, in either
    mode: a batch's item cannot wait alone (the batch is approved and run as one), and
    splitting it out would turn it into a request decided on another bar, so it is refused,
    naming the accounts; the requester leaves them out or asks again once they are decided."""
    spec = holds.spec_for(policy, action)
    if spec is None:
        return
    busy = []
    for account_ref in sorted(set(accounts)):
        holds.lock(session, account_ref)
        pending = holds.queue(session, spec, account_ref)
        if pending:
            busy.append(f"{account_ref}: {_named(services, session, pending[0], actor)}")
    if busy:
        raise BatchBusy(
            "the policy allows one pending request per account (one_pending_per_account) and "
            f"some of this batch's accounts already have one: {'; '.join(busy)}. Leave them "
            "out, or ask again once they are decided",
            accounts=[entry.partition(": ")[0] for entry in busy],
        )


def refuse_while_held(services: Services, session: Session, row: RequestRow, actor: Actor) -> None:
    """At approval: Conflict while `row` waits for something pending ahead of it on its
    account, named only if `actor` may see it."""
    _, policy = services.policy_in_force(session)
    first = held_by(session, policy, row)
    if first is not None:
        named = _named(services, session, first, actor)
        raise Conflict(
            f"this request waits for {named} on the same account to be decided first "
            "(one_pending_per_account)",
            request_id=row.id,
        )


def view(
    services: Services, session: Session, row: RequestRow, reader: Actor | None = None
) -> dict[str, object] | None:
    """A pending request's routing as `reader` may see it (None: the system's own view):
    whether anyone reachable can approve it; whether it waits (`held`) and for what
    (`held_by`, only if the reader may see that); the other pending requests and batches on its
    account the reader may see (id, kind, action, requester, when: nothing of their params or
    justification), and `others_pending` when there are some they may not see."""
    if row.state != RequestState.PENDING.value:
        return None
    now = services.clock()
    _, policy = services.policy_in_force(session)
    decision = redecide(services, session, row, now)
    start = holds.decidable_since(session, policy, row, now)
    spec = holds.spec_for(policy, row.action)
    queue = [] if spec is None else holds.queue(session, spec, row.account_ref)
    first = queue[0] if queue and queue[0].id != row.id else None
    shown: list[dict[str, object]] = []
    hidden, after = False, False
    for other in queue:
        if other.id == row.id:
            after = True
            continue
        if not _sees(services, session, other, reader):
            hidden = True
            continue
        shown.append(
            {
                "id": other.id,
                "kind": other.kind,
                "action": other.action,
                "requester": other.requester,
                "created_at": other.created_at.isoformat(),
                "waits_for_this": after,
            }
        )
    visible_first = first is not None and any(p["id"] == first.id for p in shown)
    return {
        **reachability(session, decision, start, now).to_dict(),
        "held": first is not None,
        "held_by": first.id if first is not None and visible_first else None,
        "held_by_kind": first.kind if first is not None and visible_first else None,
        "pending_on_account": shown,
        "others_pending": ANOTHER if hidden else None,
    }
