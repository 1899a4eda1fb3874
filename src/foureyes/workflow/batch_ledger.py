"""A batch's lifecycle as its audit events record it, compared with its rows.

`batch_integrity` checks that a batch is what was submitted and reviewed; this module checks
that it is *where* the log says it is: the batch's state is the one its last `batch.<state>`
event moved it to, its `expires_at` the one its `batch.submitted` event recorded, its
`not_before` no earlier than its `batch.approved` event said, and every item's state the one its
last item event (`batch.item.executed`, `.failed`, `.cancelled`, `.retry`, `.reverted`) left it
in. The state columns are the runtime role's to write, so a DBA (or a stolen runtime
credential) could otherwise revive an expired batch, skip a delay, or run again an item that
was cancelled or already executed. Checked before every review, at the start of an execution
and before every chunk (incrementally: only the events since the last look are read).

Its events are found by their bodies too (`batch_integrity.read_trail`): one whose columns were
relabelled, cleared or re-pointed (a hidden `batch.declined`, `batch.executed` or item event,
attack hide-F2) still counts where its body puts it, and is itself a difference, as is a row
moved, deleted or edited among them.

A difference stops the batch (`refuse`) with a high `batch_tampered` alert; an item the log
says was cancelled, failed, executed or reverted is never carried out, whatever its row says,
and its row is put back as the log has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.core import found_events
from foureyes.core.services import Services
from foureyes.store.tables import BatchItemRow, BatchRow, EventRow
from foureyes.store.tree import in_tree
from foureyes.workflow import batch_events, batch_integrity

# The item event kinds and the state each leaves the item in.
ITEM_STATES = {
    "batch.item.executed": "executed",
    "batch.item.failed": "failed",
    "batch.item.cancelled": "cancelled",
    "batch.item.retry": "pending",
    "batch.item.reverted": "reverted",
}
# Done for good: never carried out again.
DONE = frozenset({"executed", "failed", "cancelled", "reverted"})
# A batch whose log says it ended: a row saying otherwise is put back, never re-run.
ENDED = frozenset({*batch_events.FINAL, "reverted"})
_BATCH_STATES = ("approved", "declined", "expired", "cancelled", "executing", "executed")
_MOVES = tuple(f"batch.{s}" for s in (*_BATCH_STATES, "reverted"))
_KINDS = (batch_events.SUBMITTED, *_MOVES, *ITEM_STATES)


@dataclass
class Ledger:
    """What the log says of one batch, read up to `seq` (exclusive of later events)."""

    batch_id: str
    submitted: list[dict[str, Any]] = field(default_factory=list)
    state: str | None = None
    not_before: str | None = None
    items: dict[str, str] = field(default_factory=dict)
    seq: int = -1
    hidden: set[int] = field(default_factory=set)
    """Seqs of its events the look-up by column did not find (`batch_integrity.read_trail`)."""
    altered: set[int] = field(default_factory=set)
    """Seqs where the log's rows were moved, deleted or edited since its submission."""
    submitted_at: int | None = None
    _seen: set[int] = field(default_factory=set, init=False, repr=False)  # seqs taken in

    def read(self, session: Session) -> Ledger:
        """Read the events since the last read (all of them the first time)."""
        query = (
            select(EventRow.seq, EventRow.body)
            .where(
                EventRow.request_id == self.batch_id,
                EventRow.kind.in_(_KINDS),
                EventRow.seq > self.seq,
                in_tree(),
            )
            .order_by(EventRow.seq)
        )
        rows = [(int(seq), stored_bytes(raw)) for seq, raw in session.execute(query)]
        self.seq = max([self.seq, *(seq for seq, _ in rows)])
        read = batch_integrity.read_trail(
            session,
            self.batch_id,
            [(seq, raw) for seq, raw in rows if seq not in self._seen],
            _KINDS,
            seen=self._seen,
            since=self.submitted_at,
        )
        self.submitted_at = read.submitted_at
        self.hidden.update(read.hidden)
        self.altered.update(read.altered)
        # In log order (the seq, which each body says too), hidden events where they belong.
        for seq, body in sorted(read.bodies.items()):
            if seq in self._seen:
                continue
            self._seen.add(seq)
            kind = body.get("kind")
            if kind == batch_events.SUBMITTED:
                self.submitted.append(body)
                self.state = "pending" if body.get("item_count") else "empty"
            elif kind in _MOVES:
                self.state = str(body.get("to"))
                if self.state == "approved":
                    value = body.get("not_before")
                    self.not_before = value if isinstance(value, str) else None
            elif kind in ITEM_STATES:
                self.items[str(body.get("item"))] = ITEM_STATES[str(kind)]
        return self

    def logged(self, item_id: str) -> str:
        return self.items.get(item_id, "pending")

    def batch_problem(self, batch: BatchRow) -> str | None:
        """Why the batch's row is not where its events say (None: it is)."""
        if len(self.submitted) != 1:
            return None  # `batch_integrity.problem` names that
        found = []
        if batch.state != self.state:
            found.append(f"its state is {batch.state}, but its audit events say it is {self.state}")
        expires = _when(self.submitted[0].get("expires_at"))
        if expires is None:
            found.append("its batch.submitted event does not say when it expires")
        elif batch.expires_at != expires:
            found.append(
                f"it expires at {_shown(batch.expires_at)}, but its audit events say at "
                f"{expires.isoformat()}"
            )
        earliest = _when(self.not_before)
        if (
            batch.state in ("approved", "executing")
            and earliest is not None
            and (batch.not_before is None or batch.not_before < earliest)
        ):
            found.append(
                f"it may run from {_shown(batch.not_before)}, but its audit events say not "
                f"before {earliest.isoformat()}"
            )
        return "; ".join(found) or None

    def item_problem(self, items: Sequence[BatchItemRow]) -> str | None:
        """Why an item's row is not in the state its events say (None: all are)."""
        for item in items:
            logged = self.logged(item.id)
            if logged in DONE and item.state != logged:
                return (
                    f"item {item.position} ({item.account_ref}) is {item.state}, but its audit "
                    f"events say it was {logged}"
                )
            if logged == "pending" and item.state not in ("pending", "executing"):
                return (
                    f"item {item.position} ({item.account_ref}) is {item.state}, but its audit "
                    "events say it is still to be carried out"
                )
        return None

    def store_problem(self) -> str | None:
        """Why its events are not all found under it in the store (None: they are)."""
        return found_events.store_problem(self.hidden, self.altered)

    def problem(self, batch: BatchRow, items: Sequence[BatchItemRow] = ()) -> str | None:
        found = [self.store_problem(), self.batch_problem(batch), self.item_problem(items)]
        return "; ".join(p for p in found if p is not None) or None


def ledger(session: Session, batch_id: str) -> Ledger:
    return Ledger(batch_id).read(session)


def refuse(
    services: Services,
    session: Session,
    batch: BatchRow,
    found: Ledger,
    problem: str,
    now: datetime,
    *,
    during: str,
) -> str:
    """Stop a batch whose rows disagree with its log, in the caller's transaction: every item
    row put back as the log has it (an item done for good stays done), the deadlines too; a
    batch the log says ended is put back as it ended; any other is cancelled (or its remaining
    items cancelled) by `batch_integrity.refuse`, with its high alert. The reason."""
    restore_items(session, batch.id, found)
    expires = _when(found.submitted[0].get("expires_at")) if len(found.submitted) == 1 else None
    if expires is not None:
        batch.expires_at = expires
    earliest = _when(found.not_before)
    if earliest is not None and (batch.not_before is None or batch.not_before < earliest):
        batch.not_before = earliest
    if found.state in ENDED or found.state is None:
        if found.state is not None:
            batch.state = found.state
        batch.updated_at = now
    elif batch.state != found.state:
        # pending/approved/executing in the log: act from where the log says it is.
        batch.state = found.state
    return batch_integrity.refuse(services, session, batch, problem, now, during=during)


def restore_items(session: Session, batch_id: str, found: Ledger) -> None:
    """Put back every item row whose state is not the one its events left it in."""
    for item in batch_integrity.items_of(session, batch_id, lock=True):
        logged = found.logged(item.id)
        if logged in DONE and item.state != logged:
            item.state = logged
        elif logged == "pending" and item.state not in ("pending", "executing"):
            item.state, item.finished_at = "pending", None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _shown(when: datetime | None) -> str:
    return "none" if when is None else when.isoformat()
