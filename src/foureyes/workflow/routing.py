"""Routing a pending request to people: who can be reached, who is told, and which requests on
the same account wait for each other.

Everything here reads eligibility from the engine (`engine.satisfied`, with the request's
submission time, so escalation counts as it does at review and execution) and changes none of
it: being away or a delegate never makes anyone able (or unable) to approve.

- `reachability`: whether the people who could approve (the escalation groups counted), less
  those away, can satisfy every factor (distinct people, requester excluded): the engine is
  asked whether their approvals would be enough. A request they cannot satisfy is flagged at
  submission (`flag_unreachable`: an alert, and the request's `routing` field), not found out
  when it expires.
- Who is told (`foureyes.notify.recipients`): candidates not away, and delegates eligible anyway.
- `one pending per account` (the policy's `one_pending_per_account`): `guard_one_pending` at
  submission (under a per-account lock on PostgreSQL: two concurrent submissions are ordered),
  `held_by` and `peers` after.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import Conflict
from foureyes.model import Outcome, RequestState, Review, ReviewDecision, Staff
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.policy.schema import OnePendingSpec
from foureyes.store.away import away_on
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import EventRow, QuotaLockRow, RequestRow, StaffRow
from foureyes.workflow.subject import redecide

__all__ = [
    "ONE_PENDING_LOCK",
    "Reach",
    "flag_unreachable",
    "guard_one_pending",
    "held_by",
    "peers",
    "reachability",
    "view",
]

UNREACHABLE_DETECTOR = "unreachable_approvers"
# The lock row's "quota" name for the per-account lock: no quota id can start with "#".
ONE_PENDING_LOCK = "#one_pending_per_account"


@dataclass(frozen=True)
class Reach:
    """Whether a pending request can be approved by people reachable now, and why not."""

    reachable: bool
    reason: str | None
    away: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"reachable": self.reachable, "reason": self.reason, "away": list(self.away)}


def _active(session: Session) -> list[Staff]:
    rows = session.scalars(select(StaffRow).where(StaffRow.status == "active"))
    return [staff_from_row(session, row) for row in rows]


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


def reachability(session: Session, decision: Decision, submitted: datetime, now: datetime) -> Reach:
    """Whether the active people not away today could approve `decision` (see the module)."""
    if decision.outcome != Outcome.PENDING:
        return Reach(True, None)
    at = _latest(decision, submitted, now)
    people = _active(session)
    enough, reasons = _enough(decision, people, submitted, at)
    if not enough:
        return Reach(False, "nobody can approve it: " + "; ".join(reasons))
    away = away_on(session, now)
    present = [person for person in people if person.id not in away]
    enough, reasons = _enough(decision, present, submitted, at)
    if not enough:
        eligible_away = sorted(
            person.id for person in people if person.id in away and person.id != decision.requester
        )
        return Reach(
            False,
            "everyone who could approve it is away: " + "; ".join(reasons),
            tuple(eligible_away),
        )
    return Reach(True, None)


def flag_unreachable(
    services: Services, session: Session, row: RequestRow, decision: Decision, now: datetime
) -> Reach:
    """At submission: an alert when nobody reachable can approve the request."""
    reach = reachability(session, decision, row.created_at, now)
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


# --- one pending request per account ------------------------------------------------------


def _covers(spec: OnePendingSpec, action: str) -> bool:
    if spec.actions == "all":
        return True
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in spec.actions)


def _lock(session: Session, account_ref: str) -> None:
    """Serialise submissions on one account (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises every writer)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        pg_insert(QuotaLockRow)
        .values(quota_id=ONE_PENDING_LOCK, key=account_ref)
        .on_conflict_do_nothing(index_elements=["quota_id", "key"])
    )
    session.execute(
        select(QuotaLockRow.quota_id)
        .where(QuotaLockRow.quota_id == ONE_PENDING_LOCK, QuotaLockRow.key == account_ref)
        .with_for_update()
    )


def _queue(session: Session, spec: OnePendingSpec, account_ref: str) -> list[RequestRow]:
    """The covered pending requests on an account in the order they were submitted: by the
    seq of their `request.submitted` events (the log orders appends; two requests recorded
    in the same instant are still one before the other)."""
    pending = [row for row in _pending_on(session, account_ref) if _covers(spec, row.action)]
    found = session.execute(
        select(EventRow.request_id, EventRow.seq).where(
            EventRow.kind == "request.submitted",
            EventRow.request_id.in_([row.id for row in pending]),
        )
    )
    seqs: dict[str | None, float] = {row[0]: row[1] for row in found}
    never = float("inf")  # no event (a row the log knows nothing of): last, as the latest
    return sorted(pending, key=lambda row: (seqs.get(row.id, never), row.created_at, row.id))


def peers(session: Session, policy: Policy, row: RequestRow) -> list[RequestRow]:
    """The other pending requests on `row`'s account that the policy's
    `one_pending_per_account` makes it wait for (or that wait for it), oldest first."""
    spec = policy.document.one_pending_per_account
    if spec is None or not _covers(spec, row.action):
        return []
    return [other for other in _queue(session, spec, row.account_ref) if other.id != row.id]


def held_by(session: Session, policy: Policy, row: RequestRow) -> RequestRow | None:
    """The first pending request `row` waits for (not approvable until it is decided): the
    first of its account's queue, unless that is `row` itself."""
    spec = policy.document.one_pending_per_account
    if row.state != RequestState.PENDING.value or spec is None or not _covers(spec, row.action):
        return None
    queue = _queue(session, spec, row.account_ref)
    return queue[0] if queue and queue[0].id != row.id else None


def guard_one_pending(
    session: Session, policy: Policy, action: str, account_ref: str, outcome: Outcome
) -> None:
    """At submission, in its transaction, before the request is recorded: take the account's
    lock; in `refuse` mode, Conflict when a covered request is pending on the account."""
    spec = policy.document.one_pending_per_account
    if spec is None or outcome != Outcome.PENDING or not _covers(spec, action):
        return
    _lock(session, account_ref)
    if spec.mode != "refuse":
        return
    pending = [other for other in _pending_on(session, account_ref) if _covers(spec, other.action)]
    if pending:
        first = pending[0]
        raise Conflict(
            f"request {first.id} ({first.action}) is already pending on {account_ref}: the "
            "policy allows one at a time (one_pending_per_account); ask again once it is decided"
        )


def _pending_on(session: Session, account_ref: str) -> list[RequestRow]:
    return list(
        session.scalars(
            select(RequestRow)
            .where(
                RequestRow.account_ref == account_ref,
                RequestRow.state == RequestState.PENDING.value,
            )
            .order_by(RequestRow.created_at, RequestRow.id)
        )
    )


def view(services: Services, session: Session, row: RequestRow) -> dict[str, object] | None:
    """A pending request's routing as the API and console show it: whether anyone reachable
    can approve it, and the other pending requests on its account it waits for or that wait
    for it (id, action, requester, when: nothing of their params or justification)."""
    if row.state != RequestState.PENDING.value:
        return None
    now = services.clock()
    _, policy = services.policy_in_force(session)
    decision = redecide(services, session, row, now)
    first = held_by(session, policy, row)
    return {
        **reachability(session, decision, row.created_at, now).to_dict(),
        "held_by": None if first is None else first.id,
        "pending_on_account": [
            {
                "id": other.id,
                "action": other.action,
                "requester": other.requester_id,
                "created_at": other.created_at.isoformat(),
                "waits_for_this": waits_for_this,
            }
            for other, waits_for_this in _around(session, policy, row)
        ],
    }


def _around(session: Session, policy: Policy, row: RequestRow) -> list[tuple[RequestRow, bool]]:
    """Each peer of `row`, and whether it was submitted after `row` (so waits for it)."""
    found, after = [], False
    spec = policy.document.one_pending_per_account
    if spec is None or not _covers(spec, row.action):
        return []
    for other in _queue(session, spec, row.account_ref):
        if other.id == row.id:
            after = True
            continue
        found.append((other, after))
    return found
