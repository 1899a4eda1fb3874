"""Immutable requests and reviews: triggers refuse changes to what was approved

Revision ID: 0007_immutable_requests
Revises: 0006_undo_params
Create Date: 2026-11-26 04:00:00.000000

What a request asks for (the inputs of its digest, the digest, who asked, when, under which
decision) never changes after it is submitted; only its lifecycle columns do (state, times,
result, reason). A review never changes at all. The database now refuses an UPDATE that
would change them, whatever the application does: defence in depth only, since a DBA can drop
a trigger; the real guarantee is the re-check at every review and execution
(workflow/integrity.py), which recomputes the digest from the row and compares it with
the `request.submitted` audit event. `undo_params` is written once (at execution) and never
changed after. Both databases raise an integrity error (as the append-only audit triggers do).

Note for later migrations: a SQLite batch rebuild of `requests` or `reviews` drops these
triggers; recreate them in the same revision.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_immutable_requests"
down_revision: str | Sequence[str] | None = "0006_undo_params"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Everything but the lifecycle columns (state, not_before, expires_at, post_review_due,
# updated_at, finished_at, result, reason) and the write-once undo_params.
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
# PostgreSQL's json type has no equality operator: JSON columns are compared as text.
_JSON_COLUMNS = frozenset({"params", "decision", "account_snapshot", "undo_params"})
REQUEST_MESSAGE = "what a request asks for is immutable"
REVIEW_MESSAGE = "reviews are immutable"
PG_REQUEST_FUNCTION = "foureyes_refuse_request_change"
PG_REVIEW_FUNCTION = "foureyes_refuse_review_change"
REQUEST_TRIGGER = "requests_immutable"
REVIEW_TRIGGER = "reviews_immutable"


def _changed(column: str, distinct: str) -> str:
    """SQL true when `column` differs between OLD and NEW (NULL-safe)."""
    if column in _JSON_COLUMNS:
        return f"CAST(OLD.{column} AS TEXT) {distinct} CAST(NEW.{column} AS TEXT)"
    return f"OLD.{column} {distinct} NEW.{column}"


def _request_changed(distinct: str) -> str:
    """True when an immutable column changes, or undo_params changes once it is set."""
    changes = [_changed(column, distinct) for column in IMMUTABLE_REQUEST_COLUMNS]
    changes.append(f"(OLD.undo_params IS NOT NULL AND {_changed('undo_params', distinct)})")
    return " OR ".join(changes)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {PG_REQUEST_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {_request_changed('IS DISTINCT FROM')} THEN "
            f"RAISE EXCEPTION '{REQUEST_MESSAGE}: UPDATE of request % refused', OLD.id "
            "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE FUNCTION {PG_REVIEW_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{REVIEW_MESSAGE}: UPDATE of review % refused', OLD.id "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {REQUEST_TRIGGER} BEFORE UPDATE ON requests "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_REQUEST_FUNCTION}()"
        )
        op.execute(
            f"CREATE TRIGGER {REVIEW_TRIGGER} BEFORE UPDATE ON reviews "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_REVIEW_FUNCTION}()"
        )
        return
    op.execute(
        f"CREATE TRIGGER {REQUEST_TRIGGER} BEFORE UPDATE ON requests FOR EACH ROW "
        f"WHEN {_request_changed('IS NOT')} "
        f"BEGIN SELECT RAISE(ABORT, '{REQUEST_MESSAGE}'); END"
    )
    op.execute(
        f"CREATE TRIGGER {REVIEW_TRIGGER} BEFORE UPDATE ON reviews "
        f"BEGIN SELECT RAISE(ABORT, '{REVIEW_MESSAGE}'); END"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {REVIEW_TRIGGER} ON reviews")
        op.execute(f"DROP TRIGGER IF EXISTS {REQUEST_TRIGGER} ON requests")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_REVIEW_FUNCTION}()")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_REQUEST_FUNCTION}()")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {REVIEW_TRIGGER}")
    op.execute(f"DROP TRIGGER IF EXISTS {REQUEST_TRIGGER}")
