"""What the lifecycle tells whom, written to the outbox in the lifecycle's own transaction.

- A request that needs reviews: each person the engine names as a candidate for a missing
  approval (`satisfied(..., candidates=...)` over the active staff) gets a message.
- A request that is decided (approved, scheduled, denied, vetoed): its requester gets one.
- Both: every channel the policy's `notify` option names for the request gets one too.

What has nowhere to go (a channel that is not configured, people when no channel carries
messages to them) is not written at all (`foureyes.notify.outbox.accepts`).

A message names the request's params as its caller hands them (`params`), already as
notifications may show them: they leave foureyes for mailboxes and chat channels, so the
lifecycle passes them through `foureyes.core.redaction.notified_params` (private values
redacted, anything not declared public hidden). Without them a message names none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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


def _summary(row: RequestRow, params: Mapping[str, Any] | None) -> str:
    lines = [
        f"Request {row.id}",
        f"Action: {row.action} on {row.account_ref}",
    ]
    if params:
        shown = ", ".join(f"{name}: {_value(value)}" for name, value in sorted(params.items()))
        lines.append(f"Parameters: {shown}")
    lines += [
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


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


_MAX_VALUE = 100


def _to_channels(
    session: Session,
    decision: Decision,
    row: RequestRow,
    now: datetime,
    params: Mapping[str, Any] | None,
) -> None:
    for channel in decision.options.notify:
        enqueue(
            session,
            channel=channel,
            kind=f"request.{row.state}",
            subject=f"foureyes: {row.action} on {row.account_ref} is {row.state}",
            body=_summary(row, params),
            link=request_link(row.id),
            now=now,
        )


def request_submitted(
    session: Session,
    row: RequestRow,
    decision: Decision,
    now: datetime,
    *,
    params: Mapping[str, Any] | None = None,
) -> None:
    """A request was recorded: tell its reviewers if it needs them, and the policy's channels.
    `params`: as notifications may show them (module docstring)."""
    if decision.outcome == Outcome.PENDING:
        request_needs_review(session, row, decision, now, params=params)
    _to_channels(session, decision, row, now, params)


def request_needs_review(
    session: Session,
    row: RequestRow,
    decision: Decision,
    now: datetime,
    *,
    params: Mapping[str, Any] | None = None,
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
            body=_summary(row, params) + f"\nExpires: {row.expires_at}",
            link=request_link(row.id),
            now=now,
        )


def request_settled(
    session: Session,
    row: RequestRow,
    decision: Decision,
    now: datetime,
    *,
    params: Mapping[str, Any] | None = None,
) -> None:
    """A pending request was decided: tell its requester, and the policy's channels.
    `params`: as notifications may show them (module docstring)."""
    enqueue(
        session,
        to_staff=row.requester_id,
        kind=f"request.{row.state}",
        subject=f"foureyes: your request {row.action} on {row.account_ref} is {row.state}",
        body=_summary(row, params),
        link=request_link(row.id),
        now=now,
    )
    _to_channels(session, decision, row, now, params)
