"""Approval routing: people away (with a delegate for their notifications), reminder rounds

Revision ID: 0016_approval_routing
Revises: 0015_batches
Create Date: 2026-12-06 17:05:00.000000

`staff_away` (one row per person who marked themselves away: dates, an optional delegate) and
`request_reminders` (one row per reminder round of a pending request: its primary key makes a
round happen once, across workers and restarts). Escalation and "one pending request per
account" need no column: they follow from the policy, the request's submission time and the
other pending requests (the workflow's routing module).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_approval_routing"
down_revision: str | Sequence[str] | None = "0015_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_away",
        sa.Column("staff_id", sa.String(length=100), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=False),
        sa.Column("delegate_id", sa.String(length=100), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_away_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["delegate_id"], ["staff.id"], name=op.f("fk_staff_away_delegate_id_staff")
        ),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_staff_away")),
    )
    op.create_table(
        "request_reminders",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_request_reminders_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("request_id", "round", name=op.f("pk_request_reminders")),
    )


def downgrade() -> None:
    op.drop_table("request_reminders")
    op.drop_table("staff_away")
