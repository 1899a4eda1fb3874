"""The right edge of the log as this process last committed it, so that an append need not read
it back from the store.

An append resumes the tree's compact range (`merkle.CompactRange`): the hashes of the O(log n)
perfect subtrees that make up ``[0, size)``, composed from up to 8 stored rows each. The process
that made the last append knows them already. `EdgeCache` keeps, per database (engine), the
edge after this process's last *committed* append, with its size and the leaf hash of its last
event; an append uses it only when the head it reads under the head lock has that size and the
event at ``size - 1`` has that leaf hash (both read in the head lock's own statement).

What invalidates an entry, and why a stale one cannot be used:

- another writer's append (another process or engine): the head's size moves on, and the size
  of a log only grows; the entry's size no longer matches and the store is read;
- a transaction that does not commit publishes nothing: its edge waits in the session
  (`remember`) until ``after_commit``; a rollback (of the transaction, or of any savepoint
  in it) or a transaction ended unfinished drops it. An entry so only ever describes a state
  that was committed, and a committed log's events never change;
- a log rewound outside foureyes (a restore, rows deleted and the head moved back) and grown
  again to the same size: its last event is another one (its seq, microsecond time and
  request are in the body), so the leaf hash differs and the store is read.

A hit gives the very hashes the store would give for that committed log, and an append checks
everything it checked before (a head moved back still meets an event in the way; one moved
forward has another size). Only a log tampered with *behind* its last event while its size
stays put is appended to from the true edge rather than from the altered rows: verification
finds that tampering either way.
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["Edge", "EdgeCache"]

# Session.info key: (cache, engine, edge) of the transaction's last append, until it commits.
_PENDING = "foureyes.audit.edge"


@dataclass(frozen=True)
class Edge:
    """The compact range of a log of `size` events whose last event's leaf hash is `last_leaf`."""

    size: int
    last_leaf: bytes
    hashes: tuple[bytes, ...]


class EdgeCache:
    """The last committed `Edge` of each database this process appended to (thread-safe: an
    entry is replaced whole, never changed)."""

    def __init__(self) -> None:
        self._edges: weakref.WeakKeyDictionary[Engine, Edge] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, engine: Engine, size: int, last_leaf: bytes | None) -> Edge | None:
        """The edge of the log whose head reads `size` with `last_leaf` last, if known."""
        found = self._edges.get(engine)
        if found is None or found.size != size or found.last_leaf != last_leaf:
            return None
        return found

    def remember(self, session: Session, engine: Engine, edge: Edge) -> None:
        """Keep `edge` (what this transaction appended up to) once its COMMIT has succeeded."""
        _listen()
        session.info[_PENDING] = (self, engine, edge)

    def _publish(self, engine: Engine, edge: Edge) -> None:
        with self._lock:  # WeakKeyDictionary's writes are not atomic
            self._edges[engine] = edge


@functools.cache
def _listen() -> None:
    """The session hooks, once per process (a session without a pending edge costs a lookup)."""
    event.listen(Session, "after_commit", _committed)
    event.listen(Session, "after_soft_rollback", _rolled_back)
    event.listen(Session, "after_transaction_end", _ended)


def _committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is not None:
        cache, engine, edge = pending
        cache._publish(engine, edge)


def _rolled_back(session: Session, _previous: SessionTransaction) -> None:
    # Any rollback, a savepoint's too: what it undid may be in the pending edge.
    session.info.pop(_PENDING, None)


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost: committed (published already) or not
        session.info.pop(_PENDING, None)
