"""Which break-glass requests the `kind` column says are settled (`integrity.SETTLED`) but no
settled event's body does.

The worker looks each pass only at break-glass requests with no settled event, found by the
`kind` and `request_id` columns (the bodies of every settled request, each pass, would grow
with history). A DBA who relabelled any event as `break_glass.signed_off` under a request
(attack hide-F3) kept its missing post-review from ever being flagged. So each process checks
every such claim once by the body it points at, and keeps the requests whose claim a body
vouched for; a request no body vouches for goes back to the worker's backlog, where its trail
(read by bodies) says it is not settled and it is flagged when due.

Cost: one index read of the claims per pass (a few rows per break-glass request, a rare
action), and the bodies of claims not seen before.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from foureyes.audit.copies import body_at
from foureyes.audit.log import stored_bytes
from foureyes.store.tables import EventRow, RequestRow
from foureyes.store.tree import in_tree
from foureyes.workflow.integrity import SETTLED

__all__ = ["unvouched"]

_VOUCHED: weakref.WeakKeyDictionary[Pool, set[str]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def unvouched(session: Session, glass: Collection[str] = ()) -> list[str]:
    """The break-glass requests (by their rows' flag, or in `glass`: those their submissions'
    bodies say broke the glass) with a settled event by their columns and none by its body."""
    # By pool: a read-only session's engine (`Engine.execution_options`) is another object
    # over the same pool and database.
    pool = session.get_bind().engine.pool
    with _LOCK:
        vouched = _VOUCHED.setdefault(pool, set())
        known = set(vouched)
    claims: dict[str, list[int]] = {}
    for request_id, seq in session.execute(
        select(EventRow.request_id, EventRow.seq)
        .join(RequestRow, RequestRow.id == EventRow.request_id)
        .where(
            or_(RequestRow.break_glass.is_(True), RequestRow.id.in_(list(glass))),
            EventRow.kind.in_(SETTLED),
            in_tree(),
        )
    ):
        if request_id not in known:
            claims.setdefault(str(request_id), []).append(int(seq))
    if not claims:
        return []
    seqs = [seq for found in claims.values() for seq in found]
    bodies = {
        int(seq): stored_bytes(raw)
        for seq, raw in session.execute(
            select(EventRow.seq, EventRow.body).where(EventRow.seq.in_(seqs), in_tree())
        )
    }
    settled: set[str] = set()
    for request_id, found in claims.items():
        for seq in found:
            body = body_at(seq, bodies[seq]) if seq in bodies else None
            if (
                body is not None
                and body.get("request") == request_id
                and body.get("kind") in SETTLED
            ):
                settled.add(request_id)
    with _LOCK:
        vouched.update(settled)
    return sorted(set(claims) - settled)
