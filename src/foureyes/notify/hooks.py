"""What the lifecycle tells whom, written to the outbox in the lifecycle's own transaction.

- A request that needs reviews: each person the engine names as a candidate for a missing
  approval (`satisfied(..., candidates=...)` over the active staff) gets a message.
- Every decision on a request (approved, scheduled, denied, vetoed, executed, failed,
  expired, reverted, cancelled by someone else): its requester gets one (`request_moved`,
  called by `core.events.move`, the one place a request changes state).
- Submitted and decided: every channel the policy's `notify` option names for the request
  gets one too.

Each message about a request carries its card (`foureyes.notify.card`: who, what, which
account and tier, why, the ticket, the request-describing alerts raised on it (`card.ON_CARDS`:
never one about a person; none on the requester's own card; on a channel's card, none about a
person's employment or relationships: `card.ON_CHANNEL_CARDS`), and a link to the console's review
page bound to the request's digest) for the chat channels to render.

What has nowhere to go (a channel that is not configured, people when no channel carries
messages to them) is not written at all (`foureyes.notify.outbox.accepts`).

A message names the request's params as its caller hands them (`params`), already as
notifications may show them: they leave foureyes for mailboxes and chat channels, so the
lifecycle passes them through `foureyes.core.redaction.notified_params` (private values
redacted, anything not declared public hidden). Without them a message names none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.model import Outcome, RequestState, Review
from foureyes.notify.card import (
    MAX_ALERTS,
    MAX_PARAMS,
    ON_CARDS,
    ON_CHANNEL_CARDS,
    AlertLine,
    Card,
    Ticket,
    review_link,
)
from foureyes.notify.outbox import accepts, enqueue
from foureyes.notify.recipients import recipients
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store import txn_memo
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import AlertRow, RequestRow, RequestTicketRow, StaffRow

__all__ = [
    "request_card",
    "request_link",
    "request_moved",
    "request_needs_review",
    "request_settled",
    "request_submitted",
]

# The states a request's requester is told it moved to (a decision on it, or its outcome).
TOLD_TO_REQUESTER = frozenset(
    {
        RequestState.APPROVED,
        RequestState.SCHEDULED,
        RequestState.DENIED,
        RequestState.EXECUTED,
        RequestState.FAILED,
        RequestState.EXPIRED,
        RequestState.CANCELLED,
        RequestState.REVERTED,
    }
)


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
    card = (
        request_card(session, row, f"Request {row.state}", params, to_channel=True)
        if decision.options.notify
        else None
    )
    for channel in decision.options.notify:
        enqueue(
            session,
            channel=channel,
            kind=f"request.{row.state}",
            subject=f"foureyes: {row.action} on {row.account_ref} is {row.state}",
            body=_summary(row, params),
            link=request_link(row.id),
            now=now,
            details=card,
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
    reviews: Sequence[Review] = (),
    kind: str = "review.needed",
    submitted: datetime | None = None,
) -> None:
    """Tell who could give a missing approval now (`foureyes.notify.recipients`: not those
    away; a delegate eligible anyway for one away). `kind`: `review.reminder` for a reminder
    round (`foureyes.workflow.reminders`), with the request's `reviews` so far; `submitted`:
    when its escalation started counting (`foureyes.workflow.holds.decidable_since`)."""
    if not accepts(to_staff=row.requester_id):
        return  # no channel carries messages to people: no need to work out who they are
    card = request_card(session, row, "Your review is asked", params)
    for person, on_behalf in recipients(session, decision, row, reviews, now, submitted=submitted):
        if person == row.requester_id:
            continue
        also = f"\n(You hear of it for {on_behalf}, who is away.)" if on_behalf else ""
        enqueue(
            session,
            to_staff=person,
            kind=kind,
            subject=f"foureyes: your review is asked: {row.action} on {row.account_ref}",
            body=_summary(row, params) + f"\nExpires: {row.expires_at}" + also,
            link=request_link(row.id),
            now=now,
            details=card,
        )


def request_settled(
    session: Session,
    row: RequestRow,
    decision: Decision,
    now: datetime,
    *,
    params: Mapping[str, Any] | None = None,
) -> None:
    """A pending request was decided: tell the policy's channels (its requester heard of it
    from `request_moved`). `params`: as notifications may show them (module docstring)."""
    _to_channels(session, decision, row, now, params)


def request_moved(
    session: Session,
    row: RequestRow,
    now: datetime,
    *,
    actor: str | None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """`row` has just moved to its current state: tell its requester when that is a decision
    on it or its outcome (`TOLD_TO_REQUESTER`; not a cancellation of their own). Writes only
    to the outbox, in the caller's transaction: a channel that is down holds nothing up."""
    state = RequestState(row.state)
    if state not in TOLD_TO_REQUESTER:
        return
    if state == RequestState.CANCELLED and actor == row.requester_id:
        return
    if not accepts(to_staff=row.requester_id):
        return
    enqueue(
        session,
        to_staff=row.requester_id,
        kind=f"request.{row.state}",
        subject=f"foureyes: your request {row.action} on {row.account_ref} is {row.state}",
        body=_summary(row, params),
        link=request_link(row.id),
        now=now,
        details=request_card(
            session, row, f"Your request is {row.state}", params, to_requester=True
        ),
    )


_RECORDED_HERE = "foureyes.notify.recorded_here"


def recorded_here(session: Session, request_id: str, requester_name: str) -> None:
    """Tell the cards of `request_id` built later in this transaction what it knows: the
    request was recorded in it, by a requester named `requester_name`, with no ticket checked
    (a submit carried out at once), so they read neither the person nor the ticket checks.
    Only for a transaction that records no ticket check of the request after this."""
    session.info.setdefault(_RECORDED_HERE, {})[request_id] = requester_name


def request_card(
    session: Session,
    row: RequestRow,
    title: str,
    params: Mapping[str, Any] | None,
    *,
    to_requester: bool = False,
    to_channel: bool = False,
) -> dict[str, Any]:
    """The card of `row` (`foureyes.notify.card.Card.to_json`), as of now. `to_requester`: the
    card its requester gets, without alerts (what reviewers weigh about a request, such as
    `velocity` or `fast_approval`, is not its requester's to read, as on the console:
    `workflow.alerts.on_request`). `to_channel`: the card a chat room gets, whose readers
    foureyes does not check: only `card.ON_CHANNEL_CARDS` alerts."""
    shown = ON_CHANNEL_CARDS if to_channel else ON_CARDS
    known: str | None = session.info.get(_RECORDED_HERE, {}).get(row.id)
    # A transaction that moves a request on builds several cards of it (each move, the
    # channels): what they read is read once, until it writes there (`store.txn_memo`).
    # What the session holds unwritten is written first, as the reads' autoflush did: an
    # alert added since the last card is then seen (its INSERT forgets the card's alerts).
    session.flush()
    connection = session.connection()
    if known is None:
        requester_name = txn_memo.recall(
            connection,
            "card-requester",
            row.requester_id,
            ("staff",),
            lambda: _name_of(session, row.requester_id),
        )
    else:
        requester_name = known or None
    alerts = (
        ()
        if to_requester
        else txn_memo.recall(
            connection,
            "card-alerts",
            (row.id, shown),
            ("alerts",),
            lambda: tuple(
                AlertLine(a.severity, a.summary)
                for a in session.scalars(
                    select(AlertRow)
                    # Only what describes the request: alerts about people stay with oversight.
                    .where(AlertRow.request_id == row.id, AlertRow.detector.in_(shown))
                    .order_by(AlertRow.id.desc())
                    .limit(MAX_ALERTS)
                )
            ),
        )
    )
    tier = (row.decision or {}).get("tier")
    return Card(
        title=title,
        request_id=row.id,
        state=row.state,
        action=row.action,
        account=row.account_ref,
        requester=row.requester_id,
        requester_name=requester_name,
        link=review_link(row.id, row.digest),
        tier=str(tier) if tier else None,
        justification=row.justification,
        ticket=_ticket(session, row, checked=known is None),
        alerts=alerts,
        params=tuple(
            (name, _value(value)) for name, value in sorted((params or {}).items())[:MAX_PARAMS]
        ),
        expires_at=row.expires_at.isoformat() if row.expires_at else None,
        reason=row.reason,
    ).to_json()


def _name_of(session: Session, staff_id: str) -> str | None:
    person = session.get(StaffRow, staff_id)
    return (person.name or None) if person is not None else None


def _latest_ticket(session: Session, request_id: str) -> Ticket | None:
    latest = session.scalars(
        select(RequestTicketRow)
        .where(RequestTicketRow.request_id == request_id)
        .order_by(RequestTicketRow.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    return Ticket(
        reference=latest.reference,
        subject=latest.subject or None,
        url=latest.url or None,
        status=latest.status or None,
    )


def _ticket(session: Session, row: RequestRow, *, checked: bool = True) -> Ticket | None:
    """The request's ticket, if it names one: the latest check of it (`request_tickets`, as
    its system answered; not read when `checked` is False: none was recorded), else, read
    defensively, a `ticket` the row or its decision holds (a reference, or a mapping with
    reference/subject/status/url)."""
    latest = (
        txn_memo.recall(
            session.connection(),
            "card-ticket",
            row.id,
            ("request_tickets",),
            lambda: _latest_ticket(session, row.id),
        )
        if checked
        else None
    )
    if latest is not None:
        return latest
    given: Any = getattr(row, "ticket", None) or (row.decision or {}).get("ticket")
    if isinstance(given, str) and given:
        return Ticket(reference=given)
    if isinstance(given, Mapping):
        reference = given.get("reference") or given.get("ref") or given.get("id")
        if reference:
            return Ticket(
                reference=str(reference),
                subject=_text(given.get("subject")),
                url=_text(given.get("url")),
                status=_text(given.get("status")),
            )
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
