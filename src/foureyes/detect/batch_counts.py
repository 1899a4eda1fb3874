"""How batches count in the per-person detectors (`velocity`, `denial_burst`), for an event
being looked at (`seq`, `at`), so that a person's requests and batches add up to one tally:

- toward `velocity`: a batch submitted in the window counts as one request (one ask, under one
  approval: an approved batch of 600 suspensions is no flood); one that ended in the window
  without ever being approved (declined, expired, cancelled before approval) counts as its
  items, as many requests (an unapproved flood); each denied account of a batch counts as one,
  as a denied request does; a batch refused because some accounts had something pending
  (`batch.refused`) counts as its accounts, as held requests would;
- toward `denial_burst`: each account a batch's rules denied, and each conflicting account of a
  refused batch (each was an answer about an account).

Each is read as of the event (submitted, finished, approved up to it), never as of the pass,
so a pass that runs late finds what an early one would. A split-out account is an ordinary
request and counts as one already.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.store.tables import BatchRow, EventRow
from foureyes.store.tree import in_tree

APPROVED = "batch.approved"
REFUSED = "batch.refused"  # foureyes.workflow.batch_submit
_MAX_BATCHES = 1000  # batches read per look: each may stand for up to 10,000 accounts


@dataclass(frozen=True)
class Tally:
    """What a person's batches in a window count for."""

    requests: int = 0
    denials: int = 0


def _count(counts: Any, key: str) -> int:
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


UNAPPROVED_ENDS = ("declined", "expired", "cancelled")


def tally(
    session: Session,
    person: str,
    *,
    since: datetime,
    at: datetime,
    seq: int,
    actions: Collection[str] | None = None,
) -> Tally:
    """`person`'s batches and refused batches after `since` up to the event (`at`, `seq`),
    of `actions` (None: any)."""
    mine = [BatchRow.requester_id == person]
    if actions is not None:
        mine.append(BatchRow.action.in_(list(actions)))
    requests = denials = 0
    for item_count, counts in session.execute(
        select(BatchRow.item_count, BatchRow.plan["counts"])
        .where(*mine, BatchRow.created_at > since, BatchRow.created_at <= at)
        .limit(_MAX_BATCHES)
    ):
        denied = _count(counts, "denied")
        denials += denied
        requests += denied + (1 if item_count > 0 else 0)
    ended = session.execute(
        select(BatchRow.id, BatchRow.item_count, BatchRow.created_at)
        .where(
            *mine,
            BatchRow.state.in_(UNAPPROVED_ENDS),
            BatchRow.finished_at > since,
            BatchRow.finished_at <= at,
            BatchRow.item_count > 0,
        )
        .limit(_MAX_BATCHES)
    ).all()
    approved = (
        set(
            session.scalars(
                select(EventRow.request_id).where(
                    EventRow.kind == APPROVED,
                    EventRow.request_id.in_([r[0] for r in ended]),
                    in_tree(),
                )
            )
        )
        if ended
        else set()
    )
    for batch_id, item_count, created_at in ended:
        if batch_id not in approved:
            # Its items, less the one it counted for if it was submitted in the window too.
            requests += item_count - (1 if since < created_at <= at else 0)
    for (body,) in session.execute(
        select(EventRow.body)
        .where(
            EventRow.actor == person,
            EventRow.kind == REFUSED,
            EventRow.seq <= seq,
            EventRow.at > since,
            in_tree(),
        )
        .limit(_MAX_BATCHES)
    ):
        found = json.loads(body)
        if actions is not None and found.get("action") not in actions:
            continue
        requests += _count(found, "accounts")
        denials += _count(found, "conflicts")
    return Tally(requests, denials)
