"""Quotas: how many requests one person (or how many people on one account) may make in a window.

A policy's `quotas` are part of the decision: a submission over quota is denied like a policy
denial, with a reason naming the quota and when it resets. Counting is exact with several
servers on one PostgreSQL: inside the submit transaction each matching (quota, key) has a row in
`quota_locks` locked FOR UPDATE (created on first use with ON CONFLICT DO NOTHING), and only then
are the usage rows of the window counted; the new usage row is written in the same transaction,
so the next submission for that key, waiting on the lock, sees it once this one commits. On
SQLite every transaction already holds the database's write lock (BEGIN IMMEDIATE).

`per: staff` counts the person's requests for the quota's actions; `per: account` counts the
distinct people who made such requests on the account ("no more than N staff may view this
account's private data per day"), so a person already counted may go on.

Denied requests are not counted; pending ones are (a quota limits what people ask for). A
quota's `outcomes` say which it counts, by what the rules decided: `[pending]` limits only
requests that ask approvers (one person cannot flood the reviewers), leaving work the rules
allow at once alone; the default counts both.

A dry run asks `check(..., lock=False)`: the same count, without locks or usage, so it answers
the denial a submit would get now (`foureyes.workflow.decide`).

The usage rows are counted as stored while that is under the limit (the hot path, under the
write lock); a count that would deny is made again from the rows the audit log vouches for
(`quota_log`): a row written in by a DBA (attacker s3, S4) is not counted, and with a `witness`
(a submit's; a dry run has none) it is a high `request_tampered` alert, raised once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from foureyes.model import Outcome, parse_duration
from foureyes.policy.schema import QuotaSpec
from foureyes.store.tables import QuotaLockRow, QuotaUsageRow
from foureyes.workflow import quota_log


@dataclass(frozen=True)
class QuotaExceeded:
    """Why a submission is over one quota."""

    quota: str
    per: str
    key: str
    limit: int
    used: int
    window: str
    resets_at: datetime

    @property
    def reason(self) -> str:
        counted = "requests" if self.per == "staff" else "people"
        return (
            f"quota {self.quota}: at most {self.limit} {counted} per {self.per} in {self.window} "
            f"({self.key} has {self.used}); it resets at {self.resets_at.isoformat()}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "quota": self.quota,
            "per": self.per,
            "key": self.key,
            "limit": self.limit,
            "used": self.used,
            "window": self.window,
            "resets_at": self.resets_at.isoformat(),
        }


@dataclass
class QuotaCheck:
    """The quotas one submission falls under, checked (with their locks held) and ready to be
    counted once the request has its id."""

    staff_id: str
    matched: list[tuple[QuotaSpec, str]] = field(default_factory=list)
    exceeded: QuotaExceeded | None = None

    def count(self, session: Session, request_id: str, now: datetime) -> None:
        """Write the usage rows (in the submit transaction, under the locks `check` took)."""
        for spec, key in self.matched:
            session.add(
                QuotaUsageRow(
                    quota_id=spec.id,
                    key=key,
                    staff_id=self.staff_id,
                    request_id=request_id,
                    at=now,
                )
            )


def matches(spec: QuotaSpec, action: str, outcome: Outcome | None = None) -> bool:
    """Whether `spec` counts a request for `action` that the rules decided `outcome` (None:
    whatever they decided)."""
    if outcome is not None and outcome.value not in spec.outcomes:
        return False
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in spec.actions)


def any_matches(quotas: Sequence[QuotaSpec], action: str) -> bool:
    """Whether any quota may count a request for `action` (whatever the rules decide)."""
    return any(matches(spec, action) for spec in quotas)


def check(
    session: Session,
    quotas: Sequence[QuotaSpec],
    *,
    staff_id: str,
    action: str,
    account_ref: str,
    outcome: Outcome,
    now: datetime,
    lock: bool = True,
    witness: quota_log.Witness | None = None,
) -> QuotaCheck:
    """Count every quota a request for `action`, decided `outcome` by the rules, falls under
    (locking each (quota, key) first unless `lock` is False: a dry run's count, which uses
    nothing); `exceeded` names the first one over, counted from the rows the log vouches for
    (`witness` hears of the others: module note)."""
    result = QuotaCheck(staff_id)
    keyed = sorted(
        ((spec, staff_id if spec.per == "staff" else account_ref) for spec in quotas),
        key=lambda item: (item[0].id, item[1]),  # one lock order for everyone: no deadlocks
    )
    for spec, key in keyed:
        if not matches(spec, action, outcome):
            continue
        if lock:
            lock_key(session, spec.id, key)
        result.matched.append((spec, key))
        if result.exceeded is None:
            result.exceeded = _over(session, (spec, key), staff_id, now, witness)
    return result


def lock_key(session: Session, quota_id: str, key: str) -> None:
    """Lock (quota, key) for this transaction (PostgreSQL; SQLite's write lock already
    serialises writers): the one lock order is by (quota id, key)."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already serialises every writer
    session.execute(
        pg_insert(QuotaLockRow)
        .values(quota_id=quota_id, key=key)
        .on_conflict_do_nothing(index_elements=["quota_id", "key"])
    )
    session.execute(
        select(QuotaLockRow.quota_id)
        .where(QuotaLockRow.quota_id == quota_id, QuotaLockRow.key == key)
        .with_for_update()
    )


def _over(
    session: Session,
    keyed: tuple[QuotaSpec, str],
    staff_id: str,
    now: datetime,
    witness: quota_log.Witness | None,
) -> QuotaExceeded | None:
    spec, key = keyed
    since = now - parse_duration(spec.window)
    if _stored_count(session, spec, key, staff_id, since) < spec.limit:
        return None  # the usual case: no read of the log
    found = quota_log.vouched(
        session, spec, key, since, None if witness is None else witness.policy_version
    )
    if witness is not None:
        witness.found(session, spec, key, found)
    return exceeded(spec, key, staff_id, found.uses)


def exceeded(
    spec: QuotaSpec, key: str, staff_id: str, uses: Sequence[tuple[str, datetime]]
) -> QuotaExceeded | None:
    """Whether one more use by `staff_id` takes (`spec`, `key`) over, given the `uses` in the
    window ((person, time), one per submission)."""
    if spec.per == "staff":
        times = sorted(at for _, at in uses)
    else:
        latest: dict[str, datetime] = {}
        for person, at in uses:
            latest[person] = max(at, latest.get(person, at))
        if staff_id in latest:
            return None  # already one of the people counted on this account
        times = sorted(latest.values())
    if len(times) < spec.limit:
        return None
    # The slot frees when enough of the oldest uses have left the window.
    resets_at = _aware(times[len(times) - spec.limit]) + parse_duration(spec.window)
    return QuotaExceeded(spec.id, spec.per, key, spec.limit, len(times), spec.window, resets_at)


def _stored_count(
    session: Session, spec: QuotaSpec, key: str, staff_id: str, since: datetime
) -> int:
    """The count as the rows stand (no log read): requests (`per: staff`) or people (`per:
    account`; the limit's worth, or 0 when `staff_id` is one of them already)."""
    in_window = (
        QuotaUsageRow.quota_id == spec.id,
        QuotaUsageRow.key == key,
        QuotaUsageRow.at > since,
    )
    if spec.per == "staff":
        return int(session.scalar(select(func.count()).where(*in_window)) or 0)
    people = set(session.scalars(select(QuotaUsageRow.staff_id).where(*in_window).distinct()))
    return 0 if staff_id in people else len(people)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


__all__ = [
    "QuotaCheck",
    "QuotaExceeded",
    "any_matches",
    "check",
    "exceeded",
    "lock_key",
    "matches",
]
