"""Who is told about a pending request now: the engine's candidates for a missing approval
(escalation counted from the request's submission), less those away (`staff_away`); for a
candidate away, their delegate when the delegate is a candidate too (eligible anyway) and not
away. Nobody else, ever: a delegate who could not approve the request is not told about it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.model import Review
from foureyes.policy.decision import Decision
from foureyes.policy.engine import satisfied
from foureyes.store.away import away_on
from foureyes.store.queries import everyone
from foureyes.store.tables import RequestRow

__all__ = ["reachable_now", "recipients"]


def recipients(
    session: Session,
    decision: Decision,
    row: RequestRow,
    reviews: Sequence[Review],
    now: datetime,
    *,
    submitted: datetime | None = None,
) -> list[tuple[str, str | None]]:
    """Who to tell about `row` now: (person, on behalf of whom or None), sorted. Candidates
    for a missing approval who are not away; for one away, their delegate when the delegate
    is a candidate too (so eligible anyway) and not away. Nobody else, ever. `submitted`:
    when its escalation started counting (the request's submission unless it waited)."""
    status = satisfied(
        decision,
        reviews,
        candidates=everyone(session, active_only=True),
        today=now.date(),
        submitted=submitted or row.created_at,
        now=now,
    )
    candidates = {who for factor in status.factors for who in factor.candidates}
    candidates.discard(row.requester_id)
    return reachable_now(session, candidates, now)


def reachable_now(
    session: Session, candidates: Collection[str], now: datetime
) -> list[tuple[str, str | None]]:
    """`candidates` (people eligible anyway) to tell now: (person, on behalf of whom or None),
    sorted. One away is not told; their delegate is, in their stead, when the delegate is a
    candidate too and not away."""
    eligible = set(candidates)
    away = away_on(session, now)
    told: dict[str, str | None] = {}
    for person in sorted(eligible):
        if person not in away:
            told.setdefault(person, None)
            continue
        delegate = away[person].delegate
        # A delegate is told only as a candidate (eligible anyway) who is not away; the
        # message also says whom they stand in for.
        if delegate in eligible and delegate not in away and told.get(delegate) is None:
            told[delegate] = person
    return sorted(told.items())
