"""Rows stay where foureyes put them: no audit event outside the tree, no request or review deleted

Revision ID: 0013_rows_in_place
Revises: 0012_pending_registrations
Create Date: 2026-11-27 09:00:00.000000

Two things the runtime role could do with its INSERT and DELETE rights, refused by the
database from this version (defence in depth: the checks in the application find both anyway):

- An `audit_events` row at a negative seq: no root, checkpoint or witness covers it, yet reads
  by request or account found it (a forged approval, seal or cursor, one INSERT each, without
  touching the head). PostgreSQL gets a CHECK constraint (NOT VALID: a row written before the
  upgrade does not stop it; `AuditLog.head_problem` names such a row, and nothing reads it);
  SQLite, which cannot add a constraint to a table without rebuilding it (and dropping the
  append-only triggers with it), a trigger refusing the INSERT.
- DELETE of a `requests` or `reviews` row: the immutability triggers of 0007 refuse an UPDATE
  of what was asked and approved, but a DELETE and an INSERT of the changed row went around
  them, and a row deleted while the detectors read its event hid it from them. foureyes never
  deletes either; the database owner still can (triggers off), the runtime role cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_rows_in_place"
down_revision: str | Sequence[str] | None = "0012_pending_registrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_CHECK = "ck_audit_events_seq_in_tree"
SEQ_TRIGGER = "audit_events_seq_in_tree"
SEQ_MESSAGE = "audit events start at seq 0"
UNDELETABLE = {"requests": "requests are never deleted", "reviews": "reviews are never deleted"}
PG_FUNCTION = "foureyes_refuse_delete"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE audit_events ADD CONSTRAINT {SEQ_CHECK} CHECK (seq >= 0) NOT VALID"
        )
        op.execute(
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '% are never deleted: DELETE of % refused', TG_TABLE_NAME, OLD.id "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        for table in UNDELETABLE:
            op.execute(
                f"CREATE TRIGGER {table}_undeletable BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return
    op.execute(
        f"CREATE TRIGGER {SEQ_TRIGGER} BEFORE INSERT ON audit_events FOR EACH ROW "
        f"WHEN NEW.seq < 0 BEGIN SELECT RAISE(ABORT, '{SEQ_MESSAGE}'); END"
    )
    for table, message in UNDELETABLE.items():
        op.execute(
            f"CREATE TRIGGER {table}_undeletable BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in UNDELETABLE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_undeletable ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
        op.execute(f"ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS {SEQ_CHECK}")
        return
    for table in UNDELETABLE:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_undeletable")
    op.execute(f"DROP TRIGGER IF EXISTS {SEQ_TRIGGER}")
