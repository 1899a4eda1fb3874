"""Whether an `executing` row is in flight by the audit log, not by its state column.

An undo is held while another execution on its account is in flight (`batch_undo_guard.in_flight`,
attack F0). The rows' `state` column is the runtime role's to write: a row a DBA wrote in as
`executing` (no `request.submitted` event, or one saying something else, or no claim) made the
honest undo be cancelled each time it was tried, with a reason blaming an ordinary execution
(attacker s3, S6). So each `executing` row found is judged by its log: a request is in flight
when its events' last state change is its claim (`request.executing`), and it then holds the undo
with the action the log says it carries out (whatever its row says); a batch item when its
batch's events say the batch is executing and the item not yet done. A row the log does not say
is in flight holds nothing, and its difference is named (the caller raises the high alert once).

Failing closed on what the log says: a row that differs from its events in other columns but
whose log says it is executing still holds the undo (its call may be on its way to the
platform). Not covered here: a genuine executing row whose state (or account) a DBA changed,
so that it is not found at all (the query reads the state column); see the README.

Cost: nothing when no row on the account is `executing` (the usual case); else one indexed
read of each such request's events (`integrity.trail`), or of each such item's batch events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from foureyes.model import RequestState
from foureyes.store.tables import BatchItemRow, BatchRow, RequestRow
from foureyes.workflow import batch_ledger, integrity

EXECUTING = RequestState.EXECUTING.value


@dataclass(frozen=True)
class Flight:
    """An `executing` row as its log judges it: `action`, what it carries out when the log
    says it is in flight (None: the log does not; "" for an action the log does not name as
    text, which counts as a write); `problem`, why the row is not what the log says (None:
    it is)."""

    action: str | None
    problem: str | None


def request_flight(session: Session, row: RequestRow) -> tuple[Flight, integrity.Trail]:
    """The `executing` request `row` judged by its trail (returned too, for the alert)."""
    found = integrity.trail(session, row.id)
    problem = found.problem(row)
    if len(found.submitted) != 1:
        return Flight(None, problem or "it has no single request.submitted audit event"), found
    submitted: Mapping[str, Any] = found.submitted[0]
    logged = found.moves[-1].get("to") if found.moves else submitted.get("state")
    if logged != EXECUTING:
        why = f"it is executing, but its audit events say it is {logged}"
        return Flight(None, problem or why), found
    if submitted.get("account") != row.account_ref:
        # In flight, but on the account its log names: it holds nothing here.
        return Flight(None, problem), found
    action = submitted.get("action")
    return Flight(action if isinstance(action, str) else "", problem), found


def item_flight(session: Session, item: BatchItemRow, batch: BatchRow) -> Flight:
    """The `executing` batch item `item` (of `batch`) judged by its batch's events: in flight
    while they say the batch is executing and the item not yet done; the action is the one
    the batch was submitted with."""
    ledger = batch_ledger.ledger(session, batch.id)
    logged = ledger.logged(item.id)
    if len(ledger.submitted) != 1:
        return Flight(
            None,
            f"item {item.position} ({item.account_ref}) is executing, but its batch has "
            f"{len(ledger.submitted)} batch.submitted audit events, not one",
        )
    # Events whose columns were changed count where their bodies put them, and are named.
    store = ledger.store_problem()
    if ledger.state != EXECUTING or logged != "pending":
        return Flight(
            None,
            store
            or f"item {item.position} ({item.account_ref}) is executing, but its audit events "
            f"say its batch is {ledger.state} and the item {logged}",
        )
    action = ledger.submitted[0].get("action")
    return Flight(action if isinstance(action, str) else "", store)


__all__ = ["Flight", "item_flight", "request_flight"]
