"""Alerts: an index on the request an alert is about

Revision ID: 0024_alerts_request_index
Revises: 0023_alert_events
Create Date: 2026-12-07 16:45:00.000000

Each notification card of a request shows the alerts about it (the newest few), and the
request's views list them. With no index on `request_id` each such look read the alerts table
backwards from its newest row until it had found enough, which for a request with fewer alerts
than a card shows is the whole table: every approval's card grew with every alert ever raised
(a busy day's `protected_touched` alerts). `(request_id, id)` finds a request's alerts, newest
first, directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024_alerts_request_index"
down_revision: str | Sequence[str] | None = "0023_alert_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alerts_request_id_id", "alerts", ["request_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_request_id_id", table_name="alerts")
