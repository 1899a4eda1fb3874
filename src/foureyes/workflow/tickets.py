"""Tickets a rule requires (`justification: {ticket: <system>}`), checked, not typed.

A request whose matched rules require a ticket of a system names it in its justification as
`<system>#<reference>`; the system is asked (`connectors.tickets.check_ticket`) at each stage:

- submission (`submit`): before the request is recorded; a refusal records no request, only its
  `request.refused` evidence, and the passed check is kept with the request (`request_tickets`,
  in the `request.submitted` event);
- approval (`recheck`, from `review.review` for an approve, once every other refusal has been
  checked; the systems are those required at submission and those the policy in force requires
  now, `required_now`): a ticket closed, or no longer naming the account, since submission
  refuses the approval; a passed check is recorded (`record_check`, a
  `request.ticket_checked` event) only with the review it was asked for;
- execution (`recheck`, from `execute.execute`, once the caller may execute it): the same,
  recorded only with the claim, and a refusal cancels the request
  (the ticket is what allowed it); a system that cannot answer fails the attempt (retried like
  a platform that is down), never lets it run unchecked.

A ticket system that is not configured, down, slow past its timeout or erroring raises
TicketSystemUnavailable: fail closed, saying why.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.connectors.tickets import Ticket, TicketSystemUnavailable, check_ticket
from foureyes.core.events import record as record_event
from foureyes.core.services import Services
from foureyes.errors import BadInput, FoureyesError
from foureyes.model import Account, Outcome
from foureyes.policy.decision import Decision
from foureyes.store import page_memo, txn_memo
from foureyes.store.bulk import one_of
from foureyes.store.tables import RequestRow, RequestTicketRow
from foureyes.workflow.subject import redecide

__all__ = [
    "Rechecked",
    "check",
    "covers",
    "latest",
    "recheck",
    "record",
    "record_check",
    "required_by",
    "required_now",
    "summaries",
    "unchecked",
]

SUBMIT, APPROVE, EXECUTE = "submit", "approve", "execute"


def required_by(decision: Decision | Mapping[str, Any]) -> tuple[str, ...]:
    """The ticket systems a decision (or its stored form) requires a ticket of."""
    if isinstance(decision, Decision):
        return decision.options.justification_tickets
    options = decision.get("options")
    systems = options.get("justification_tickets", ()) if isinstance(options, Mapping) else ()
    return tuple(str(name) for name in systems)


def check(
    services: Services, systems: Iterable[str], justification: str | None, account_ref: str
) -> tuple[Ticket, ...]:
    """The ticket of each system in `systems` the justification names, checked (open, naming
    the account). BadInput saying why one is refused; TicketSystemUnavailable when a system
    is not configured or cannot answer."""
    _, account_id = Account.split_ref(account_ref)
    checked: list[Ticket] = []
    for name in systems:
        system = services.tickets.get(name)
        if system is None:
            raise TicketSystemUnavailable(
                f"the policy requires a {name} ticket, but no ticket system {name!r} is "
                f"configured ([tickets.{name}] in foureyes.toml)"
            )
        checked.append(check_ticket(system, justification, (account_id, account_ref)))
    return tuple(checked)


def unchecked(row: RequestRow, decision: Decision, checked: Iterable[Ticket]) -> tuple[str, ...]:
    """The ticket systems `row` needs a ticket of under `decision` (those required at
    submission, and those `decision` requires) that `checked` holds no check of: a step that
    goes ahead only when this is empty never runs on a ticket it did not ask about."""
    required = {*required_by(row.decision or {}), *required_by(decision)}
    return tuple(sorted(required - {ticket.system for ticket in checked}))


def covers(tickets: Sequence[Ticket], decision: Decision) -> bool:
    """Whether `tickets` hold a checked ticket of every system `decision` requires."""
    return set(required_by(decision)) <= {ticket.system for ticket in tickets}


def summaries(tickets: Iterable[Ticket]) -> list[dict[str, Any]]:
    return [ticket.summary() for ticket in tickets]


def record(
    session: Session, request_id: str, stage: str, tickets: Iterable[Ticket], now: datetime
) -> None:
    """Keep each passed check with the request, in the caller's transaction."""
    for ticket in tickets:
        session.add(
            RequestTicketRow(
                request_id=request_id,
                stage=stage,
                system=ticket.system,
                reference=ticket.reference,
                status=ticket.status,
                subject=ticket.subject,
                url=ticket.url,
                checked_at=now,
            )
        )


def latest(session: Session, request_id: str) -> list[dict[str, Any]]:
    """The latest check of each of the request's tickets: what the views show. Read once per
    page (`page_memo`) or, in a transaction, once until it writes a check (`txn_memo`)."""

    def read() -> dict[str, list[dict[str, Any]]]:
        return _latest(session, [request_id])

    if page_memo.active():
        found = page_memo.recall("tickets", request_id, read)
    else:
        tables = ("request_tickets",)
        found = txn_memo.recall_flushed(session, "tickets", request_id, tables, read)
    return [dict(t) for t in found.get(request_id, [])]


def prefetch_latest(session: Session, request_ids: Collection[str]) -> None:
    """Inside a page (`page_memo`), `latest` for these requests in one statement."""
    if not page_memo.active() or not request_ids:
        return
    found = _latest(session, request_ids)
    for request_id in request_ids:
        page_memo.remember("tickets", request_id, {request_id: found.get(request_id, [])})


def _latest(session: Session, request_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    rows = session.scalars(
        select(RequestTicketRow)
        .where(one_of(session, RequestTicketRow.request_id, list(request_ids)))
        .order_by(RequestTicketRow.id)
    ).all()
    by_system: dict[str, dict[str, RequestTicketRow]] = {}
    for row in rows:
        by_system.setdefault(row.request_id, {})[row.system] = row
    return {
        request_id: [
            {
                "system": row.system,
                "reference": row.reference,
                "status": row.status,
                "subject": row.subject,
                "url": row.url,
                "stage": row.stage,
                "checked_at": row.checked_at,
            }
            for row in systems.values()
        ]
        for request_id, systems in by_system.items()
    }


@dataclass(frozen=True)
class Rechecked:
    """A re-check's answer: why the tickets refuse the request now (`problem`), else the passed
    checks (`tickets`, empty when the request requires none) for the caller to record."""

    problem: str | None = None
    tickets: tuple[Ticket, ...] = ()


def recheck(
    services: Services,
    request_id: str,
    states: Iterable[str],
    *,
    account: Account | None = None,
) -> Rechecked:
    """Ask the ticket systems again about the request's tickets (approval or execution), those
    `required_now` names for the account its caller re-decides with (`account`: execution's
    fresh lookup; None, the account as submitted, as an approval re-decides). Writes
    nothing: the caller records the passed checks (`record_check`) in the transaction where
    its own step is recorded, so that a refused or unauthorised attempt leaves no trace
    naming its author. The caller has already established that whoever asks may act on the
    request (a network call is made on their behalf); a request not in `states` is left to
    the caller's own refusal. TicketSystemUnavailable when a system cannot answer. Called
    outside any transaction: a slow system holds no lock."""
    with services.database.read() as session:
        row = session.get(RequestRow, request_id)
        if row is None or row.state not in set(states):
            return Rechecked()  # the caller's own look refuses it (unknown, or in another state)
        systems = required_now(services, session, row, account=account)
        justification, account_ref = row.justification, row.account_ref
    if not systems:
        return Rechecked()
    try:
        return Rechecked(tickets=check(services, systems, justification, account_ref))
    except BadInput as refused:
        return Rechecked(problem=refused.message)


def required_now(
    services: Services, session: Session, row: RequestRow, *, account: Account | None = None
) -> tuple[str, ...]:
    """The ticket systems `row` needs a ticket of now: those its decision at submission
    required, and those the policy in force requires of it (a policy update that adds
    `justification: {ticket: ...}` reaches requests already pending or approved: without the
    ticket they are neither approved nor carried out), decided on `account` as the caller's own
    re-decision sees it (execution: the account as its platform answers now, so a rule that
    matches only because the account changed since submission has its ticket asked; approval:
    None, the account as submitted). A request the policy in force cannot
    decide again (an altered record, ...) keeps its stored systems: the caller's own re-check
    under its lock refuses it, saying why."""
    stored = required_by(row.decision or {})
    try:
        current = redecide(services, session, row, services.clock(), account=account)
    except FoureyesError:
        return stored
    if current.outcome == Outcome.DENIED:
        return stored  # refused by the caller's own re-check, with the rules' reasons
    return tuple(sorted({*stored, *required_by(current)}))


def record_check(
    services: Services,
    session: Session,
    row: RequestRow,
    stage: str,
    checked: Sequence[Ticket],
    *,
    actor: str | None,
    now: datetime,
) -> None:
    """Keep the passed checks of a re-check with a `request.ticket_checked` event, in the
    caller's transaction; only once the step they were asked for is being recorded."""
    if not checked:
        return
    record(session, row.id, stage, checked, now)
    record_event(
        services,
        session,
        kind="request.ticket_checked",
        actor=actor,
        row=row,
        payload={"stage": stage, "tickets": summaries(checked)},
        now=now,
    )
