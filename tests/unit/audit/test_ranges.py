"""The fast path of verification (`foureyes.audit.ranges`), on SQLite and PostgreSQL: ranges
checked in worker processes agree with one process and with the reference tree, and whatever they
do not vouch for goes to the careful pass, which names the first bad entry.

The log in every test: events 0..39; checkpoints of sizes 16 (stored and witnessed) and 32
(stored), so ranges up to 32 are pinned by a checkpoint and 32..39 are not. Verification runs with
ranges of 4 events (``batch_level=2``) in 2 worker processes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, text

from foureyes.audit import verify as verify_module
from foureyes.audit.checkpoint import Signer
from foureyes.audit.export import AuditVerificationError, Tamper
from foureyes.audit.layout import is_stored
from foureyes.audit.log import AuditLog, NewEvent, driver_rows
from foureyes.audit.merkle import MemoryTree
from foureyes.audit.ranges import Range, check_range, checked_ranges, worker_connect
from foureyes.audit.verify import VerifyReport, verify_log
from foureyes.store.database import Database
from tests.dba import dba

ORIGIN = "example.com/audit"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIZE = 40


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "witness"


@pytest.fixture
def log(database: Database, witness: Path) -> AuditLog:
    log = AuditLog(ORIGIN)
    for start, stop, witnessed in ((0, 16, witness), (16, 32, None), (32, SIZE, None)):
        with database.transaction() as session:
            log.append_many(
                session,
                [
                    NewEvent(
                        "account.viewed",
                        f"e-{i % 3}",
                        f"chirp:user{i % 4}",
                        payload={"n": i, "ticket": f"CASE-{i}"},
                        at=T0 + timedelta(minutes=i),
                    )
                    for i in range(start, stop)
                ],
            )
        if stop < SIZE:
            log.checkpoint(database, SIGNER, witnessed)
    return log


def verify(database: Database, witness: Path | None = None, **options: Any) -> VerifyReport:
    options = {"batch_level": 2, "workers": 2} | options
    return verify_log(database, [SIGNER.verifier()], origin=ORIGIN, witness_dir=witness, **options)


def diagnose(database: Database, witness: Path | None = None) -> tuple[Tamper, int | None]:
    with pytest.raises(AuditVerificationError) as caught:
        verify(database, witness)
    return caught.value.kind, caught.value.seq


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def reference(database: Database) -> MemoryTree:
    """The tree over the stored bodies, as `MemoryTree` builds it."""
    with database.engine.connect() as sql:
        bodies = sql.execute(text("SELECT body FROM audit_events ORDER BY seq")).scalars()
        return MemoryTree(leaf(bytes(b)) for b in bodies)


def rebuild_tree(sql: Connection, bodies: dict[int, bytes]) -> None:
    """Put `bodies` in place and recompute every stored subtree, as a careful attacker would."""
    for seq, body in bodies.items():
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = :s"), {"b": body, "s": seq})
    stored = sql.execute(text("SELECT body FROM audit_events ORDER BY seq")).scalars()
    tree = MemoryTree()
    nodes = [s for b in stored for s in tree.append(leaf(bytes(b))) if is_stored(s.level)]
    sql.execute(text("DELETE FROM audit_nodes"))
    sql.execute(
        text('INSERT INTO audit_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
        [{"l": s.level, "i": s.index, "h": s.hash} for s in nodes],
    )


def body(sql: Connection, seq: int) -> bytes:
    found = sql.execute(text("SELECT body FROM audit_events WHERE seq = :s"), {"s": seq})
    return bytes(found.scalar_one())


# --- a sound log ---------------------------------------------------------------------------


def test_workers_agree_with_one_process_and_the_reference_tree(
    database: Database, log: AuditLog, witness: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def careful(*args: object) -> bytes:
        raise AssertionError("the fast path did not vouch for a sound log")

    # A sound log never needs the careful pass.
    monkeypatch.setattr(verify_module, "_verify_carefully", careful)
    seen: list[tuple[int, int]] = []
    pooled = verify(database, witness, progress=lambda done, total: seen.append((done, total)))
    alone = verify(database, witness, workers=1)
    expected = reference(database).root()
    assert (pooled.size, pooled.root_hash) == (alone.size, alone.root_hash) == (SIZE, expected)
    assert (pooled.checkpoints, pooled.witnessed, pooled.latest_checkpoint) == (2, 2, 32)
    assert seen == [(end, SIZE) for end in range(4, SIZE + 1, 4)]


def test_ranges_are_checked_in_the_workers(database: Database, log: AuditLog) -> None:
    tree = reference(database)
    tasks = [Range(start, start + 8, (start + 3, start + 8)) for start in range(0, SIZE, 8)]

    def in_this_process(task: Range) -> tuple[bytes, ...] | None:
        raise AssertionError(f"{task} was checked in this process")

    results = list(
        checked_ranges(
            tasks,
            last_seq=SIZE - 1,
            workers=2,
            connect=worker_connect(database),
            local=in_this_process,
        )
    )
    # For each range: the hash of its first 3 leaves (2**1 + 2**0) and of all 8 of them.
    assert [(task, folds) for task, folds in results] == [
        (
            task,
            (
                hashlib.sha256(
                    b"\x01" + tree.get(1, task.start // 2) + tree.get(0, task.start + 2)
                ).digest(),
                tree.get(3, task.start // 8),
            ),
        )
        for task in tasks
    ]


def test_an_in_memory_database_is_checked_in_this_process() -> None:
    assert worker_connect(Database("sqlite://")) is None


# --- pinned ranges -------------------------------------------------------------------------


def test_a_pinned_range_leaves_the_bodies_seqs_to_the_checkpoint(
    database: Database, log: AuditLog
) -> None:
    with dba(database) as sql:
        first, second = body(sql, 1), body(sql, 2)
        rebuild_tree(sql, {1: second, 2: first})
    with database.transaction() as session:

        def rows(statement: str) -> list[tuple[Any, ...]]:
            return driver_rows(session, statement)

        pg = database.dialect == "postgresql"
        # Rows, leaves and nodes all agree, so only the bodies' own seqs tell ...
        assert check_range(rows, pg, Range(0, 4, (4,)), last_seq=SIZE - 1) is None
        # ... which a pinned range does not look at: its root goes to the checkpoint instead,
        pinned = check_range(rows, pg, Range(0, 4, (4,), pinned=True), last_seq=SIZE - 1)
    assert pinned == (reference(database).get(2, 0),)
    # which does not agree: the careful pass then names the swap.
    assert diagnose(database) == (Tamper.REORDERED, 1)


def test_beyond_the_last_checkpoint_the_bodies_seqs_are_checked(
    database: Database, log: AuditLog
) -> None:
    with dba(database) as sql:
        first, second = body(sql, 33), body(sql, 35)
        rebuild_tree(sql, {33: second, 35: first})
    assert diagnose(database) == (Tamper.REORDERED, 33)


# --- tampering -----------------------------------------------------------------------------


def test_an_edited_event(database: Database, log: AuditLog, witness: Path) -> None:
    # No leaf hash is stored: the 16 events under the stored subtree (4, 0) are named.
    with dba(database) as sql:
        edited = body(sql, 5).replace(b"CASE-5", b"CASE-6")
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = 5"), {"b": edited})
    with pytest.raises(AuditVerificationError, match=r"events \[0, 16\) do not hash") as caught:
        verify(database, witness)
    assert (caught.value.kind, caught.value.seq) == (Tamper.MODIFIED, 0)


def test_a_deleted_event(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq = 21"))
    assert diagnose(database) == (Tamper.DELETED, 21)


def test_two_nodes_that_trade_a_byte(database: Database, log: AuditLog) -> None:
    # Concatenated, the level-4 nodes 0 and 1 still read the same; one by one they do not. Both
    # lie in one range of 32 events, whose stored subtrees are compared one level at a time.
    with dba(database) as sql:
        held = {
            i: bytes(h)
            for i, h in sql.execute(
                text('SELECT "index", hash FROM audit_nodes WHERE level = 4 AND "index" IN (0, 1)')
            )
        }
        for index, value in ((0, held[0][:31]), (1, held[0][31:] + held[1])):
            sql.execute(
                text('UPDATE audit_nodes SET hash = :h WHERE level = 4 AND "index" = :i'),
                {"h": value, "i": index},
            )
    with pytest.raises(AuditVerificationError) as caught:
        verify(database, batch_level=5)
    assert (caught.value.kind, caught.value.seq) == (Tamper.MODIFIED, 0)


def test_a_subtree_of_a_level_the_log_does_not_store(database: Database, log: AuditLog) -> None:
    # Nothing reads it, but it is not the log's: verification says so.
    with dba(database) as sql:
        sql.execute(
            text('INSERT INTO audit_nodes (level, "index", hash) VALUES (1, 0, :h)'),
            {"h": b"\x07" * 32},
        )
    with pytest.raises(AuditVerificationError, match="levels the log does not store") as caught:
        verify(database)
    assert caught.value.kind == Tamper.INSERTED


def test_a_node_above_the_ranges(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(
            text('UPDATE audit_nodes SET hash = :h WHERE level = 4 AND "index" = 1'),
            {"h": b"\x07" * 32},
        )
    assert diagnose(database) == (Tamper.MODIFIED, 16)


def test_a_recomputed_tree_against_the_witness(
    database: Database, log: AuditLog, witness: Path
) -> None:
    with dba(database) as sql:
        rebuild_tree(sql, {6: body(sql, 6).replace(b"CASE-", b"CASE-X")})
        sql.execute(text("DELETE FROM audit_checkpoints"))
    assert verify(database).size == SIZE  # consistent in itself
    assert diagnose(database, witness) == (Tamper.REPLACED, 0)


@pytest.mark.pg_only
def test_a_seq_column_altered_to_hold_fractions(database: Database, log: AuditLog) -> None:
    # Row 7 renumbered 6.5: still 40 rows, in order, each body where the tree wants it; only the
    # seq column says one is missing. The fast path counts on bigint, so it leaves this to the
    # careful pass.
    with dba(database) as sql:
        sql.execute(text("ALTER TABLE audit_events ALTER COLUMN seq TYPE numeric"))
        sql.execute(text("UPDATE audit_events SET seq = 6.5 WHERE seq = 7"))
    try:
        assert diagnose(database) == (Tamper.DELETED, 7)
    finally:
        with dba(database) as sql:
            sql.execute(text("UPDATE audit_events SET seq = 7 WHERE seq = 6.5"))
            sql.execute(text("ALTER TABLE audit_events ALTER COLUMN seq TYPE bigint"))
