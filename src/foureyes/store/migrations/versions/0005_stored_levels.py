"""The audit tables keep only what cannot be recomputed cheaply: no leaf hashes, subtrees of
levels 4, 8, 12, … only

Revision ID: 0005_stored_levels
Revises: 0004_idempotency
Create Date: 2026-11-25 21:20:00.000000

`audit_events.leaf_hash` is dropped (a leaf hash is SHA-256(0x00 || body), recomputed from the
body), and the `audit_nodes` rows of levels that are not multiples of 4 are deleted (recomputed
from at most 8 rows of the stored level below; see the audit package's layout module). Deleting rows from
an append-only table needs its guard lifted for that one statement, inside this migration's
transaction; it is put back before the transaction ends.

The downgrade recomputes what was dropped from the bodies, in seq order: every leaf hash and
every subtree of the other levels. It reads the whole log, so it cannot run in offline (--sql)
mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0005_stored_levels"
down_revision: str | Sequence[str] | None = "0004_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEP = 4
BATCH = 10_000
APPEND_ONLY_MESSAGE = "audit log is append-only"


def _pg() -> bool:
    return op.get_context().dialect.name == "postgresql"


@contextmanager
def _guard_lifted(table: str, verb: str) -> Iterator[None]:
    """Lift `table`'s append-only trigger for `verb` (update or delete) while the block runs."""
    if _pg():
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        yield
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
        return
    op.execute(f"DROP TRIGGER {table}_no_{verb}")
    yield
    op.execute(
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    )


def upgrade() -> None:
    with _guard_lifted("audit_nodes", "delete"):
        op.execute("DELETE FROM audit_nodes WHERE level % 4 <> 0")  # STEP
    op.drop_column("audit_events", "leaf_hash")


def downgrade() -> None:
    if _pg():
        op.add_column("audit_events", sa.Column("leaf_hash", sa.LargeBinary(32), nullable=True))
    else:  # SQLite adds a NOT NULL column only with a default
        op.execute("ALTER TABLE audit_events ADD COLUMN leaf_hash BLOB NOT NULL DEFAULT x''")
    connection = op.get_bind()
    size = connection.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    read = sa.text("SELECT seq, body FROM audit_events WHERE seq >= :a AND seq < :b ORDER BY seq")
    write = sa.text("UPDATE audit_events SET leaf_hash = :h WHERE seq = :s")
    nodes = sa.table(
        "audit_nodes",
        sa.column("level", sa.Integer),
        sa.column("index", sa.BigInteger),
        sa.column("hash", sa.LargeBinary),
    )
    frontier: list[tuple[int, bytes]] = []  # the right edge's (level, hash), smallest last
    with _guard_lifted("audit_events", "update"):
        for start in range(0, size, BATCH):
            leaves: list[dict[str, object]] = []
            made: list[dict[str, object]] = []
            for seq, body in connection.execute(read, {"a": start, "b": start + BATCH}).all():
                h = hashlib.sha256(b"\x00" + bytes(body)).digest()
                leaves.append({"s": seq, "h": h})
                level = 0
                while frontier and frontier[-1][0] == level:
                    h = hashlib.sha256(b"\x01" + frontier.pop()[1] + h).digest()
                    level += 1
                    if level % STEP:
                        made.append({"level": level, "index": seq >> level, "hash": h})
                frontier.append((level, h))
            if leaves:
                connection.execute(write, leaves)
            if made:
                op.bulk_insert(nodes, made)
    if _pg():
        op.alter_column("audit_events", "leaf_hash", nullable=False)
