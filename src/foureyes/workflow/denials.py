"""Evidence of denied and refused attempts: what the `denial_burst` detector counts, and what an
auditor reads.

- A submission the rules or a quota deny is recorded as a `denied` request with its
  `request.submitted` event (`foureyes.workflow.submit`).
- A submission refused after the rules let the person ask (a justification or params that do
  not fit: 422) makes no request; it leaves a `request.refused` event: who, which action on
  which account, and why. Not the params, nor any hash of them: nothing is kept to check a
  salted commitment against, and an unsalted hash would let the log's readers test guesses of
  them (an undo refused for its justification carries the private address it would restore;
  docs/digests.md).
- A dry run the rules or a quota deny leaves a `decision.denied` event. Dry runs are the API's
  hot path, so these are rate-limited per person and per process: within a `WINDOW` (from a
  person's first denied dry run in it), the 1st, 2nd, 4th, 8th, … denied dry run is recorded,
  each event carrying `count`, how many denied dry runs it stands for (those since the
  person's previous record, from this process). A person denied n times in a window leaves at
  most log2(n) + 1 events, whatever the rate, and the counts recorded so far always add up to
  more than half of the denials: a burst is never silent (its first denial is recorded at
  once) and `denial_burst` sees it grow. Only the count after a person's last record may be
  lost, if they stop (it goes with their next record otherwise).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from foureyes.audit.log import AuditLog
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.model import Outcome
from foureyes.policy.decision import Decision

REFUSED = "request.refused"
DRY_RUN_DENIED = "decision.denied"
WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Attempt:
    """What a person asked for, as the evidence names it."""

    actor: Actor
    action: str
    account: str
    client: str | None

    def payload(self) -> dict[str, Any]:
        return {
            "identity": self.actor.identity,
            "action": self.action,  # the account is the event's own `account`
            "client": self.client,
        }


def record_refusal(
    services: Services,
    session: Session,
    attempt: Attempt,
    *,
    reason: str,
    outcome: Outcome,
    policy_version: int | str,
    now: datetime,
) -> None:
    """A `request.refused` event in the caller's transaction: `outcome` is what the rules said
    before the justification or the payload was refused for `reason`."""
    record(
        services,
        session,
        kind=REFUSED,
        actor=attempt.actor.id,
        row=None,
        payload={
            **attempt.payload(),
            "reason": reason,
            "outcome": outcome.value,
            "policy_version": policy_version,
        },
        now=now,
        account_ref=attempt.account,
    )


def refused(
    services: Services, attempt: Attempt, *, reason: str, outcome: Outcome, policy_version: int
) -> None:
    """`record_refusal` in a transaction of its own."""
    with services.database.transaction() as session:
        record_refusal(
            services,
            session,
            attempt,
            reason=reason,
            outcome=outcome,
            policy_version=policy_version,
            now=services.clock(),
        )


@dataclass
class _Tally:
    since: datetime  # the start of the person's current window
    denials: int = 0  # in the window
    due: int = 1  # the denial in the window that is recorded next
    unrecorded: int = 0  # since the person's last record


_lock = threading.Lock()
# By the log the records go to (one per running foureyes; tests make one per world).
_tallies: weakref.WeakKeyDictionary[AuditLog, dict[str, _Tally]] = weakref.WeakKeyDictionary()


def dry_run_denied(services: Services, staff_id: str, now: datetime) -> int | None:
    """Count one denied dry run of `staff_id` at `now`: the number of denied dry runs a record
    written now stands for (this one and those only counted since the person's last record),
    or None when this one is only counted (see the module's docstring)."""
    with _lock:
        people = _tallies.setdefault(services.audit, {})
        tally = people.get(staff_id)
        if tally is None:
            tally = people[staff_id] = _Tally(now)
        elif not tally.since <= now < tally.since + WINDOW:  # (or a clock that went back)
            tally.since, tally.denials, tally.due = now, 0, 1
        tally.denials += 1
        tally.unrecorded += 1
        if tally.denials < tally.due:
            return None
        tally.due *= 2
        count, tally.unrecorded = tally.unrecorded, 0
        return count


def record_dry_run_denial(
    services: Services, attempt: Attempt, decision: Decision, count: int
) -> None:
    """A `decision.denied` event, in a transaction of its own, standing for `count` denied dry
    runs (see `dry_run_denied`)."""
    with services.database.transaction() as session:
        record(
            services,
            session,
            kind=DRY_RUN_DENIED,
            actor=attempt.actor.id,
            row=None,
            payload={
                **attempt.payload(),
                "reasons": list(decision.reasons),
                "policy_version": decision.policy_version,
                "count": count,
            },
            now=services.clock(),
            account_ref=attempt.account,
        )


def after_dry_run(services: Services, attempt: Attempt, decision: Decision) -> None:
    """Leave the evidence of a dry run's decision, if it was denied (rate-limited)."""
    if decision.outcome != Outcome.DENIED:
        return
    count = dry_run_denied(services, attempt.actor.id, services.clock())
    if count is not None:
        record_dry_run_denial(services, attempt, decision, count)


__all__ = [
    "DRY_RUN_DENIED",
    "REFUSED",
    "WINDOW",
    "Attempt",
    "after_dry_run",
    "dry_run_denied",
    "record_dry_run_denial",
    "record_refusal",
    "refused",
]
