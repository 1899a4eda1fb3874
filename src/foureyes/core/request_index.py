"""Which audit events are a request's, as their bodies say, whatever the `request_id` column
of `audit_events` now holds.

The column beside each event is a copy for look-ups: the tree's hashes cover the body, not it.
A database administrator who drops the protecting triggers could clear or re-point it on a
veto's `review.recorded` and `request.vetoed` events, delete the veto's review row and set the
request back to pending: found by the column alone, the veto was gone, and the request was
approved and carried out with no alert (attack led7-F3); the same hid a review from the
timeline, and its reviewer from the request (F4). So each process keeps an index of the events
whose *bodies* name a request (`events`); a reader compares what the column finds with it
(`foureyes.workflow.integrity.trail`, who took part, the timeline), and an event the index
knows that the column does not find is read by its seq and named as the store altered.

How it is read. The index covers one contiguous range of the log, [low, through), of committed
events. Each use reads, in the caller's transaction, the bodies appended since `through` (and,
for a request submitted before `low`, those from its submission up to `low`): one statement per
`CHUNK` events, parsed only where the bytes hold `"request":`. What a transaction read joins
the index when it commits (`after_commit`); until then it serves that transaction alone, and a
rollback (of the transaction or of a savepoint in it) discards it: the seqs of a rolled-back
append are given to other events. The first read of each transaction reads again the last
event the index read: a log restored or emptied under it is read afresh.

What it reads it also judges: a seq with no row (a gap), a row holding no JSON object or the
body of another seq (rows moved) is a suspect (`Found.suspects`): the log was altered there,
and every request whose events it could hold is refused (attack hide-F1). It notes the
requests whose submissions' bodies say they broke the glass (`broke_the_glass`, hide2-F4).
It reads each row once: a row moved after it was read is found by the reader that asks for
it by seq (`audit.copies.body_at`), and by the worker's sweep of the columns
(`workflow.copies_sweep`).

Memory: about 100 bytes per event indexed, at most `KEEP` events per process (the oldest are
forgotten first); a request submitted before what is kept is read again from its submission
when it is asked about (seconds for one a million events old).
"""

from __future__ import annotations

import bisect
import json
import sys
import threading
import weakref
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from foureyes.audit.copies import body_at
from foureyes.audit.log import stored_bytes
from foureyes.store.tables import EventRow
from foureyes.store.tree import head_size, in_tree

__all__ = [
    "CHUNK",
    "KEEP",
    "Found",
    "Hidden",
    "broke_the_glass",
    "events",
    "hidden",
    "submitted_at",
]

CHUNK = 5_000
"""Event bodies read per statement."""

KEEP = 500_000
"""Events the index of one process covers at most."""

_MARK = b'"request":'  # canonical JSON: no spaces
_READING = "foureyes.request_index.reading"
SUBMITTED = "request.submitted"


@dataclass
class _Reading:
    """What one transaction read that the index did not cover: ranges [start, end), and the
    events in them naming a request."""

    index: _Index
    ranges: list[tuple[int, int]] = field(default_factory=list)
    found: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # (seq, kind)
    tail: int | None = None  # read up to the head once: enough for this transaction
    edges: dict[int, bytes] = field(default_factory=dict)  # the last body each range read
    suspects: set[int] = field(default_factory=set)  # see `_Index._suspects`
    break_glass: set[str] = field(default_factory=set)  # see `_Index._break_glass`
    spoiled: bool = False  # a rollback in the transaction: serves it, never joins the index


class _Index:
    """One process's index of one database's log (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._low = 0
        self._through = 0  # empty while equal to `_low`
        self._by_request: dict[str, list[tuple[int, str]]] = {}  # (seq, kind as the body says)
        self._order: deque[tuple[int, str]] = deque()  # every indexed event, by seq
        # Seqs whose row is missing (a gap), or holds no JSON object, or another seq's body:
        # the log was altered there (rows moved, deleted or edited), whoever's they were.
        self._suspects: set[int] = set()
        # Requests whose `request.submitted` body says they broke the glass (from `_low` on,
        # kept when the oldest are forgotten: a few per day), whatever their rows say now.
        self._break_glass: set[str] = set()
        # Where the log ended at the first look for break-glass submissions, and those before
        # it (`_history`); None until then.
        self.history: tuple[int, frozenset[str]] | None = None
        self._last = b""  # the body of the event at `_through - 1`, as read

    def reset(self, through: int) -> None:
        """Forget everything: the log is not the one read (restored from a backup, emptied)."""
        with self._lock:
            if self._through == through:
                self._clear()

    def known(self, request_id: str, since: int) -> tuple[list[tuple[int, str]], int, int, bytes]:
        """The indexed events of `request_id` from `since` on, the range they cover, and the
        body of its last event as read."""
        with self._lock:
            found = self._by_request.get(request_id, [])
            since_at = bisect.bisect_left(found, (since, ""))
            return found[since_at:], self._low, self._through, self._last

    def covered(self) -> tuple[int, int]:
        """The range [low, through) the index covers (empty while they are equal)."""
        with self._lock:
            return self._low, self._through

    def suspects(self, since: int) -> set[int]:
        with self._lock:
            return {seq for seq in self._suspects if seq >= since}

    def broke_the_glass(self) -> set[str]:
        with self._lock:
            return set(self._break_glass)

    def join(self, reading: _Reading) -> None:
        """Take in a committed transaction's reading, range by range, where it touches what
        is covered (one that does not, after the oldest were forgotten meanwhile, would
        leave a hole: dropped); then forget the oldest beyond `KEEP`."""
        with self._lock:
            for start, end in sorted(reading.ranges):
                if self._through == self._low:
                    self._low = self._through = start
                if start <= self._through and end >= self._low:
                    if end > self._through and end - 1 in reading.edges:
                        self._last = reading.edges[end - 1]
                    self._take(start, end, reading.found, reading.suspects)
                    self._break_glass.update(reading.break_glass)
            while len(self._order) > KEEP:
                seq, request_id = self._order.popleft()
                kept = self._by_request[request_id]
                del kept[bisect.bisect_left(kept, (seq, ""))]
                if not kept:
                    del self._by_request[request_id]
                self._low = seq + 1
            self._suspects = {seq for seq in self._suspects if seq >= self._low}

    def _take(
        self, start: int, end: int, found: dict[str, list[tuple[int, str]]], suspects: set[int]
    ) -> None:
        """Add the events of [start, end) that lie outside [low, through) (it touches it)."""
        new = sorted(
            (seq, request_id, kind)
            for request_id, events in found.items()
            for seq, kind in events
            if start <= seq < end and not self._low <= seq < self._through
        )
        self._order.extendleft(reversed([(s, r) for s, r, _ in new if s < self._low]))
        self._order.extend((s, r) for s, r, _ in new if s >= self._through)
        for seq, request_id, kind in new:
            bisect.insort(self._by_request.setdefault(request_id, []), (seq, kind))
        self._suspects.update(seq for seq in suspects if start <= seq < end)
        self._low, self._through = min(self._low, start), max(self._through, end)


_INDEXES: weakref.WeakKeyDictionary[Pool, _Index] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()
_END = 2**62  # "up to the head": `in_tree` bounds each read


def _index_of(session: Session) -> _Index:
    # By pool: a read-only session's engine (`Engine.execution_options`) is another object
    # over the same pool and database.
    pool = session.get_bind().engine.pool
    with _INDEXES_LOCK:
        found = _INDEXES.get(pool)
        if found is None:
            found = _INDEXES[pool] = _Index()
    return found


@dataclass(frozen=True)
class Found:
    """A request's events from a seq on, as the bodies say."""

    seqs: list[int]
    """The seqs, in order, of the events whose bodies name the request (of the kinds asked)."""
    suspects: list[int]
    """Seqs from there on where the log was altered (whoever's events they held): a row
    missing, holding no JSON object, or holding the body of another seq (rows moved)."""


def events(
    session: Session, request_id: str, since: int, kinds: Collection[str] | None = None
) -> Found:
    """The events from `since` on (the request's `request.submitted` event: none of its events
    comes before it) whose bodies name `request_id` as their request (and, with `kinds`, one
    of them as their kind), and the suspect seqs, as far as this transaction sees the log: the
    events committed before it read the log's head (its first use in the transaction), and
    its own. Usually one statement, at the first use in a transaction: the bodies appended
    since the process's last use."""
    index = _index_of(session)
    reading = session.info.get(_READING)
    if reading is None or reading.index is not index:
        reading = session.info[_READING] = _Reading(index)
    while True:
        known, low, through, last = index.known(request_id, since)
        # From where the index ends (kept contiguous), or from `since` below it.
        taken = [*reading.ranges, *([(low, through)] if low < through else [])]
        if reading.tail is not None:
            taken.append((reading.tail, _END))
        indexed = low < through
        first = min(since, through) if indexed else since
        if all(
            _read(session, reading, a, b, last if indexed and a == through else None)
            for a, b in _minus([(first, _END)], taken)
        ):
            break
        index.reset(through)  # the log is not the one read: read it afresh
        # Along with what this transaction read believing the index (a range below it, read
        # first, names as missing the rows a shorter log never held).
        fresh = session.info[_READING] = _Reading(index, spoiled=reading.spoiled)
        reading = fresh
    named = [*known, *reading.found.get(request_id, ())]
    suspects = index.suspects(since) | {seq for seq in reading.suspects if seq >= since}
    return Found(
        sorted({seq for seq, kind in named if seq >= since and (kinds is None or kind in kinds)}),
        sorted(suspects),
    )


def broke_the_glass(session: Session) -> set[str]:
    """The requests whose `request.submitted` body says they broke the glass, whatever their
    rows' `break_glass` now says: for the worker, which owes each a post-review (attack
    hide2-F4). The log as it was at this process's first look is searched once, by the bodies
    alone (`_history`); what was appended since, by this index's reading of every body."""
    index = _index_of(session)
    upto, history = _history(session, index)
    low, through = index.covered()
    events(session, "", max(upto, low) if low < through else upto)
    reading: _Reading = session.info[_READING]
    return set(history) | index.broke_the_glass() | reading.break_glass


def _history(session: Session, index: _Index) -> tuple[int, frozenset[str]]:
    """Where the log ended at this process's first look, and the break-glass submissions
    before it: one scan of the bodies by the database (a byte search), once per process."""
    with index._lock:
        known = index.history
    if known is not None:
        return known
    upto = int(session.scalar(select(head_size())) or 0)
    mark = b'"break_glass":true'
    if session.get_bind().dialect.name == "sqlite":
        holds = func.instr(EventRow.body, mark) > 0
    else:
        holds = func.strpos(func.encode(EventRow.body, "escape"), mark.decode()) > 0
    found: set[str] = set()
    query = select(EventRow.seq, EventRow.body).where(EventRow.seq < upto, holds, in_tree())
    for seq, raw in session.execute(query):
        body = body_at(int(seq), stored_bytes(raw))
        if body is None or body.get("kind") != SUBMITTED or not _broke_the_glass(body):
            continue
        request_id = body.get("request")
        if isinstance(request_id, str):
            found.add(request_id)
    answer = (upto, frozenset(found))
    with index._lock:
        if index.history is None:
            index.history = answer
    return answer


def submitted_at(session: Session, request_id: str) -> int | None:
    """The seq of the `request.submitted` event whose body names `request_id`, if this
    process's index reaches back to it (None otherwise: it reads nothing older than it holds).
    For a reader whose look-up by the columns found none (its column changed too)."""
    low, through = _index_of(session).covered()
    found = events(session, request_id, low if low < through else _END, (SUBMITTED,))
    return found.seqs[0] if found.seqs else None


@dataclass(frozen=True)
class Hidden:
    """What the bodies say of a request beyond what a look-up by its columns found."""

    bodies: dict[int, bytes]
    """Events the index names that the look-up did not find: seq to body, as the row holds it
    now (the caller checks it is still the event at that seq: `audit.copies.body_at`)."""
    gone: list[int]
    """Suspect seqs (`Found.suspects`) and seqs the index names whose row is gone."""


def hidden(
    session: Session,
    request_id: str,
    since: int,
    found: Collection[int],
    kinds: Collection[str] | None = None,
) -> Hidden:
    """The events `events` names that a look-up by the `request_id` column (and the `kind`
    column, with `kinds`) did not find (`found`: the seqs it found), and the seqs where the log
    was altered. Both empty unless the store was altered."""
    named = events(session, request_id, since, kinds)
    missing = sorted(set(named.seqs) - set(found))
    bodies: dict[int, bytes] = {}
    if missing:
        rows = session.execute(
            select(EventRow.seq, EventRow.body).where(EventRow.seq.in_(missing), in_tree())
        )
        bodies = {int(seq): stored_bytes(raw) for seq, raw in rows}
    gone = set(named.suspects) | {seq for seq in missing if seq not in bodies}
    return Hidden(bodies, sorted(gone))


def _read(
    session: Session, reading: _Reading, start: int, end: int, edge: bytes | None = None
) -> bool:
    """Read the bodies of [start, end) into `reading`, CHUNK per statement; up to the head
    (`in_tree`) when `end` is `_END`, where what was read reaches the last event found. With
    `edge` (the body the index last read, at `start - 1`), that event is read too, first, and
    must still be as read (a log restored from a backup, or emptied and filled again, is not
    the one indexed): False, and nothing noted, when it is not."""
    at = start
    while at < end:
        rows = session.execute(
            select(EventRow.seq, EventRow.body)
            .where(EventRow.seq >= at - (edge is not None), EventRow.seq < end, in_tree())
            .order_by(EventRow.seq)
            .limit(CHUNK + (edge is not None))
        ).all()
        if edge is not None:
            if not rows or int(rows[0][0]) != at - 1 or stored_bytes(rows[0][1]) != edge:
                return False
            rows, edge = rows[1:], None
        expected = at - 1
        for seq, raw in rows:
            # Seqs run on without a gap (the head check covers the end): a gap is a row deleted.
            reading.suspects.update(range(expected + 1, int(seq)))
            expected = int(seq)
            _note(reading, int(seq), stored_bytes(raw))
        if end != _END and len(rows) < CHUNK:
            reading.suspects.update(range(expected + 1, end))
        if rows:
            reading.edges[int(rows[-1][0])] = stored_bytes(rows[-1][1])
        if len(rows) == CHUNK:
            reached = int(rows[-1][0]) + 1
        elif end != _END:
            reached = end  # nothing more of the tree lies before `end`
        else:
            # Up to the head: what was read reaches the last event found (later ones are
            # appended after it); this transaction reads no further (`events`).
            reached = int(rows[-1][0]) + 1 if rows else at
            reading.tail = reached
        if reached > at:
            reading.ranges.append((at, reached))
        if len(rows) < CHUNK:
            return True
        at = reached
    return True


def _note(reading: _Reading, seq: int, raw: bytes) -> None:
    """Index the body at `seq` under the request it names; a body that is not the event at
    `seq` is a suspect (indexed all the same where it names a request: rows moved about keep
    their bodies, and the reader then finds the row holds another seq's)."""
    said = b'"seq":%d' % seq
    at_its_seq = said + b"," in raw or said + b"}" in raw
    if at_its_seq and _MARK not in raw:
        return  # the event at `seq`, naming no request (canonical JSON: no spaces)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        reading.suspects.add(seq)
        return
    if body.get("seq") != seq:
        reading.suspects.add(seq)
    request_id, kind = body.get("request"), body.get("kind")
    if isinstance(request_id, str) and request_id and isinstance(kind, str):
        reading.found.setdefault(request_id, []).append((seq, sys.intern(kind)))
        if kind == SUBMITTED and body.get("seq") == seq and _broke_the_glass(body):
            reading.break_glass.add(request_id)


def _broke_the_glass(body: dict[str, Any]) -> bool:
    decision = body.get("decision")
    return isinstance(decision, dict) and decision.get("break_glass") is True


def _minus(ranges: list[tuple[int, int]], taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `ranges` outside every range of `taken`."""
    left = [r for r in ranges if r[0] < r[1]]
    for cut_start, cut_end in taken:
        kept: list[tuple[int, int]] = []
        for start, end in left:
            if cut_end <= start or cut_start >= end:
                kept.append((start, end))
                continue
            if start < cut_start:
                kept.append((start, cut_start))
            if cut_end < end:
                kept.append((cut_end, end))
        left = kept
    return left


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    reading = session.info.pop(_READING, None)
    if isinstance(reading, _Reading) and not reading.spoiled:
        reading.index.join(reading)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, _previous: object) -> None:
    reading = session.info.get(_READING)
    if isinstance(reading, _Reading):
        reading.spoiled = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: object) -> None:
    if not getattr(transaction, "nested", False) and getattr(transaction, "parent", None) is None:
        session.info.pop(_READING, None)
