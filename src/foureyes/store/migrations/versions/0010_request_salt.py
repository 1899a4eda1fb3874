"""Request salts: requests.salt, written once, for salted digests and commitments (version 3)

Revision ID: 0010_request_salt
Revises: 0009_execution_lease
Create Date: 2026-11-26 08:00:00.000000

A request's digest and the audit log's commitments to its params and undo params hashed the
values without a salt, so whoever saw a hash could test guesses of a value they are not shown
(the address an undo restores) offline. From this version each request has a random salt, in
its digest and in those commitments (docs/digests.md). The salt is secret like the values: in
the row only.

Existing requests keep their unsalted digests (their `request.submitted` events say so by
having no `digest_version`), and are given a random salt here, 256 bits from the database's
random source (PostgreSQL's `gen_random_uuid`, from its strong random source; SQLite's
`randomblob`), so that the undo params of those still to execute are committed to salted.

The salt joins the columns the 0007 trigger guards, as `undo_params` does: written once (a row
inserted without one, by a process of the previous version still running, gets one at its
execution) and never changed after. Plain ALTER TABLE, no batch rebuild of `requests` (which
would drop its triggers); the triggers are recreated with the salt, and restored as 0007 made
them on downgrade (before the column is dropped: SQLite refuses to drop a column a trigger
names).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_request_salt"
down_revision: str | Sequence[str] | None = "0009_execution_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As 0007 (frozen there; repeated, since a migration does not import another).
IMMUTABLE_REQUEST_COLUMNS = (
    "id",
    "requester_id",
    "requester_identity",
    "action",
    "account_ref",
    "params",
    "justification",
    "digest",
    "policy_version",
    "decision",
    "account_snapshot",
    "break_glass",
    "reverts_id",
    "created_at",
    "client",
    "idempotency_key",
    "idempotency_digest",
)
_JSON_COLUMNS = frozenset({"params", "decision", "account_snapshot", "undo_params"})
REQUEST_MESSAGE = "what a request asks for is immutable"
PG_REQUEST_FUNCTION = "foureyes_refuse_request_change"
REQUEST_TRIGGER = "requests_immutable"

_PG_SALT = "replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')"
_SQLITE_SALT = "lower(hex(randomblob(32)))"


def _changed(column: str, distinct: str) -> str:
    """SQL true when `column` differs between OLD and NEW (NULL-safe)."""
    if column in _JSON_COLUMNS:
        return f"CAST(OLD.{column} AS TEXT) {distinct} CAST(NEW.{column} AS TEXT)"
    return f"OLD.{column} {distinct} NEW.{column}"


def _request_changed(distinct: str, write_once: tuple[str, ...]) -> str:
    """True when an immutable column changes, or a write-once column changes once it is set."""
    changes = [_changed(column, distinct) for column in IMMUTABLE_REQUEST_COLUMNS]
    changes.extend(
        f"(OLD.{column} IS NOT NULL AND {_changed(column, distinct)})" for column in write_once
    )
    return " OR ".join(changes)


def _guard_requests(write_once: tuple[str, ...]) -> None:
    """(Re)create the trigger that refuses changes to what a request asks for."""
    if op.get_context().dialect.name == "postgresql":
        # The trigger calls the function by name: replacing the function is enough.
        op.execute(
            f"CREATE OR REPLACE FUNCTION {PG_REQUEST_FUNCTION}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {_request_changed('IS DISTINCT FROM', write_once)} THEN "
            f"RAISE EXCEPTION '{REQUEST_MESSAGE}: UPDATE of request % refused', OLD.id "
            "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$"
        )
        return
    op.execute(f"DROP TRIGGER IF EXISTS {REQUEST_TRIGGER}")
    op.execute(
        f"CREATE TRIGGER {REQUEST_TRIGGER} BEFORE UPDATE ON requests FOR EACH ROW "
        f"WHEN {_request_changed('IS NOT', write_once)} "
        f"BEGIN SELECT RAISE(ABORT, '{REQUEST_MESSAGE}'); END"
    )


def upgrade() -> None:
    op.add_column("requests", sa.Column("salt", sa.String(length=64), nullable=True))
    random = _PG_SALT if op.get_context().dialect.name == "postgresql" else _SQLITE_SALT
    op.execute(f"UPDATE requests SET salt = {random} WHERE salt IS NULL")  # noqa: S608
    _guard_requests(("undo_params", "salt"))


def downgrade() -> None:
    _guard_requests(("undo_params",))
    op.drop_column("requests", "salt")
