"""What a batch's lifecycle tells whom, written to the outbox in the lifecycle's own
transaction (as `foureyes.notify.hooks` does for requests):

- a pending batch: each active member of staff eligible under its batch rule's `approvers`
  today (not its requester) is asked for a review (`batch.review.needed`); one away is not,
  their delegate is when eligible too (`foureyes.notify.recipients.reachable_now`);
- a decision on it or its end (approved, declined, expired, cancelled by someone else,
  executed, with how many items were executed, failed and cancelled): its requester is told
  (`batch.<state>`); a batch foureyes cancelled is told as such, one an integrity check
  stopped only as that (the findings are oversight's);
- its submission (`batch.pending`, or `batch.empty` when nothing rode in it) and every move
  above (a cancellation of the requester's own included): each channel its batch rule's
  `notify` option names, as it was when the batch was decided (its stored requirement), as
  `foureyes.notify.hooks` does for a request's rule.

Each message carries a card (`foureyes.notify.card.Card`) that names the batch, its action,
how many accounts it holds, who asked and why, and its state. It names no account of the
manifest (denied and split-out ones included), nor any param value: a message leaves foureyes
for mailboxes and chat channels whose readers foureyes does not check, and a param or an item
may be private; the link leads to the console, which shows each reader what they may see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.notify import accepts, enqueue
from foureyes.notify.card import Card
from foureyes.notify.recipients import reachable_now
from foureyes.policy.batches import batch_rule_for
from foureyes.policy.reference import run
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import BatchRow, StaffRow

REVIEW_NEEDED = "batch.review.needed"
# The end of the reason of a batch stopped by an integrity check (`batch_integrity.refuse`):
# its requester is told only that, never what was found (that is oversight's, with the alert).
STOPPED = "nothing more of it is carried out"
# The states a batch's requester is told it moved to.
TOLD_TO_REQUESTER = frozenset({"approved", "declined", "expired", "cancelled", "executed"})


def batch_link(batch_id: str) -> str:
    """The console's page of the batch (a path; channels make it absolute)."""
    return f"/console/batches/{batch_id}"


def approvers(services: Services, session: Session, batch: BatchRow, now: datetime) -> list[str]:
    """The active staff whose approval of `batch` would count today (its batch rule's
    `approvers`, able to act today, not its requester), by id."""
    _, policy = services.policy_in_force(session)
    rule = batch_rule_for(policy, batch.action)
    spec = policy.catalog.actions.get(batch.action)
    if rule is None or spec is None:
        return []
    today = now.date()
    requester = services.staff(session, batch.requester_id).cel(today)
    found: list[str] = []
    for row in session.scalars(select(StaffRow).where(StaffRow.status == "active")):
        if row.id == batch.requester_id:
            continue
        person = staff_from_row(session, row)
        if person.floor_problem(today) is not None:
            continue
        verdict, _ = run(
            rule.approvers.fn,
            {"approver": person.cel(today), "requester": requester, "action": spec.cel},
        )
        if verdict is True:
            found.append(row.id)
    return sorted(found)


def card(batch: BatchRow, title: str, *, actor: str | None = None) -> dict[str, Any]:
    """The batch's card: no account of the manifest, no param value (module docstring)."""
    return Card(
        title=title,
        request_id=batch.id,
        state=batch.state,
        action=batch.action,
        account=f"{batch.item_count} account(s) in batch {batch.id}",
        requester=batch.requester_id,
        link=batch_link(batch.id),
        justification=batch.justification,
        expires_at=batch.expires_at.isoformat() if batch.expires_at else None,
        reason=_outcome(batch, actor),
    ).to_json()


def cancelled_count(batch: BatchRow) -> int:
    """Items of an ended batch neither executed nor failed: cancelled (by a re-check or a
    stop), never tried."""
    return max(batch.item_count - batch.executed_count - batch.failed_count, 0)


def _outcome(batch: BatchRow, actor: str | None) -> str | None:
    """What a message says of the batch's end: counts, or a reason that names no account and
    carries no finding of an integrity check (those reasons stay in the console and the log,
    for whoever may read them there)."""
    stopped = batch.reason is not None and batch.reason.endswith(STOPPED)
    if batch.state == "executed":
        shown = (
            f"{batch.executed_count} executed, {batch.failed_count} failed, "
            f"{cancelled_count(batch)} cancelled"
        )
        return shown + ("; stopped by an integrity check" if stopped else "")
    if batch.state == "cancelled" and actor is None:
        if stopped:
            return "stopped by an integrity check; oversight was told"
        return (
            "cancelled by foureyes: what it was approved for no longer holds (the policy, its "
            "accounts or the people changed); the console says why"
        )
    return batch.reason


def _body(batch: BatchRow, actor: str | None = None) -> str:
    lines = [
        f"Batch {batch.id}",
        f"Action: {batch.action} on {batch.item_count} account(s)",
        f"Requested by: {batch.requester_id}",
        f"Justification: {batch.justification or '(none)'}",
        f"State: {batch.state}",
    ]
    outcome = _outcome(batch, actor)
    if outcome:
        lines.append(f"Outcome: {outcome}")
    return "\n".join(lines)


def channels_of(batch: BatchRow) -> list[str]:
    """The channels the batch's rule names (`notify`), from the requirement it was decided
    under: a policy changed since neither adds nor silences a channel mid-flight."""
    requirement = (batch.plan or {}).get("requirement")
    options = requirement.get("options") if isinstance(requirement, dict) else None
    named = options.get("notify") if isinstance(options, dict) else None
    return [c for c in named if isinstance(c, str)] if isinstance(named, list) else []


def to_channels(session: Session, batch: BatchRow, now: datetime) -> None:
    """Tell the batch rule's channels the batch's current state (the card: no account of the
    manifest, no param value)."""
    channels = channels_of(batch)
    if not channels:
        return
    shown = card(batch, f"Batch {batch.state}")
    for channel in channels:
        enqueue(
            session,
            channel=channel,
            kind=f"batch.{batch.state}",
            subject=f"foureyes: batch {batch.action} on {batch.item_count} account(s) is "
            f"{batch.state}",
            body=_body(batch),
            link=batch_link(batch.id),
            now=now,
            details=shown,
        )


def submitted(services: Services, session: Session, batch: BatchRow, now: datetime) -> None:
    """The batch was just recorded: its rule's channels hear of it, its approvers are asked."""
    to_channels(session, batch, now)
    needs_review(services, session, batch, now)


def needs_review(services: Services, session: Session, batch: BatchRow, now: datetime) -> None:
    """Ask each eligible approver of the pending `batch` for a review: not one who is away
    (their delegate instead, when eligible too), as for requests."""
    if batch.state != "pending" or not accepts(to_staff=batch.requester_id):
        return
    shown = card(batch, "Your review of a batch is asked")
    for person, on_behalf in reachable_now(session, approvers(services, session, batch, now), now):
        also = f"\n(You hear of it for {on_behalf}, who is away.)" if on_behalf else ""
        enqueue(
            session,
            to_staff=person,
            kind=REVIEW_NEEDED,
            subject=f"foureyes: your review is asked: batch {batch.action} on "
            f"{batch.item_count} account(s)",
            body=_body(batch) + f"\nExpires: {batch.expires_at}" + also,
            link=batch_link(batch.id),
            now=now,
            details=shown,
        )


def moved(session: Session, batch: BatchRow, now: datetime, *, actor: str | None) -> None:
    """`batch` has just moved to its current state: tell its requester when that is a
    decision on it or its end (not a cancellation of their own); its rule's channels, of
    every such move."""
    if batch.state not in TOLD_TO_REQUESTER:
        return
    to_channels(session, batch, now)
    if batch.state == "cancelled" and actor == batch.requester_id:
        return
    if not accepts(to_staff=batch.requester_id):
        return
    enqueue(
        session,
        to_staff=batch.requester_id,
        kind=f"batch.{batch.state}",
        subject=f"foureyes: your batch {batch.action} on {batch.item_count} account(s) is "
        f"{batch.state}",
        body=_body(batch, actor),
        link=batch_link(batch.id),
        now=now,
        details=card(batch, f"Your batch is {batch.state}", actor=actor),
    )
