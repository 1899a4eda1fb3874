"""Undo parameters: requests.undo_params and chirp_applied.undo_params

Revision ID: 0006_undo_params
Revises: 0005_stored_levels
Create Date: 2026-11-26 02:30:00.000000

A nullable JSON column on `requests`: the parameters of the reverse action that restore what an
executed request changed (a changed email: the previous address), as the connector reported
them; existing requests have none (an undo of them needs its parameters given, as before). The
same column on the demo platform's `chirp_applied`, so that a replayed execution answers them
too. Plain ALTER TABLE, not batch mode: SQLite adds and (3.35+) drops a column in place, whereas a
batch rebuild of `requests` would drop and recreate a table others refer to.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_undo_params"
down_revision: str | Sequence[str] | None = "0005_stored_levels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("undo_params", sa.JSON(), nullable=True))
    op.add_column("chirp_applied", sa.Column("undo_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("chirp_applied", "undo_params")
    op.drop_column("requests", "undo_params")
