"""Quotas count a batch's items: each included item is one use, as if it were a request
(`foureyes.workflow.quota`). A batch that would take a quota over its limit is refused whole,
nothing recorded; otherwise one usage row per item is written in the batch's transaction,
under the same (quota, key) locks a single submit takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from foureyes.errors import Forbidden
from foureyes.model import Outcome, parse_duration
from foureyes.policy.compiler import Policy
from foureyes.policy.schema import QuotaSpec
from foureyes.store.tables import QuotaUsageRow
from foureyes.workflow import quota, quota_log


class BatchOverQuota(Forbidden):
    """The batch's items would take a quota over its limit: nothing is recorded."""

    slug = "over-quota"


@dataclass
class BatchUsage:
    """The (quota, key) pairs each item counts under, ready to be written once the items
    have ids."""

    staff_id: str
    per_item: list[list[tuple[str, str]]] = field(default_factory=list)

    def count(self, session: Session, item_ids: Sequence[str], now: datetime) -> None:
        rows = [
            {
                "quota_id": quota_id,
                "key": key,
                "staff_id": self.staff_id,
                "request_id": item_id,
                "at": now,
            }
            for item_id, keys in zip(item_ids, self.per_item, strict=True)
            for quota_id, key in keys
        ]
        if rows:
            session.execute(insert(QuotaUsageRow), rows)


def check(
    session: Session,
    policy: Policy,
    staff_id: str,
    action: str,
    accounts: Sequence[str],
    now: datetime,
    witness: quota_log.Witness | None = None,
) -> BatchUsage:
    """Lock and count every quota the batch's items fall under (as pending requests: a batch
    always waits for approvers); BatchOverQuota naming the first one it would exceed. A count
    that would exceed is made again from the rows the log vouches for (`quota_log`; `witness`
    hears of the others)."""
    usage = BatchUsage(staff_id, [[] for _ in accounts])
    specs = [s for s in policy.quotas if quota.matches(s, action, Outcome.PENDING)]
    for spec in sorted(specs, key=lambda s: s.id):
        if spec.per == "staff":
            quota.lock_key(session, spec.id, staff_id)
            used = _used(session, spec, staff_id, now)
            if used + len(accounts) > spec.limit:
                since = now - parse_duration(spec.window)
                version = None if witness is None else witness.policy_version
                vouched = quota_log.vouched(session, spec, staff_id, since, version)
                if witness is not None:
                    witness.found(session, spec, staff_id, vouched)
                used = len(vouched.uses)
            if used + len(accounts) > spec.limit:
                raise BatchOverQuota(
                    f"quota {spec.id}: at most {spec.limit} requests per staff in {spec.window}; "
                    f"{staff_id} has {used}, and this batch would add {len(accounts)}",
                    quota=spec.id,
                    limit=spec.limit,
                    used=used,
                    asked=len(accounts),
                )
            for keys in usage.per_item:
                keys.append((spec.id, staff_id))
            continue
        for account in sorted(accounts):
            quota.lock_key(session, spec.id, account)
            found = quota.check(
                session,
                [spec],
                staff_id=staff_id,
                action=action,
                account_ref=account,
                outcome=Outcome.PENDING,
                now=now,
                lock=False,
                witness=witness,
            )
            if found.exceeded is not None:
                raise BatchOverQuota(found.exceeded.reason, **found.exceeded.to_dict())
        for keys, account in zip(usage.per_item, accounts, strict=True):
            keys.append((spec.id, account))
    return usage


def _used(session: Session, spec: QuotaSpec, key: str, now: datetime) -> int:
    since = now - parse_duration(spec.window)
    return int(
        session.scalar(
            select(func.count()).where(
                QuotaUsageRow.quota_id == spec.id,
                QuotaUsageRow.key == key,
                QuotaUsageRow.at > since,
            )
        )
        or 0
    )
