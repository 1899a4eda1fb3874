"""Idempotency keys of submits: requests.idempotency_key and idempotency_digest

Revision ID: 0004_idempotency
Revises: 0003_console
Create Date: 2026-11-25 18:40:00.000000

Two nullable columns (existing requests have no key) and a unique index on
(requester_id, idempotency_key): a key is unique per requester, and rows without one never
clash (NULLs are distinct on SQLite and PostgreSQL). Plain ALTER TABLE, not batch mode: SQLite
adds a column and an index in place, whereas a batch rebuild of `requests` would drop and
recreate a table that reviews, executions and other requests refer to. The downgrade drops the
index first (SQLite refuses to drop an indexed column), then the columns (SQLite 3.35+).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_idempotency"
down_revision: str | Sequence[str] | None = "0003_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    op.add_column("requests", sa.Column("idempotency_digest", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_requests_requester_id_idempotency_key",
        "requests",
        ["requester_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_requests_requester_id_idempotency_key", table_name="requests")
    op.drop_column("requests", "idempotency_digest")
    op.drop_column("requests", "idempotency_key")
