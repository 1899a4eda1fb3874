"""Batches: one action over a manifest of accounts, approved as one Merkle root

Revision ID: 0015_batches
Revises: 0014_alert_notes
Create Date: 2026-12-06 17:05:00.000000

Three tables (the batch workflow): `batches` (what was asked, its Merkle-root digest,
its lifecycle and progress counts), `batch_items` (one account each, at its leaf position,
with its own digest and lifecycle) and `batch_reviews`. As for requests (0007, 0013), the
database refuses an UPDATE of what was asked and approved and any DELETE: defence in depth
only (a DBA can drop a trigger); the real guarantee is the re-check at review and execution,
which recomputes every item digest from its row, the Merkle root from those, and compares the
root with the batch's `batch.submitted` audit event.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_batches"
down_revision: str | Sequence[str] | None = "0014_alert_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What never changes once inserted (the rest are lifecycle columns).
IMMUTABLE = {
    "batches": (
        "id",
        "requester_id",
        "requester_identity",
        "action",
        "params",
        "justification",
        "digest",
        "item_count",
        "policy_version",
        "plan",
        "reverts_id",
        "client",
        "created_at",
    ),
    "batch_items": ("id", "batch_id", "position", "account_ref", "digest", "reverts_item_id"),
}
_JSON_COLUMNS = frozenset({"params", "plan"})
TABLES = ("batches", "batch_items", "batch_reviews")
PG_DELETE_FUNCTION = "foureyes_refuse_batch_delete"


def _changed(column: str, distinct: str, json_columns: frozenset[str] = _JSON_COLUMNS) -> str:
    if column in json_columns:  # PostgreSQL's json has no equality: compare as text
        return f"CAST(OLD.{column} AS TEXT) {distinct} CAST(NEW.{column} AS TEXT)"
    return f"OLD.{column} {distinct} NEW.{column}"


def _pg_change_function(table: str) -> str:
    return f"foureyes_refuse_{table}_change"


def _any_changed(
    table: str,
    distinct: str,
    columns: Sequence[str] | None = None,
    json_columns: frozenset[str] = _JSON_COLUMNS,
) -> str:
    """SQL true when one of `columns` (default: `IMMUTABLE[table]`) differs, NULL-safe."""
    chosen = IMMUTABLE[table] if columns is None else columns
    return " OR ".join(_changed(column, distinct, json_columns) for column in chosen)


def pg_change_function_sql(table: str, changed: str) -> str:
    """PostgreSQL: (re)define the function refusing an UPDATE of `table` when `changed`
    holds (`TRUE`: any UPDATE). 0020 redefines batches' and batch_items' with it."""
    return (
        f"CREATE OR REPLACE FUNCTION {_pg_change_function(table)}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN IF {changed} THEN "
        "RAISE EXCEPTION 'what a batch asks for is immutable: UPDATE of % refused', "
        "TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; END IF; "
        "RETURN NEW; END $$"
    )


def sqlite_change_trigger_sql(table: str, changed: str) -> str:
    """SQLite: the trigger refusing an UPDATE of `table` (batches, batch_items) when
    `changed` holds. 0020 drops and recreates them with it."""
    return (
        f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} FOR EACH ROW "
        f"WHEN {changed} "
        "BEGIN SELECT RAISE(ABORT, 'what a batch asks for is immutable'); END"
    )


def _create_tables() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requester_id", sa.String(length=100), nullable=False),
        sa.Column("requester_identity", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("reverts_id", sa.String(length=36), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("expires_at", stamp, nullable=True),
        sa.Column("not_before", stamp, nullable=True),
        sa.Column("finished_at", stamp, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("split_requests", sa.JSON(), nullable=False),
        sa.Column("executed_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["staff.id"], name=op.f("fk_batches_requester_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(op.f("ix_batches_state"), "batches", ["state"])
    op.create_index(op.f("ix_batches_requester_id"), "batches", ["requester_id"])
    op.create_table(
        "batch_items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("account_ref", sa.String(length=300), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("reverts_item_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_until", stamp, nullable=True),
        sa.Column("finished_at", stamp, nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_items_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_items")),
        sa.UniqueConstraint("batch_id", "position", name=op.f("uq_batch_items_batch_id")),
    )
    op.create_index(op.f("ix_batch_items_account_ref"), "batch_items", ["account_ref"])
    op.create_index(
        "ix_batch_items_batch_id_state_position",
        "batch_items",
        ["batch_id", "state", "position"],
    )
    op.create_table(
        "batch_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer_id", sa.String(length=100), nullable=False),
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("step_up", sa.JSON(), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_reviews_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["staff.id"], name=op.f("fk_batch_reviews_reviewer_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_reviews")),
        sa.UniqueConstraint("batch_id", "reviewer_id", name=op.f("uq_batch_reviews_batch_id")),
    )
    op.create_index(op.f("ix_batch_reviews_batch_id"), "batch_reviews", ["batch_id"])


def upgrade() -> None:
    _create_tables()
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {PG_DELETE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        for table in TABLES:
            # One function per table: PL/pgSQL resolves every OLD.<column> it is given.
            changed = (
                "TRUE" if table == "batch_reviews" else _any_changed(table, "IS DISTINCT FROM")
            )
            op.execute(pg_change_function_sql(table, changed))
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {_pg_change_function(table)}()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_undeletable BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_DELETE_FUNCTION}()"
            )
        return
    for table in ("batches", "batch_items"):
        op.execute(sqlite_change_trigger_sql(table, _any_changed(table, "IS NOT")))
    op.execute(
        "CREATE TRIGGER batch_reviews_immutable BEFORE UPDATE ON batch_reviews "
        "BEGIN SELECT RAISE(ABORT, 'batch reviews are immutable'); END"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_undeletable BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} rows are never deleted'); END"
        )


def downgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for table in TABLES:
        for trigger in (f"{table}_immutable", f"{table}_undeletable"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (f" ON {table}" if postgres else ""))
    if postgres:
        for table in TABLES:
            op.execute(f"DROP FUNCTION IF EXISTS {_pg_change_function(table)}()")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_DELETE_FUNCTION}()")
    op.drop_table("batch_reviews")
    op.drop_table("batch_items")
    op.drop_table("batches")
