"""A subject's events (a request's, a batch's) as their bodies say: what a look-up by the
`request_id` and `kind` columns of `audit_events` found, checked row by row and completed
with what this process's index of the bodies adds (`core.request_index`).

The columns are copies the tree's hashes do not cover: an event found only by its body had
its column changed (hidden); a row whose body is not the event at its seq, or a seq with no
row, was moved, deleted or edited (altered). Either is proof the store was altered, named by
`store_problem` in the words every re-check uses.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from foureyes.audit.copies import body_at
from foureyes.core import request_index

__all__ = ["Found", "complete", "store_problem", "submission_of"]


@dataclass(frozen=True)
class Found:
    """A subject's events as their bodies say (`complete`)."""

    bodies: dict[int, dict[str, Any]]
    """Seq to body, of the events read whose bodies name the subject (found by column or
    not)."""
    hidden: frozenset[int]
    """Seqs of events whose bodies name the subject that the look-up by column did not find."""
    altered: frozenset[int]
    """Seqs where the log's rows were moved, deleted or edited, from the subject's submission
    on (whoever's events they held)."""
    submitted_at: int | None
    """The seq of the first submission event found (None: none)."""

    def problem(self) -> str | None:
        return store_problem(self.hidden, self.altered)


def complete(
    session: Session,
    subject_id: str,
    rows: Iterable[tuple[int, bytes]],
    kinds: Collection[str],
    submitted_kind: str,
    *,
    seen: Collection[int] = (),
    since: int | None = None,
) -> Found:
    """Complete `rows` (seq and body of the events a look-up by the `request_id` and `kind`
    columns found, of `kinds`) with the events of those kinds whose bodies name `subject_id`
    from its submission on (`since`, else the first `submitted_kind` event among `rows`), as
    this process's index of the bodies has them; `seen`, seqs found by an earlier look-up (not
    hidden). Without a submission found nothing more is read: the caller refuses the subject
    as altered anyway (it has no submission)."""
    bodies: dict[int, dict[str, Any]] = {}
    altered: set[int] = set()
    for seq, raw in rows:
        said = body_at(seq, raw)
        # The body, not the columns, says what the event is about; a row whose body is not
        # the event at its seq was moved or edited.
        if said is None:
            altered.add(seq)
        elif said.get("request") == subject_id:
            bodies[seq] = said
    if since is None:
        starts = [s for s, b in bodies.items() if b.get("kind") == submitted_kind]
        since = min(starts) if starts else None
    hidden: set[int] = set()
    if since is not None:
        more = request_index.hidden(session, subject_id, since, {*seen, *bodies, *altered}, kinds)
        altered.update(more.gone)
        for seq, raw in more.bodies.items():
            said = body_at(seq, raw)
            if said is None:
                altered.add(seq)
            elif said.get("request") == subject_id:
                bodies[seq] = said
                hidden.add(seq)
    return Found(bodies, frozenset(hidden), frozenset(altered), since)


def submission_of(session: Session, subject_id: str, rows: Mapping[int, bytes]) -> int | None:
    """The seq of the request's `request.submitted` event: among `rows` (seq to body, found
    by the columns) where a body says so, else where this process's index has it (its column
    moved too: attack hide-F5); None when neither does."""
    starts = [
        seq
        for seq, raw in rows.items()
        if (body := body_at(seq, raw)) is not None
        and body.get("request") == subject_id
        and body.get("kind") == request_index.SUBMITTED
    ]
    return min(starts) if starts else request_index.submitted_at(session, subject_id)


def store_problem(hidden: Collection[int], altered: Collection[int]) -> str | None:
    """Why a subject's events in the store are not the ones its log holds (None: they are)."""
    found = []
    if hidden:
        found.append(
            f"its audit event(s) {_some(hidden)} are not found under it in the store "
            "(their request or kind column was changed)"
        )
    if altered:
        found.append(
            f"the audit log's rows at {_some(altered)} are not the events the log holds there "
            "(rows moved, deleted or edited)"
        )
    return "; ".join(found) or None


def _some(seqs: Collection[int]) -> str:
    ordered = sorted(seqs)
    more = "" if len(ordered) <= 5 else f" and {len(ordered) - 5} more"
    return ", ".join(str(seq) for seq in ordered[:5]) + more
