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

On a SQLite file the serving processes share one file, so the edge is kept beside it too
(`<file>-edge`, written by each committed append, read when this process's own entry misses:
two serving processes taking turns on the write lock each read the edge back from the stored
subtrees at nearly every turn, 4.5 % of the server's CPU under `bench/api.py`). It is used on
the same terms as this process's entry (its size and last leaf read under the head lock), so
an old or half-written file is read as a miss. It lies beside the database, for foureyes'
user alone: whoever can change it can change the database file itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["Edge", "EdgeCache"]

log = logging.getLogger(__name__)

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
        """The edge of the log whose head reads `size` with `last_leaf` last, if known (this
        process's, else the shared file's)."""
        found = self._edges.get(engine)
        if found is None or found.size != size or found.last_leaf != last_leaf:
            found = _read_shared(engine)
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
        _write_shared(engine, edge)


_HASH = 32
_SIZE_BYTES = 8


def _shared_path(engine: Engine) -> str | None:
    """`<file>-edge` for a SQLite file, else None (nothing shared)."""
    if engine.dialect.name != "sqlite":
        return None
    file = engine.url.database
    return None if not file or file == ":memory:" else f"{file}-edge"


def _encoded(edge: Edge) -> bytes:
    return b"".join((edge.size.to_bytes(_SIZE_BYTES, "big"), edge.last_leaf, *edge.hashes))


def _decoded(raw: bytes) -> Edge | None:
    body = len(raw) - _SIZE_BYTES - _HASH
    if body < 0 or body % _HASH:
        return None
    hashes = tuple(raw[at : at + _HASH] for at in range(_SIZE_BYTES + _HASH, len(raw), _HASH))
    size = int.from_bytes(raw[:_SIZE_BYTES], "big")
    return Edge(size, raw[_SIZE_BYTES : _SIZE_BYTES + _HASH], hashes)


def _read_shared(engine: Engine) -> Edge | None:
    path = _shared_path(engine)
    if path is None:
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # none yet (or not ours to read): the store is read
    try:
        return _decoded(os.read(descriptor, 4096))
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _write_shared(engine: Engine, edge: Edge) -> None:
    """Replace the shared file whole (a new file renamed over it: a reader sees the old edge
    or the new one, never half of each). Failing to is only a miss for the others."""
    path = _shared_path(engine)
    if path is None:
        return
    fresh = f"{path}.{os.getpid()}.{threading.get_ident()}"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(fresh, flags, 0o600)
        try:
            os.write(descriptor, _encoded(edge))
        finally:
            os.close(descriptor)
        os.replace(fresh, path)
    except OSError as exc:
        log.debug("the log's shared edge %s was not written: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(fresh)


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
