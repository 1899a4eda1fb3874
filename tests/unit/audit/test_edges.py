"""The edge an append remembers (`foureyes.audit.edges`): used when the log is the one it
committed, never after a rollback, another writer, or a log rewound and grown again; on a
SQLite file shared with the other processes through `<file>-edge` on the same terms."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from foureyes.audit import edges
from foureyes.audit.checkpoint import Signer
from foureyes.audit.log import AuditLog, NewEvent, SubtreeTable
from foureyes.audit.merkle import MemoryTree, NodeId
from foureyes.audit.verify import verify_log
from foureyes.store.database import Database
from foureyes.store.tables import EventRow
from tests.dba import dba

ORIGIN = "example.com/audit"
VERIFIER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32)))).verifier()
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def new(i: int, note: str = "") -> NewEvent:
    """Event `i`: the same bytes each time it is made (its time is fixed)."""
    return NewEvent("test.event", "alice", None, None, {"n": i, "note": note}, T0 + timedelta(i))


class _Reads:
    """Counts the edge reads appends make (`SubtreeTable.get_many`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = SubtreeTable.get_many

        def counted(store: SubtreeTable, ids: Sequence[NodeId]) -> list[bytes]:
            self.count += 1
            return real(store, ids)

        monkeypatch.setattr(SubtreeTable, "get_many", counted)


def append(database: Database, log: AuditLog, events: Sequence[NewEvent]) -> None:
    with database.transaction() as session:
        log.append_many(session, events)


@pytest.fixture
def unshared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared edge file: two logs stand for processes on two hosts (or PostgreSQL)."""
    monkeypatch.setattr(edges, "_shared_path", lambda _engine: None)


def sound(database: Database) -> None:
    """The stored tree is the tree of the stored bodies, and verifies."""
    with database.transaction() as session:
        bodies = session.scalars(select(EventRow.body).order_by(EventRow.seq))
        leaves = [hashlib.sha256(b"\x00" + bytes(b)).digest() for b in bodies]
        root = AuditLog(ORIGIN).root(session)
    assert root == MemoryTree(leaves).root()
    assert verify_log(database, [VERIFIER], batch_level=4).root_hash == root


def test_an_append_after_this_process_committed_reads_no_edge(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, reads = AuditLog(ORIGIN), _Reads(monkeypatch)
    append(database, log, [new(0)])
    for i in range(1, 40):
        append(database, log, [new(i * 3 + k) for k in range(1 + i % 3)])
    assert reads.count == 0  # the first append found an empty log: nothing to read
    sound(database)


def test_another_writer_moves_the_size_and_the_edge_is_read(
    database: Database, monkeypatch: pytest.MonkeyPatch, unshared: None
) -> None:
    """Two logs of one database stand for two processes: each sees the other's appends."""
    ours, theirs, reads = AuditLog(ORIGIN), AuditLog(ORIGIN), _Reads(monkeypatch)
    for i in range(20):
        append(database, ours, [new(2 * i)])
        append(database, theirs, [new(2 * i + 1), new(100 + i)])
    assert reads.count == 39  # every append but the first: the other moved the size
    sound(database)


@pytest.mark.parametrize("how", ["transaction", "savepoint", "seal"])
def test_an_append_that_did_not_commit_leaves_no_edge(
    database: Database, monkeypatch: pytest.MonkeyPatch, how: str, unshared: None
) -> None:
    """Our append of [A, B] does not commit; another writer commits [A', B], the same B; our
    next append must not resume from the edge of [A, B] (same size, same last event)."""
    ours, theirs, reads = AuditLog(ORIGIN), AuditLog(ORIGIN), _Reads(monkeypatch)
    append(database, ours, [new(i) for i in range(5)])

    def append_then_fail(session: Session) -> None:
        ours.append_many(session, [new(5, "A"), new(6)])
        raise RuntimeError

    if how == "transaction":
        with pytest.raises(RuntimeError), database.transaction() as session:
            append_then_fail(session)
    else:
        with database.transaction() as session:
            with pytest.raises(RuntimeError), session.begin_nested():
                append_then_fail(session)
            if how == "seal":  # the transaction appends again, after its savepoint rolled back
                ours.append_many(session, [new(50)])
    before = reads.count
    append(database, theirs, [new(5, "not A"), new(6)])
    append(database, ours, [new(7)])
    assert reads.count == before + 2
    sound(database)


def test_a_log_rewound_and_grown_to_the_same_size_is_read_again(
    database: Database, monkeypatch: pytest.MonkeyPatch, unshared: None
) -> None:
    """A restore (here: the DBA deletes the last events and moves the head back) and other
    events appended since: the size is the one our edge has, the last event is not."""
    ours, theirs, reads = AuditLog(ORIGIN), AuditLog(ORIGIN), _Reads(monkeypatch)
    append(database, ours, [new(i) for i in range(20)])
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= 17"))
        sql.execute(text('DELETE FROM audit_nodes WHERE ("index" + 1) << level > 17'))
        sql.execute(text("UPDATE audit_head SET size = 17"))
    append(database, theirs, [new(17, "again"), new(18, "again"), new(19, "again")])
    before = reads.count
    append(database, ours, [new(20)])
    assert reads.count == before + 1
    sound(database)


def _edge_file(database: Database) -> Path:
    return Path(f"{database.engine.url.database}-edge")


# The shared edge file is a SQLite file's (on PostgreSQL, the tests above).
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@sqlite_only
def test_processes_of_one_sqlite_file_share_the_committed_edge(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs, reads = AuditLog(ORIGIN), AuditLog(ORIGIN), _Reads(monkeypatch)
    for i in range(20):
        append(database, ours, [new(2 * i)])
        append(database, theirs, [new(2 * i + 1), new(100 + i)])
    assert reads.count == 0
    assert _edge_file(database).stat().st_mode & 0o077 == 0
    sound(database)


@sqlite_only
@pytest.mark.parametrize(
    "spoil",
    ["garbage", "truncated", "empty", "older", "another leaf", "other hashes", "symlink"],
)
def test_a_shared_edge_not_of_the_log_as_it_is_is_a_miss(
    database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spoil: str
) -> None:
    """Whatever the file holds, an append uses it only for the log its head shows; else it
    reads the store, and the tree stays the tree of the events (a file forged with other
    hashes for the right size and leaf is the one case used: see the module, it is as
    writable as the database)."""
    ours, theirs, reads = AuditLog(ORIGIN), AuditLog(ORIGIN), _Reads(monkeypatch)
    append(database, ours, [new(i) for i in range(11)])
    path = _edge_file(database)
    raw = path.read_bytes()
    older = raw
    append(database, ours, [new(11)])
    raw = path.read_bytes()
    spoiled = {
        "garbage": b"not an edge",
        "truncated": raw[:-7],
        "empty": b"",
        "older": older,
        "another leaf": raw[:8] + bytes(32) + raw[40:],
        "other hashes": raw[:40] + bytes(len(raw) - 40),
    }
    if spoil == "symlink":
        target = tmp_path / "elsewhere"
        target.write_bytes(raw)
        path.unlink()
        path.symlink_to(target)
    else:
        path.write_bytes(spoiled[spoil])
    append(database, theirs, [new(i) for i in range(12, 16)])  # completes a stored subtree
    if spoil == "other hashes":
        assert reads.count == 0  # used: the appended tree is not the events' tree,
        with pytest.raises(AssertionError):  # which the log's own root shows
            sound(database)
        return
    assert reads.count == 1
    sound(database)
    if spoil == "symlink":
        assert target.read_bytes() == raw  # replaced, never written through
        assert not path.is_symlink()


@sqlite_only
def test_an_append_that_did_not_commit_writes_no_shared_edge(database: Database) -> None:
    ours = AuditLog(ORIGIN)
    append(database, ours, [new(i) for i in range(5)])
    before = _edge_file(database).read_bytes()

    def append_then_fail() -> None:
        with database.transaction() as session:
            ours.append_many(session, [new(5, "A"), new(6)])
            raise RuntimeError

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert _edge_file(database).read_bytes() == before
