"""An acknowledgement's note kept on the alert

Revision ID: 0014_alert_notes
Revises: 0013_rows_in_place
Create Date: 2026-12-06 14:00:00.000000

Acknowledging an alert takes a note (what was checked, what was done); the `alert.acknowledged`
audit event has carried it since the start, and the alert row now keeps it too, so that the
alerts page shows it beside who acknowledged and when.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_alert_notes"
down_revision: str | Sequence[str] | None = "0013_rows_in_place"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("acknowledgement_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("alerts", "acknowledgement_note")
