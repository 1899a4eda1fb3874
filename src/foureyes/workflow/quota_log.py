"""A quota's usage rows, as the audit log vouches for them: read where a count would deny.

`quota_usage` is the store's working copy: the runtime role writes it, and a DBA can too. Ten
rows naming made-up request ids filled a person's quota and denied her an honest request as
"over quota", with no alert (attacker s3, S4). Counting the rows is cheap and stays the hot path
(the count runs inside the submit's write transaction); only when that count would deny (or
put a batch over) are the rows in the window read again here, each judged by the event of the
submission it counts:

- a request's row: its one `request.submitted` event (by its request id, the body saying which
  request), whose actor is the row's person, whose action the quota names now, whose rules'
  outcome (`decision.outcome`) the quota counts, on the account (`per: account`) or by the
  person (`per: staff`) the row is counted under;
- a batch item's row (its id is the item's): the item's batch's one `batch.submitted` event,
  as above (a batch counts as pending; the account is the item row's), and no more items of
  one batch than its event's `item_count`.

A use counts once per submission (duplicate rows of one do not add), at the time its event
says (a row re-dated to keep a quota full longer counts from its submission). A row the log
does not vouch for is not counted, and is named in one high `request_tampered` alert for the
(quota, key), raised once per set of such rows. A row of a submission whose action or outcome
the quota no longer counts because the policy changed since (its event's policy version is
not the one in force) is not counted either, and is no tampering.

Not covered: rows deleted (or re-dated out of the window) let a person past a quota, as the
count that would deny never reaches the log; see the README's security model.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.core import alert_log
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.model import Outcome
from foureyes.policy.schema import QuotaSpec
from foureyes.store.bulk import chunks, one_of
from foureyes.store.tables import AlertRow, BatchItemRow, EventRow, QuotaUsageRow
from foureyes.store.tree import in_tree
from foureyes.workflow import batch_events, integrity

# How many unvouched rows an alert names (the count is always given).
_NAMED = 20


@dataclass(frozen=True)
class Witness:
    """Who hears of usage rows the log does not vouch for, and the policy version in force
    (what tells a changed quota from a forged row). A dry run has none: it counts as a submit
    would, and alerts nothing. With `kept` (a batch's: refused over quota, its transaction
    rolls back), the findings are kept there for `alert_kept` after the transaction."""

    services: Services
    policy_version: int
    kept: list[tuple[QuotaSpec, str, Vouched]] | None = None

    def found(self, session: Session, spec: QuotaSpec, key: str, vouched: Vouched) -> None:
        """Alert (`alert_once`) the rows `vouched` found forged, now or (`kept`) later."""
        if not vouched.forged:
            return
        if self.kept is not None:
            self.kept.append((spec, key, vouched))
        else:
            alert_once(self, session, spec, key, vouched)


def alert_kept(witness: Witness) -> None:
    """The alerts `witness` kept, in a transaction of their own (call it with none open)."""
    if not witness.kept:
        return
    with witness.services.database.transaction() as session:
        for spec, key, vouched in witness.kept:
            alert_once(witness, session, spec, key, vouched)
    witness.kept.clear()


@dataclass
class Vouched:
    """The uses in the window the log vouches for: (person, time of submission) once per
    submission; `forged`, the usage rows it does not (id and why)."""

    uses: list[tuple[str, datetime]] = field(default_factory=list)
    forged: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Use:
    id: int
    staff_id: str
    request_id: str
    at: datetime


def vouched(
    session: Session,
    spec: QuotaSpec,
    key: str,
    since: datetime,
    policy_version: int | None,
) -> Vouched:
    """Read the usage rows of (`spec`, `key`) dated after `since`, and judge each by its
    submission's event (module note). `policy_version`: the version in force (None: a row
    the quota no longer counts is never taken for a forgery)."""
    rows = [
        _Use(int(i), str(s), str(r), _aware(a))
        for i, s, r, a in session.execute(
            select(
                QuotaUsageRow.id, QuotaUsageRow.staff_id, QuotaUsageRow.request_id, QuotaUsageRow.at
            )
            .where(
                QuotaUsageRow.quota_id == spec.id,
                QuotaUsageRow.key == key,
                QuotaUsageRow.at > since,
            )
            .order_by(QuotaUsageRow.id)
        )
    ]
    ids = sorted({row.request_id for row in rows})
    requests = _events(session, ids, integrity.SUBMITTED)
    items = _items(session, [i for i in ids if i not in requests])
    batches = _events(
        session, sorted({batch for batch, _ in items.values()}), batch_events.SUBMITTED
    )
    result = Vouched()
    seen: set[str] = set()
    per_batch: dict[str, int] = {}
    for row in rows:
        why: str | None
        at: datetime | None
        if row.request_id in seen:
            why, at = "a second usage row of one submission", None
        elif row.request_id in requests:
            why, at = _judge(spec, key, row, requests[row.request_id], None, policy_version)
        elif row.request_id in items:
            batch, account = items[row.request_id]
            why, at = _judge(spec, key, row, batches.get(batch, []), account, policy_version)
            if why is None:
                per_batch[batch] = per_batch.get(batch, 0) + 1
                if per_batch[batch] > _item_count(batches[batch][0]):
                    why = f"batch {batch} has more counted items than its batch.submitted event"
        else:
            why, at = "it counts no request or batch item foureyes submitted", None
        if why is not None:
            if why:  # "" is a use the quota no longer counts: not counted, not forged
                result.forged.append((row.id, f"usage row {row.id} ({row.request_id}): {why}"))
            continue
        seen.add(row.request_id)
        if at is not None and at > since:  # an older submission no longer counts
            result.uses.append((row.staff_id, at))
    return result


def alert_once(
    witness: Witness, session: Session, spec: QuotaSpec, key: str, found: Vouched
) -> None:
    """The high `request_tampered` alert naming the usage rows of (`spec`, `key`) the log
    does not vouch for, in the caller's transaction, unless one naming the same rows was
    raised already (each submission that reaches the limit would raise it again)."""
    if not found.forged:
        return
    shown = [why for _, why in found.forged[:_NAMED]]
    more = len(found.forged) - len(shown)
    problem = (
        f"{len(found.forged)} quota_usage row(s) of quota {spec.id} for {key} are not vouched "
        "for by the audit log (not counted): " + "; ".join(shown)
    )
    if more:
        problem += f"; and {more} more"
    staff = key if spec.per == "staff" else None
    account = key if spec.per == "account" else None
    raised = session.scalars(
        select(AlertRow).where(
            AlertRow.detector == integrity.DETECTOR,
            AlertRow.staff_id == staff if staff is not None else AlertRow.account_ref == account,
        )
    )
    for alert in alert_log.vouched(session, raised):  # a row written in silences nothing
        if isinstance(alert.details, Mapping) and alert.details.get("problem") == problem:
            return
    raise_alert(
        witness.services,
        session,
        NewAlert(
            detector=integrity.DETECTOR,
            severity="high",
            summary=f"quota usage was altered in the store: {problem}",
            staff=staff,
            account=account,
            details={
                "problem": problem,
                "found_during": "quota count",
                "quota": spec.id,
                "key": key,
                "rows": [row_id for row_id, _ in found.forged],
            },
        ),
        now=witness.services.clock(),
    )


def _judge(
    spec: QuotaSpec,
    key: str,
    row: _Use,
    events: Sequence[Mapping[str, Any]],
    item_account: str | None,
    policy_version: int | None,
) -> tuple[str | None, datetime | None]:
    """(why the log does not vouch for `row`, "" when it is a use the quota no longer counts,
    None when it does; the time of its submission)."""
    if len(events) != 1:
        return f"its submission has {len(events)} audit events, not one", None
    event = events[0]
    try:
        at = datetime.fromisoformat(str(event["at"]))
    except (KeyError, ValueError):
        return "its audit event does not say when it was submitted", None
    if event.get("actor") != row.staff_id:
        return f"its audit event names {event.get('actor')} as the requester", at
    account = item_account if item_account is not None else event.get("account")
    if spec.per == "staff" and row.staff_id != key:
        return f"it is counted for {key}, but made by {row.staff_id}", at
    if spec.per == "account" and account != key:
        return f"its submission was on {account}", at
    if at != row.at:
        return f"it is dated {row.at.isoformat()}, its submission {at.isoformat()}", at
    decision = event.get("decision")
    outcome = decision.get("outcome") if isinstance(decision, dict) else None
    if item_account is not None:
        outcome = Outcome.PENDING.value  # a batch always waits for approvers
    action = event.get("action")
    counted = (
        isinstance(action, str)
        and outcome in spec.outcomes
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in spec.actions)
    )
    if not counted:
        if policy_version is None or event.get("policy_version") != policy_version:
            return "", at  # the policy changed since: the quota no longer counts it
        return f"the quota does not count its action {action} ({outcome})", at
    return None, at


def _events(session: Session, ids: Sequence[str], kind: str) -> dict[str, list[Mapping[str, Any]]]:
    """The events of `kind` of each of `ids` (by the request_id index), judged by their
    bodies, which the tree covers: the body must name the id."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for piece in chunks(ids):
        for raw in session.scalars(
            select(EventRow.body).where(
                one_of(session, EventRow.request_id, piece), EventRow.kind == kind, in_tree()
            )
        ):
            try:
                body = json.loads(stored_bytes(raw))
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("kind") == kind:
                named = body.get("request")
                if isinstance(named, str) and named in piece:
                    found.setdefault(named, []).append(body)
    return found


def _items(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Batch item id -> (its batch, its account), for those of `ids` that are items."""
    wanted = list(ids)
    found: dict[str, tuple[str, str]] = {}
    for piece in chunks(wanted):
        for item_id, batch_id, account in session.execute(
            select(BatchItemRow.id, BatchItemRow.batch_id, BatchItemRow.account_ref).where(
                one_of(session, BatchItemRow.id, piece)
            )
        ):
            found[str(item_id)] = (str(batch_id), str(account))
    return found


def _item_count(event: Mapping[str, Any]) -> int:
    count = event.get("item_count")
    return count if isinstance(count, int) else 0


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


__all__ = ["Vouched", "Witness", "alert_kept", "alert_once", "vouched"]
