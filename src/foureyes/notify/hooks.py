"""What the lifecycle tells whom, written to the outbox in the lifecycle's own transaction.

- A request that needs reviews: each person the engine names as a candidate for a missing
  approval (`satisfied(..., candidates=...)` over the active staff) gets a message.
- A request that is decided (approved, scheduled, denied, vetoed): its requester gets one.
- Both: every channel the policy's `notify` option names for the request gets one too.

What has nowhere to go (a channel that is not configured, people when no channel carries
messages to them) is not written at all (`foureyes.notify.outbox.accepts`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.model import Outcome
from foureyes.notify.outbox import accepts, enqueue
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import RequestRow, StaffRow

__all__ = ["request_link", "request_needs_review", "request_settled", "request_submitted"]


def request_link(request_id: str) -> str:
    """Where a request is shown (a path; channels make it absolute with their `base_url`)."""
    return f"/v1/requests/{request_id}"


def _summary(row: RequestRow) -> str:
    lines = [
        f"Request {row.id}",
        f"Action: {row.action} on {row.account_ref}",
        f"Requested by: {row.requester_id}",
        f"Justification: {row.justification or '(none)'}",
        f"State: {row.state}",
    ]
    if row.reason:
        lines.append(f"Reason: {row.reason}")
    return "\n".join(lines)


def reviewers_for(session: Session, decision: Decision, now: datetime) -> list[str]:
    """The people who could give a missing approval now, by the engine's own eligibility."""
    people = [
        staff_from_row(session, row)
        for row in session.scalars(select(StaffRow).where(StaffRow.status == "active"))
    ]
    status = satisfied(decision, [], candidates=people, today=now.date())
    return sorted({who for factor in status.factors for who in factor.candidates})


def _to_channels(session: Session, decision: Decision, row: RequestRow, now: datetime) -> None:
    for channel in decision.options.notify:
        enqueue(
            session,
            channel=channel,
            kind=f"request.{row.state}",
            subject=f"foureyes: {row.action} on {row.account_ref} is {row.state}",
            body=_summary(row),
            link=request_link(row.id),
            now=now,
        )


def request_submitted(session: Session, row: RequestRow, decision: Decision, now: datetime) -> None:
    """A request was recorded: tell its reviewers if it needs them, and the policy's channels."""
    if decision.outcome == Outcome.PENDING:
        request_needs_review(session, row, decision, now)
    _to_channels(session, decision, row, now)


def request_needs_review(
    session: Session, row: RequestRow, decision: Decision, now: datetime
) -> None:
    if not accepts(to_staff=row.requester_id):
        return  # no channel carries messages to people: no need to work out who they are
    for person in reviewers_for(session, decision, now):
        if person == row.requester_id:
            continue
        enqueue(
            session,
            to_staff=person,
            kind="review.needed",
            subject=f"foureyes: your review is asked: {row.action} on {row.account_ref}",
            body=_summary(row) + f"\nExpires: {row.expires_at}",
            link=request_link(row.id),
            now=now,
        )


def request_settled(session: Session, row: RequestRow, decision: Decision, now: datetime) -> None:
    """A pending request was decided: tell its requester, and the policy's channels."""
    enqueue(
        session,
        to_staff=row.requester_id,
        kind=f"request.{row.state}",
        subject=f"foureyes: your request {row.action} on {row.account_ref} is {row.state}",
        body=_summary(row),
        link=request_link(row.id),
        now=now,
    )
    _to_channels(session, decision, row, now)
