"""The audit log on the store: append in the caller's transaction, prove, checkpoint, search.

Tables (`foureyes.store.tables`): ``audit_events`` holds one row per event (its RFC 8785 body,
whose leaf hash ``SHA-256(0x00 || body)`` is recomputed when needed); ``audit_nodes`` holds the
*complete perfect subtrees of levels 4, 8, 12, …* (`foureyes.audit.layout`: the levels between
are recomputed from at most 8 rows); ``audit_checkpoints`` the signed checkpoints;
``audit_head`` one row (id 1) with the log's size.

Appending. `AuditLog.append` runs inside the caller's transaction, so the caller's state change and
its event commit together or not at all. It locks the head row (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite the transaction's ``BEGIN IMMEDIATE`` already serialises writers), takes
``seq = size``, takes the O(log n) right-edge subtrees (the edge this process committed last if
the head is still that log's, `foureyes.audit.edges`; else read in one query), writes the events
and the stored subtrees they complete (one per 15 events on average), and bumps the head. Writers
therefore never fork the tree: two appends can only follow one another. A head moved outside
foureyes (back, forward, deleted) makes the append fail whole as `LogHeadAltered`, never a
half-written log; `head_problem` says how the head and the events disagree, and names rows
outside the tree (an event at a negative seq, a subtree written ahead of the log), which reads
of events leave alone (`foureyes.store.tree`).

Proofs and roots for any size up to the head are composed from stored subtrees with one query
(`foureyes.audit.merkle`). Checkpoints are C2SP signed notes (`foureyes.audit.checkpoint`),
stored and, if a witness directory is given, copied there after the commit.

Verification and export are in `foureyes.audit.verify`; the diagnoses in `foureyes.audit.export`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foureyes.audit.canonical import JsonValue, canonical_json
from foureyes.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    Signer,
    sign_checkpoint,
)
from foureyes.audit.edges import Edge, EdgeCache
from foureyes.audit.export import (
    WITNESS_LATEST,
    AuditVerificationError,
    Tamper,
    note_checkpoint,
    write_witness,
)
from foureyes.audit.layout import STEP, Run, compose, is_stored, runs_for
from foureyes.audit.merkle import (
    CompactRange,
    MerkleVerificationError,
    NodeId,
    SubtreeStore,
    consistency_proof,
    inclusion_proof,
    tree_root,
    verify_consistency,
)
from foureyes.errors import BadInput, LogHeadAltered, NotFound, Unavailable
from foureyes.store.database import Database
from foureyes.store.tables import AuditHeadRow, CheckpointRow, EventRow, NodeRow, RequestRow
from foureyes.store.tree import in_tree

__all__ = [
    "RESERVED_KEYS",
    "AuditLog",
    "ConsistencyProof",
    "Event",
    "InclusionProof",
    "NewEvent",
    "SignedCheckpoint",
    "SubtreeTable",
    "driver_rows",
    "head_altered",
    "stored_bytes",
]

RESERVED_KEYS = frozenset({"seq", "at", "kind", "actor", "account", "request"})
"""Top-level body keys the log writes itself; a payload may not use them."""

_HEAD_ID = 1
# Session.info key: the events an open `AuditLog.group` appends when it ends.
_GROUP = "foureyes.audit.group"
# An append's statements are written out once, per database, and sent as they are
# (`exec_driver_sql`: the driver's own placeholders, no compilation, SQLAlchemy's error
# handling kept): SQLAlchemy's Core and ORM machinery cost more CPU than the statements do.
_EVENTS, _NODES = (cast(Table, row.__table__) for row in (EventRow, NodeRow))
# The head, locked (SQLite's BEGIN IMMEDIATE holds the write lock already), with the body of
# the last event: the check of the edge this process remembers (`foureyes.audit.edges`).
_READ_HEAD = (
    "SELECT size, (SELECT body FROM audit_events WHERE seq = audit_head.size - 1) "
    "FROM audit_head WHERE id = 1"  # _HEAD_ID
)
_READ_HEAD_FOR = {"postgresql": _READ_HEAD + " FOR UPDATE", "sqlite": _READ_HEAD}
_PLACEHOLDER = {"postgresql": "%s", "sqlite": "?"}
_ROWS_PER_INSERT = 500  # events per INSERT statement: 3,500 parameters, far below the limits
_MOVE_HEAD = {  # id 1: _HEAD_ID
    "postgresql": "UPDATE audit_head SET size = %s WHERE id = 1",
    "sqlite": "UPDATE audit_head SET size = ? WHERE id = 1",
}


@functools.lru_cache(maxsize=64)  # the usual counts: 1 to a few
def _insert_events(dialect: str, count: int, move_head: bool) -> str:
    """The INSERT of `count` events (one row of VALUES each); with `move_head` (PostgreSQL
    only), the head's new size (the first parameter) set by the same statement."""
    mark = _PLACEHOLDER[dialect]
    row = "(" + ", ".join([mark] * 7) + ")"
    sql = (
        "INSERT INTO audit_events (seq, at, kind, actor, account_ref, request_id, body) "
        "VALUES " + ", ".join([row] * count)
    )
    if move_head:
        sql = f"WITH moved AS ({_MOVE_HEAD[dialect]}) {sql}"
    return sql


# A stored subtree is written once, when the append that completes it runs: one already there
# was written ahead of the log outside foureyes. Inserted without raising, so that the append
# can name it (`append_many`) rather than fail on a constraint as if the head had moved.
# RETURNING counts the rows written (a driver's rowcount of an executemany is not to be relied
# on).
_INSERT_NODES = {
    "postgresql": postgresql.insert(_NODES).on_conflict_do_nothing().returning(_NODES.c.level),
    "sqlite": sqlite.insert(_NODES).on_conflict_do_nothing().returning(_NODES.c.level),
}
# The stored levels (`layout.is_stored`) a log can reach: a size is a bigint.
_STORED_LEVELS = tuple(range(STEP, 64, STEP))
_REMOVE_NEGATIVE = "DELETE FROM audit_events WHERE seq < 0"  # said to a person, never run
_LIMITS = {"kind": 50, "actor": 100, "account_ref": 300, "request_id": 36}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _stamp(at: datetime) -> str:
    """RFC 3339 UTC with microseconds, as event bodies carry it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp_param(session: Session) -> Callable[[datetime], Any]:
    """How the event's time is handed to the driver: as SQLAlchemy's column type hands it
    (SQLite: its text form), so that the stored value is the one a Core insert stored."""
    dialect = session.get_bind().dialect
    found = _STAMP_PARAMS.get(dialect.name)
    if found is None:
        processor = _EVENTS.c.at.type.dialect_impl(dialect).bind_processor(dialect)
        found = _STAMP_PARAMS[dialect.name] = processor or _same
    return found


def _same(value: datetime) -> Any:
    return value


_STAMP_PARAMS: dict[str, Callable[[datetime], Any]] = {}


def _utc(at: datetime) -> datetime:
    """Times come back naive from SQLite; every stored time is UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to append: who did what to whom, plus kind-specific `payload` fields.

    The payload's keys become top-level keys of the body next to the log's own (`RESERVED_KEYS`).
    """

    kind: str
    actor: str | None = None
    account_ref: str | None = None
    request_id: str | None = None
    payload: Mapping[str, JsonValue] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One appended event: its row, and its canonical body (the bytes the tree commits to)."""

    seq: int
    at: datetime
    kind: str
    actor: str | None
    account_ref: str | None
    request_id: str | None
    body: bytes = field(repr=False)

    @property
    def leaf_hash(self) -> bytes:
        """``SHA-256(0x00 || body)``: the event's leaf in the tree (recomputed, not stored)."""
        return _leaf(self.body)

    def data(self) -> dict[str, Any]:
        """The body as a JSON object; {} for a body that is not one (edited in the store:
        `audit verify` names it), so that a listing shows the rest rather than failing."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def text(self) -> str:
        """The body as text (bytes that are not UTF-8, edited in the store, replaced)."""
        return self.body.decode(errors="replace")


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the signed note that carries it."""

    checkpoint: Checkpoint
    note: bytes

    @property
    def size(self) -> int:
        return self.checkpoint.size


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 inclusion proof of leaf `leaf_index` in the tree of `tree_size` leaves."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    inclusion_path: tuple[bytes, ...]
    root_hash: bytes

    def to_json(self) -> dict[str, JsonValue]:
        """The proof with hashes in base64, named as RFC 9162 names them."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "inclusion_path": [_b64(h) for h in self.inclusion_path],
            "root_hash": _b64(self.root_hash),
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 consistency proof between the trees of `tree_size_1` and `tree_size_2` leaves."""

    tree_size_1: int
    tree_size_2: int
    consistency_path: tuple[bytes, ...]
    root_hash_1: bytes
    root_hash_2: bytes

    def to_json(self) -> dict[str, JsonValue]:
        """The proof with hashes in base64, named as RFC 9162 names them."""
        return {
            "tree_size_1": self.tree_size_1,
            "tree_size_2": self.tree_size_2,
            "consistency_path": [_b64(h) for h in self.consistency_path],
            "root_hash_1": _b64(self.root_hash_1),
            "root_hash_2": _b64(self.root_hash_2),
        }


# --- the subtree store on the tables ---------------------------------------------------------


def driver_rows(
    session: Session, sql: str, params: Sequence[object] | None = None
) -> list[tuple[Any, ...]]:
    """Run `sql` on the session's connection, in its transaction, and return plain tuples.

    The hot paths (proofs, verification) go to the driver directly: SQLAlchemy's result
    machinery costs more than these queries do. Text in `sql` must be built from integers only,
    never from text a caller gave; `params` use the driver's own placeholders. Byte columns
    come back as `bytes` on both databases.
    """
    driver = session.connection().connection.driver_connection
    if driver is None:  # pragma: no cover - only for a detached connection
        raise RuntimeError("the session has no database connection")
    binary = {"binary": True} if _dialect(session) == "postgresql" else {}
    cursor = driver.cursor(**binary)
    try:
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    finally:
        cursor.close()
    return rows


# One statement text whatever the nodes, so that psycopg prepares it once per connection and
# PostgreSQL skips parsing and planning on every later proof. Each run is one index range scan:
# LATERAL with ORDER BY and LIMIT (a run's length: the key is unique) keeps the planner from a
# hash join over a whole table, which it prefers on a large log when it cannot see the runs.
_PG_RUNS = (
    "SELECT 0, e.seq, e.body FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) "
    "CROSS JOIN LATERAL (SELECT seq, body FROM audit_events "
    "WHERE seq >= r.lo AND seq < r.hi ORDER BY seq LIMIT r.hi - r.lo) AS e UNION ALL "
    'SELECT r.level, n."index", n.hash '
    "FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS r(level, lo, hi) "
    'CROSS JOIN LATERAL (SELECT "index", hash FROM audit_nodes '
    'WHERE level = r.level AND "index" >= r.lo AND "index" < r.hi '
    'ORDER BY "index" LIMIT r.hi - r.lo) AS n'
)


class SubtreeTable:
    """`SubtreeStore` over the tables (`foureyes.audit.layout`): leaf hashes from the bodies in
    ``audit_events``, stored subtrees from ``audit_nodes``, the levels between recomputed.

    Every `get_many` is one query; a node that cannot be had (a body or subtree it needs is not
    stored) raises `KeyError`.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        if not ids:
            return []
        runs = runs_for(ids)
        if _dialect(self._session) == "postgresql":
            bodies = [run for run in runs if run[0] == 0]
            subtrees = [run for run in runs if run[0]]
            params = (
                [lo for _, lo, _ in bodies],
                [hi for _, _, hi in bodies],
                [level for level, _, _ in subtrees],
                [lo for _, lo, _ in subtrees],
                [hi for _, _, hi in subtrees],
            )
            rows = driver_rows(self._session, _PG_RUNS, params)  # bytea: always bytes
        else:
            rows = [
                (lv, i, stored_bytes(h))
                for lv, i, h in driver_rows(self._session, _sqlite_runs(runs))
            ]
        leaf = _leaf
        held = {(lv, i): leaf(h) if lv == 0 else h for lv, i, h in rows}
        return [compose(node, held) for node in ids]


def _leaf(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def stored_bytes(value: object) -> bytes:
    """A hash or body column's value as bytes. SQLite hands back what it was given: a value a
    DBA wrote as text (or a number) is taken as its UTF-8, and NULL as empty, so a proof or a
    verification over tampered rows is simply wrong (and fails its checks), never a crash."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return b"" if value is None else str(value).encode()


def _sqlite_runs(runs: Sequence[Run]) -> str:
    """One statement reading these runs, one range scan each (integers only, see driver_rows)."""
    parts = []
    for level, lo, hi in runs:
        if level == 0:
            where = f"seq >= {int(lo)} AND seq < {int(hi)}"
            parts.append(f"SELECT 0, seq, body FROM audit_events WHERE {where}")  # noqa: S608
        else:
            where = f'level = {int(level)} AND "index" >= {int(lo)} AND "index" < {int(hi)}'
            parts.append(f'SELECT level, "index", hash FROM audit_nodes WHERE {where}')  # noqa: S608
    return " UNION ALL ".join(parts)


class _Prefetch:
    """Reads the nodes of several roots and proofs in the first query, then serves from memory."""

    def __init__(self, store: SubtreeTable, extra: Sequence[NodeId]) -> None:
        self._store = store
        self._extra = list(extra)
        self._cache: dict[NodeId, bytes] = {}

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        missing = [node for node in ids if node not in self._cache]
        if missing:
            wanted = list(dict.fromkeys([*missing, *self._extra]))
            self._extra = []
            self._cache.update(zip(wanted, self._store.get_many(wanted), strict=True))
        return [self._cache[node] for node in ids]


def _edge(size: int) -> list[NodeId]:
    """The perfect subtrees that make up ``[0, size)``, largest first (the root's pieces)."""
    ids: list[NodeId] = []
    pos = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            ids.append((level, pos >> level))
            pos += 1 << level
    return ids


# --- the log ---------------------------------------------------------------------------------


class AuditLog:
    """The audit log in a SQLite or PostgreSQL store, named `origin`.

    `origin` is the first line of every checkpoint; by C2SP convention it is also the name of
    the log's signing key. Methods taking a `Session` run in the caller's transaction.
    """

    def __init__(self, origin: str) -> None:
        if not origin or "\n" in origin:
            raise BadInput("the log origin must be one non-empty line")
        self.origin = origin
        self._edges = EdgeCache()  # the edge after this process's last committed append

    # --- head ---

    def ensure_head(self, session: Session) -> None:
        """Create the head row (size 0) if it is missing; safe when several writers race."""
        module = postgresql if _dialect(session) == "postgresql" else sqlite
        session.execute(
            module.insert(AuditHeadRow).values(id=_HEAD_ID, size=0).on_conflict_do_nothing()
        )

    def _lock_head(self, session: Session) -> int:
        query = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID)
        if _dialect(session) == "postgresql":
            query = query.with_for_update()
        size = session.execute(query).scalar_one_or_none()
        if size is None:
            size = self._make_head(session)
        return size

    def _make_head(self, session: Session) -> int:
        """Create the missing head row (size 0, locked) unless the log holds events."""
        self.ensure_head(session)
        query = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID)
        if _dialect(session) == "postgresql":
            query = query.with_for_update()
        size: int = session.execute(query).scalar_one()
        if size == 0 and session.execute(select(func.max(EventRow.seq))).scalar() is not None:
            raise head_altered("the log's head row (audit_head) is missing, but it holds events")
        return size

    def _lock_for_append(self, session: Session, read_head: str) -> tuple[int, bytes | None]:
        """The head's size, locked, and the leaf hash of the event at ``size - 1`` (None if
        none or it cannot be seen), after the session's pending changes are flushed (so that
        the lock is held from here to the COMMIT only: as the autoflush of a Core read did)."""
        if session.autoflush:  # off in a `no_autoflush` block, which a Core read respects too
            session.flush()
        row = session.connection().exec_driver_sql(read_head).first()
        if row is None:
            return self._make_head(session), None
        size, body = row
        return size, None if body is None else _leaf(stored_bytes(body))

    def head_problem(self, session: Session, *, strays: bool = True) -> str | None:
        """Why the head row does not match the log (None when it does): its size must be one
        more than the last event's seq; and, with `strays`, no row may lie outside the tree:
        no event at a negative seq (no root covers it, yet a read by request or account would
        find it), no stored subtree the log has not completed (the append that completes it
        would collide with it). One statement of index look-ups only (the head, the first and
        last seq, the last subtree of each stored level), for the checks off the append path
        (`foureyes.core.logstate`: start-up, every worker pass, `/healthz`; signing a
        checkpoint, without `strays`: they do not change the tree it signs); an append finds a
        moved head by failing (`append_many`)."""
        head = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID).scalar_subquery()
        parts = [
            head,
            select(func.max(EventRow.seq)).scalar_subquery(),
            select(func.min(EventRow.seq)).scalar_subquery(),
        ]
        if strays:
            parts.extend(
                select(func.max(NodeRow.index)).where(NodeRow.level == level).scalar_subquery()
                for level in _STORED_LEVELS
            )
        size, last_seq, first_seq, *last_nodes = session.execute(select(*parts)).one()
        held = 0 if last_seq is None else int(last_seq) + 1
        if size is None and held:
            return f"the log's head row (audit_head) is missing, but the log holds {held} events"
        if size is not None and size != held:
            return f"the log's head (audit_head) says {size} events, but the log holds {held}"
        if not strays:
            return None
        if first_seq is not None and int(first_seq) < 0:
            return (
                f"the log holds an event row at seq {int(first_seq)}, outside its tree (no "
                "root, checkpoint or witness covers a negative seq, and nothing foureyes "
                "decides reads it); only the database owner can remove it (the runtime role "
                f"cannot delete audit rows): {_REMOVE_NEGATIVE}, with the append-only trigger "
                "off for that statement"
            )
        return _nodes_ahead(size or 0, dict(zip(_STORED_LEVELS, last_nodes, strict=True)))

    def size(self, session: Session) -> int:
        """The number of events (0 before the first append)."""
        query = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID)
        return session.execute(query).scalar_one_or_none() or 0

    # --- appending ---

    def append(
        self,
        session: Session,
        *,
        kind: str,
        actor: str | None,
        account_ref: str | None,
        request_id: str | None,
        payload: Mapping[str, JsonValue] | None = None,
        at: datetime | None = None,
    ) -> Event:
        """Append one event in the caller's transaction and return it.

        Raises `BadInput` for a payload key in `RESERVED_KEYS`, a value canonical JSON cannot
        carry, a naive `at`, or a field longer than its column.
        """
        new = NewEvent(kind, actor, account_ref, request_id, payload or {}, at)
        return self.append_many(session, [new])[0]

    @contextmanager
    def group(self, session: Session) -> Iterator[list[Event]]:
        """Events `add`ed in the block are appended together when it ends (one head lock, one
        frontier read, one insert), so the head lock is taken once, late, and held only from
        there to the COMMIT. An `append` or `append_many` in the block appends the waiting
        events first, in order. The block's own reads of the log do not see its waiting events:
        for blocks that read none of them back. Nested blocks join the outer one; a block left
        by an exception appends nothing (its transaction rolls back).

        It gives a list that, once the block has ended, holds the events it appended at the end
        (as appended: seq, time and body); a nested block's stays empty (the outer one's holds
        them)."""
        appended: list[Event] = []
        if _GROUP in session.info:
            yield appended
            return
        session.info[_GROUP] = []
        try:
            yield appended
            waiting: list[NewEvent] = session.info.pop(_GROUP)
            appended.extend(self.append_many(session, waiting))
        finally:
            session.info.pop(_GROUP, None)

    def add(self, session: Session, new: NewEvent) -> None:
        """Append `new` in the caller's transaction: at once, or with the open `group`."""
        waiting: list[NewEvent] | None = session.info.get(_GROUP)
        if waiting is None:
            self.append_many(session, [new])
        else:
            waiting.append(new)

    def append_many(self, session: Session, events: Sequence[NewEvent]) -> list[Event]:
        """Append several events in order in the caller's transaction (one head lock, one
        frontier read, batched inserts): the group commit of a busy writer. Events waiting
        in an open `group` are appended first (the answer is `events`' own)."""
        waiting: list[NewEvent] | None = session.info.get(_GROUP)
        if waiting:
            ahead = len(waiting)
            events = [*waiting, *events]
            waiting.clear()
            return self.append_many(session, events)[ahead:]
        if not events:
            return []
        now = datetime.now(UTC)
        dialect = _dialect(session)
        size, last_leaf = self._lock_for_append(session, _READ_HEAD_FOR[dialect])
        engine = session.get_bind().engine
        compact = self._resume(session, engine, size, last_leaf)
        made: list[Event] = []
        node_rows: list[dict[str, Any]] = []
        leaf = b""
        for offset, new in enumerate(events):
            item = self._event(size + offset, new, now)
            leaf = item.leaf_hash
            for node in compact.append(leaf):
                if is_stored(node.level):
                    node_rows.append({"level": node.level, "index": node.index, "hash": node.hash})
            made.append(item)
        stamp = _stamp_param(session)
        values = [
            (e.seq, stamp(e.at), e.kind, e.actor, e.account_ref, e.request_id, e.body) for e in made
        ]
        connection = session.connection()
        # One statement per 500 events; PostgreSQL moves the head in the last one (a data-
        # modifying WITH: one round trip fewer), SQLite in an UPDATE of its own below.
        moved = dialect == "postgresql"
        try:
            for first in range(0, len(values), _ROWS_PER_INSERT):
                chunk = values[first : first + _ROWS_PER_INSERT]
                last = first + _ROWS_PER_INSERT >= len(values)
                params = [value for row in chunk for value in row]
                if moved and last:
                    params.insert(0, compact.size)
                sql = _insert_events(dialect, len(chunk), moved and last)
                connection.exec_driver_sql(sql, tuple(params))
        except IntegrityError:
            # Under the head lock the only rows in the way are ones beyond a head moved back
            # (or inserted beyond it).
            raise head_altered(
                f"the log's head (audit_head) says {size} events, but event {size} exists "
                "already (the head was moved back, or an event inserted beyond it)"
            ) from None
        if node_rows:
            written = connection.execute(_INSERT_NODES[dialect], node_rows).all()
            if len(written) != len(node_rows):
                # Raised: the caller's transaction is rolled back, nothing of this append kept.
                raise head_altered(self._collided(session, size, node_rows))
        if not moved:
            connection.exec_driver_sql(_MOVE_HEAD[dialect], (compact.size,))
        self._edges.remember(session, engine, Edge(compact.size, leaf, compact.edge))
        return made

    def _resume(
        self, session: Session, engine: Engine, size: int, last_leaf: bytes | None
    ) -> CompactRange:
        """The compact range of the log's `size` events: the edge this process committed last
        if it is that log's (`foureyes.audit.edges`), else read from the stored subtrees."""
        known = self._edges.get(engine, size, last_leaf) if last_leaf is not None else None
        if known is not None:
            return CompactRange.resume(size, known.hashes)
        try:
            return CompactRange.from_store(size, SubtreeTable(session))
        except LookupError:
            raise head_altered(
                f"the log's head (audit_head) says {size} events, but the log does not hold them "
                "all (the head was moved forward, or events deleted)"
            ) from None

    def _collided(self, session: Session, size: int, nodes: Sequence[Mapping[str, Any]]) -> str:
        """What an append of a log of `size` events found in the way of the subtrees it
        completes (`nodes`): rows already stored with other hashes, written ahead of the log."""
        ahead: dict[int, int | None] = {}
        for node in nodes:
            stored = session.scalar(
                select(NodeRow.hash).where(
                    NodeRow.level == node["level"], NodeRow.index == node["index"]
                )
            )
            if stored is not None and stored_bytes(stored) != node["hash"]:
                ahead.setdefault(int(node["level"]), int(node["index"]))
        found = _nodes_ahead(size, ahead)
        return found or f"a subtree this append completes (log of {size} events) exists already"

    def _event(self, seq: int, new: NewEvent, now: datetime) -> Event:
        if not new.kind:
            raise BadInput("an event needs a kind")
        clash = RESERVED_KEYS.intersection(new.payload)
        if clash:
            raise BadInput(f"payload keys {sorted(clash)} are reserved for the log itself")
        at = now if new.at is None else new.at
        if at.tzinfo is None:
            raise BadInput("event times must be timezone-aware")
        at = at.astimezone(UTC)
        values = {
            "kind": new.kind,
            "actor": new.actor,
            "account_ref": new.account_ref,
            "request_id": new.request_id,
        }
        for name, value in values.items():
            if value is not None and len(value) > _LIMITS[name]:
                raise BadInput(f"event {name} is longer than {_LIMITS[name]} characters")
        body = canonical_json(
            {
                "seq": seq,
                "at": _stamp(at),
                "kind": new.kind,
                "actor": new.actor,
                "account": new.account_ref,
                "request": new.request_id,
                **new.payload,
            }
        )
        return Event(seq, at, new.kind, new.actor, new.account_ref, new.request_id, body)

    # --- roots and proofs ---

    def _size_or_head(self, session: Session, size: int | None) -> int:
        return self.size(session) if size is None else size

    def root(self, session: Session, size: int | None = None) -> bytes:
        """The root hash at `size` events (default: now)."""
        size = self._size_or_head(session, size)
        try:
            return tree_root(size, SubtreeTable(session))
        except LookupError:
            raise NotFound(f"the audit log has fewer than {size} events") from None

    def inclusion(self, session: Session, seq: int, size: int | None = None) -> InclusionProof:
        """The RFC 9162 inclusion proof of event `seq` in the tree of `size` events (default: now).

        One query reads the proof's nodes, the leaf and the root's pieces.
        """
        size = self._size_or_head(session, size)
        if not 0 <= seq < size:
            raise BadInput(f"event {seq} is not in a log of {size} events")
        store = _Prefetch(SubtreeTable(session), [(0, seq), *_edge(size)])
        try:
            path = inclusion_proof(seq, size, store)
            leaf = store.get_many([(0, seq)])[0]
            root = tree_root(size, store)
        except LookupError:
            raise NotFound(f"the audit log has fewer than {size} events") from None
        return InclusionProof(seq, size, leaf, tuple(path), root)

    def consistency(
        self, session: Session, size1: int, size2: int | None = None
    ) -> ConsistencyProof:
        """The RFC 9162 consistency proof from `size1` to `size2` events (default: now)."""
        size2 = self._size_or_head(session, size2)
        if not 0 <= size1 <= size2:
            raise BadInput(f"no consistency proof from size {size1} to size {size2}")
        store = _Prefetch(SubtreeTable(session), [*_edge(size1), *_edge(size2)])
        try:
            path = consistency_proof(size1, size2, store)
            root1, root2 = tree_root(size1, store), tree_root(size2, store)
        except LookupError:
            raise NotFound(f"the audit log has fewer than {size2} events") from None
        return ConsistencyProof(size1, size2, tuple(path), root1, root2)

    # --- checkpoints ---

    def checkpoint_at(self, session: Session, size: int) -> SignedCheckpoint | None:
        """The stored checkpoint of `size`, if there is one (its signature is not checked)."""
        row = session.get(CheckpointRow, size)
        return None if row is None else _signed(row.note)

    def latest_checkpoint(self, session: Session) -> SignedCheckpoint | None:
        """The stored checkpoint of the largest size (its signature is not checked)."""
        query = select(CheckpointRow.note).order_by(CheckpointRow.size.desc()).limit(1)
        note = session.execute(query).scalar_one_or_none()
        return None if note is None else _signed(note)

    def store_checkpoint(
        self, session: Session, signer: Signer, *, witness_dir: Path | None = None
    ) -> SignedCheckpoint:
        """Sign and store a checkpoint of the current size in the caller's transaction.

        With `witness_dir`, first checks that the witness's latest checkpoint is consistent with
        this one (an RFC 9162 proof from the stored nodes); if not, raises
        `AuditVerificationError` (``rolled-back``) and stores nothing. Returns the existing
        checkpoint if this size has one.
        """
        size = self._lock_head(session)
        # A checkpoint of a moved head would vouch for the wrong log (rows outside the tree
        # change nothing it signs: `logstate` reports those).
        moved = self.head_problem(session, strays=False)
        if moved is not None:
            raise head_altered(moved)
        store = SubtreeTable(session)
        stored = session.get(CheckpointRow, size)
        if stored is not None:
            signed = _signed(stored.note)
        else:
            checkpoint = Checkpoint(self.origin, size, tree_root(size, store))
            signed = SignedCheckpoint(checkpoint, sign_checkpoint(checkpoint, [signer]))
        if witness_dir is not None:
            self._check_witness(session, store, witness_dir, signed.checkpoint)
        if stored is None:
            session.execute(
                insert(CheckpointRow).values(
                    size=size,
                    root_hash=signed.checkpoint.root_hash,
                    note=signed.note.decode(),
                    created_at=datetime.now(UTC),
                )
            )
        return signed

    def check_witness(self, session: Session, witness_dir: Path, checkpoint: Checkpoint) -> None:
        """Raise unless `checkpoint` (one this log signed) is consistent with the witness's latest.

        Consistent: the witness's checkpoint is no larger, and an RFC 9162 consistency proof
        from it to `checkpoint`, made from the stored tree, verifies against both roots. Raises
        `AuditVerificationError` (``rolled-back``) if not; `Unavailable` if `witness_dir` is
        missing while the log has stored checkpoints (each was handed to the witness, so a
        missing witness is no fresh start: an empty directory is); `BadInput` if the witness's
        latest checkpoint does not parse or is another log's.
        """
        self._check_witness(session, SubtreeTable(session), witness_dir, checkpoint)

    def check_witness_at_head(self, session: Session, witness_dir: Path) -> int:
        """`check_witness` for the log as it stands (its head's size and root, unsigned): the
        check signing a checkpoint makes, for whoever must know whether the log was rolled
        back before acting on it (`foureyes.core.logstate`). Returns the size checked. Raises
        as `check_witness`, and `AuditVerificationError` (``rolled-back``) too when the log
        cannot recompute its root (a subtree or event it needs is missing): it then cannot
        be shown consistent with anything. Two queries and a small file read."""
        size = self.size(session)
        store = _Prefetch(SubtreeTable(session), _edge(size))
        try:
            root = tree_root(size, store)
        except LookupError:
            raise AuditVerificationError(
                Tamper.ROLLED_BACK,
                f"the log cannot recompute its root at its head ({size} events): an event or "
                "subtree it needs is missing",
                seq=size,
            ) from None
        self._check_witness(session, store, witness_dir, Checkpoint(self.origin, size, root))
        return size

    def _check_witness(
        self, session: Session, store: SubtreeStore, witness_dir: Path, new: Checkpoint
    ) -> None:
        if not witness_dir.is_dir():
            if session.execute(select(CheckpointRow.size).limit(1)).first() is None:
                return  # the log's first checkpoint: the witness starts with it
            raise Unavailable(
                f"the witness directory {witness_dir} is missing, yet the log has signed "
                "checkpoints: nothing can be checked against it (restore or mount it; an empty "
                "directory starts a new witness)"
            )
        try:
            held = note_checkpoint((witness_dir / WITNESS_LATEST).read_bytes())
        except FileNotFoundError:
            return
        except CheckpointError as exc:
            raise BadInput(f"the witness's latest checkpoint does not parse: {exc}") from exc
        if held.origin != new.origin:
            raise BadInput(f"the witness directory belongs to the log {held.origin!r}")
        if held.size > new.size:
            raise AuditVerificationError(
                Tamper.ROLLED_BACK,
                f"the witness holds a checkpoint of size {held.size}; the log has {new.size}",
                seq=new.size,
                size=held.size,
            )
        if held.size == 0:
            return
        try:
            proof = consistency_proof(held.size, new.size, store)
            verify_consistency(held.size, new.size, held.root_hash, new.root_hash, proof)
        except (MerkleVerificationError, LookupError) as exc:
            raise AuditVerificationError(
                Tamper.ROLLED_BACK,
                f"the log is not consistent with the witness's checkpoint of size {held.size}",
                size=held.size,
            ) from exc

    def checkpoint(
        self, target: Database | Session, signer: Signer, witness_dir: Path | None = None
    ) -> SignedCheckpoint:
        """Sign, store and publish a checkpoint of the current size.

        With a `Database`, runs its own transaction; with a `Session`, joins the caller's. The
        witness copy is written only once the checkpoint has committed (`write_witness`), so a
        witness never holds a checkpoint the log lost to a rollback.
        """
        if isinstance(target, Session):
            signed = self.store_checkpoint(target, signer, witness_dir=witness_dir)
            if witness_dir is not None:
                _publish_after_commit(target, witness_dir, signed.note)
            return signed
        with target.transaction() as session:
            signed = self.store_checkpoint(session, signer, witness_dir=witness_dir)
        if witness_dir is not None:
            write_witness(witness_dir, signed.note)
        return signed

    # --- reading ---

    def event(self, session: Session, seq: int) -> Event:
        """The event `seq`; `NotFound` if there is none (a row outside the tree is none)."""
        row = session.get(EventRow, seq)
        if row is None or not 0 <= seq < self.size(session):
            raise NotFound(f"there is no audit event {seq}")
        return _from_row(row)

    def events(
        self,
        session: Session,
        *,
        account: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        kind: str | None = None,
        request: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 100,
        before_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events matching every given filter, in seq order, at most `limit`, after `after_seq`
        (and before `before_seq`); with `newest_first`, the latest such events, latest first.

        `action` selects the events of requests for that action (e.g. ``account.deactivate``).
        `since` is inclusive, `until` exclusive. An account or actor filter walks the
        ``(account_ref, seq)`` or ``(actor, seq)`` index, so a timeline costs the rows it
        returns, not the size of the log.
        """
        if not 0 < limit <= 10_000:
            raise BadInput("limit must be between 1 and 10000")
        query = select(EventRow).where(in_tree())  # rows outside the tree are no events
        for column, value in (
            (EventRow.account_ref, account),
            (EventRow.actor, actor),
            (EventRow.kind, kind),
            (EventRow.request_id, request),
        ):
            if value is not None:
                query = query.where(column == value)
        if action is not None:
            requests = select(RequestRow.id).where(RequestRow.action == action)
            query = query.where(EventRow.request_id.in_(requests))
        for bound in (since, until):
            if bound is not None and bound.tzinfo is None:
                raise BadInput("time bounds must be timezone-aware")
        if since is not None:
            query = query.where(EventRow.at >= since.astimezone(UTC))
        if until is not None:
            query = query.where(EventRow.at < until.astimezone(UTC))
        if after_seq is not None:
            query = query.where(EventRow.seq > after_seq)
        if before_seq is not None:
            query = query.where(EventRow.seq < before_seq)
        order = EventRow.seq.desc() if newest_first else EventRow.seq
        query = query.order_by(order).limit(limit)
        return [_from_row(row) for row in session.execute(query).scalars()]


def _nodes_ahead(size: int, last: Mapping[int, int | None]) -> str | None:
    """Why stored subtrees lie beyond a log of `size` events (None: none does), given the last
    stored index of each level (`last`), naming them and what the database owner must do."""
    beyond = {
        level: index
        for level, index in sorted(last.items())
        if index is not None and int(index) >= size >> level
    }
    if not beyond:
        return None
    level, index = next(iter(beyond.items()))
    first, end = int(index) << level, (int(index) + 1) << level
    where = " OR ".join(f'(level = {lv} AND "index" >= {size >> lv})' for lv in beyond)
    remove = f"DELETE FROM audit_nodes WHERE {where}"  # noqa: S608 - said to a person, never run
    return (
        f"audit_nodes holds a subtree the log has not completed (level {level}, index "
        f"{int(index)}: events {first} to {end - 1}; the log has {size} events), written ahead "
        "of the log: the append that completes it would collide with it, so every append "
        "would fail from then on. Only the database owner can remove it (the runtime role "
        f"cannot delete audit rows): {remove}, with the append-only trigger off for that "
        "statement"
    )


def head_altered(problem: str) -> LogHeadAltered:
    """The error of a head found moved (`problem` says how)."""
    return LogHeadAltered(
        f"{problem}: it was changed outside foureyes, and nothing is written to the log until "
        "it is restored (`foureyes audit verify` says more)"
    )


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise BadInput(f"the audit log runs on sqlite or postgresql, not {name}")
    return name


def _signed(note: str | bytes) -> SignedCheckpoint:
    raw = note.encode() if isinstance(note, str) else note
    return SignedCheckpoint(note_checkpoint(raw), raw)


def _from_row(row: EventRow) -> Event:
    return Event(
        row.seq,
        _utc(row.at),
        row.kind,
        row.actor,
        row.account_ref,
        row.request_id,
        stored_bytes(row.body),
    )


def _publish_after_commit(session: Session, witness_dir: Path, note: bytes) -> None:
    def committed(_session: Session) -> None:
        event.remove(session, "after_soft_rollback", rolled_back)
        write_witness(witness_dir, note)

    def rolled_back(_session: Session, _previous: Any) -> None:
        event.remove(session, "after_commit", committed)

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_soft_rollback", rolled_back, once=True)
