"""Alerts: the seq of each alert's own `alert.raised` and `alert.acknowledged` events

Revision ID: 0023_alert_events
Revises: 0022_request_window_indexes
Create Date: 2026-12-08 09:00:00.000000

An `alerts` row was believed as it stood: a row a DBA wrote in (dated now, "acknowledged")
silenced every later alert of its detector about the same person, and acknowledgement columns
set by hand made a real alert look handled. The row now names its own events, and is believed
(as raised, as acknowledged) only where their bodies say the same (the core's alert_log module).

The columns are filled from the log: each alert's `alert.raised` event and its latest
`alert.acknowledged` one, read from the events' bodies (one pass over those two kinds). A row
no event names stays without one, and is reported (alert_tampered) when it is next read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_alert_events"
down_revision: str | Sequence[str] | None = "0022_request_window_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("raised_seq", sa.BigInteger(), nullable=True))
    op.add_column("alerts", sa.Column("acknowledged_seq", sa.BigInteger(), nullable=True))
    op.create_index("ix_alerts_acknowledged_seq", "alerts", ["acknowledged_seq"])
    if op.get_context().as_sql:
        return  # SQL written out, not run: there is no log to read the seqs from
    connection = op.get_bind()
    size = connection.scalar(sa.text("SELECT size FROM audit_head WHERE id = 1")) or 0
    raised: dict[int, int] = {}
    acknowledged: dict[int, int] = {}
    found = connection.execute(
        sa.text(
            "SELECT seq, body FROM audit_events WHERE kind IN ('alert.raised', "
            "'alert.acknowledged') AND seq >= 0 AND seq < :size ORDER BY seq"
        ),
        {"size": size},
    )
    for seq, raw in found:
        try:
            body = json.loads(bytes(raw))
        except ValueError:
            continue
        alert = body.get("alert") if isinstance(body, dict) else None
        if not isinstance(alert, int) or isinstance(alert, bool):
            continue
        if body.get("kind") == "alert.raised":
            raised.setdefault(alert, int(seq))
        elif body.get("kind") == "alert.acknowledged":
            acknowledged[alert] = int(seq)
    for statement, seqs in (
        ("UPDATE alerts SET raised_seq = :seq WHERE id = :id", raised),
        ("UPDATE alerts SET acknowledged_seq = :seq WHERE id = :id", acknowledged),
    ):
        if seqs:
            connection.execute(
                sa.text(statement), [{"id": alert, "seq": seq} for alert, seq in seqs.items()]
            )


def downgrade() -> None:
    op.drop_index("ix_alerts_acknowledged_seq", table_name="alerts")
    op.drop_column("alerts", "acknowledged_seq")
    op.drop_column("alerts", "raised_seq")
