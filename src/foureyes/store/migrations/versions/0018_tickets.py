"""Ticket checks: what the ticket system answered when a request's ticket was checked

Revision ID: 0018_tickets
Revises: 0017_chat_channels
Create Date: 2026-12-06 17:05:00.000000

A rule may require the justification to name a ticket (`justification: {ticket: rt}`); the
ticket is checked at submission, approval and execution (the ticket workflow).
`request_tickets` keeps one row per passed check: the system, the reference, the status, the
subject and link as the system answered then, the stage and the time. Append-only (the
application role may only insert and read it): the review card and the request view show the
latest, the audit event of each stage carries the same facts. It never holds a credential.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_tickets"
down_revision: str | Sequence[str] | None = "0017_chat_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_request_tickets_request_id"), "request_tickets", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_request_tickets_request_id"), table_name="request_tickets")
    op.drop_table("request_tickets")
