"""A notification's request card, for chat channels

Revision ID: 0017_chat_channels
Revises: 0016_approval_routing
Create Date: 2026-12-06 17:05:00.000000

Matrix and Slack channels render a notification about a request as a card (who asks, what, on
which account and tier, why, the ticket, the alerts, a link bound to the request's digest):
the outbox row keeps those facts as JSON in `details`, written in the event's transaction like
the rest of the row. Nullable: older rows and notifications about other things have none, and
are shown from their subject and body as before. It never holds a secret (channel tokens and
webhook URLs stay in the channel's configuration).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_chat_channels"
down_revision: str | Sequence[str] | None = "0016_approval_routing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "details")
