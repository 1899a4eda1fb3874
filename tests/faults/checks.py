"""Invariants of the request lifecycle, checked on a store after any history of operations (the
load test, the stateful fuzzer). Each returns a list of problems, empty when all holds.

- *chains*: a request's events start with its submission, and each state change follows from the
  one before (`from` is the state the last event left it in) and ends at the row's state; once a
  request is final it only ever moves on from `executed` to `reverted` (an undo);
- *executions*: a request reaches `executing` only from `approved` or a due `scheduled`, and, if
  its decision needed approvals (and it is no break-glass), its approvals come from at least as
  many distinct people other than the requester as its factors ask for, and nobody denied it;
- *platform*: the platform's own record of applied writes (`chirp_applied`, keyed by request
  id) holds exactly the requests foureyes says it executed (`executed` or later `reverted`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow, ReviewRow

FINAL = {state.value for state in RequestState if state.final}
_REVIEW = "review"


def _bodies(session: Session) -> dict[str, list[dict[str, Any]]]:
    by_request: dict[str, list[dict[str, Any]]] = {}
    for request_id, body in session.execute(
        select(EventRow.request_id, EventRow.body)
        .where(EventRow.request_id.is_not(None))
        .order_by(EventRow.seq)
    ):
        by_request.setdefault(request_id, []).append(json.loads(body))
    return by_request


def lifecycle_problems(session: Session) -> list[str]:
    """Every problem with the lifecycle invariants above, in the caller's transaction."""
    rows = list(session.scalars(select(RequestRow)))
    bodies = _bodies(session)
    reviews: dict[str, list[ReviewRow]] = {}
    for review in session.scalars(select(ReviewRow).where(ReviewRow.kind == _REVIEW)):
        reviews.setdefault(review.request_id, []).append(review)
    problems: list[str] = []
    executed: set[str] = set()
    for row in rows:
        events = bodies.get(row.id, [])
        if not events or events[0]["kind"] != "request.submitted":
            problems.append(f"{row.id}: its events do not start with its submission")
            continue
        state = events[0]["state"]
        for event in events[1:]:
            if "from" not in event or "to" not in event:
                continue
            if event["from"] != state:
                problems.append(f"{row.id}: {event['kind']} from {event['from']}, was {state}")
            if state in FINAL and (state, event["to"]) != ("executed", "reverted"):
                problems.append(f"{row.id}: left final state {state} for {event['to']}")
            if event["to"] == "executing":
                problems += _approved_enough(row, reviews.get(row.id, []))
            if event["to"] == "executed":
                executed.add(row.id)
            state = event["to"]
        if state != row.state:
            problems.append(f"{row.id}: its events end at {state}, the row says {row.state}")
    applied = set(session.scalars(select(ChirpAppliedRow.idempotency_key)))
    if applied != executed:
        problems.append(
            f"platform applied {sorted(applied - executed)} not executed; "
            f"executed {sorted(executed - applied)} not applied"
        )
    return problems


def _approved_enough(row: RequestRow, reviews: list[ReviewRow]) -> list[str]:
    decision = row.decision
    if decision.get("outcome") != "pending" or row.break_glass:
        return []
    needed = sum(int(factor.get("approvals", 0)) for factor in decision.get("factors", []))
    approvers = {r.reviewer_id for r in reviews if r.decision == "approve"}
    problems = []
    if row.requester_id in approvers:
        problems.append(f"{row.id}: executed with the requester's own approval")
    if len(approvers - {row.requester_id}) < needed:
        problems.append(f"{row.id}: executed with {len(approvers)} approvals of {needed}")
    if any(r.decision == "deny" for r in reviews):
        problems.append(f"{row.id}: executed although denied")
    return problems
