"""Requests: indexes that bound the detectors' windows

Revision ID: 0022_request_window_indexes
Revises: 0021_split_undo_link
Create Date: 2026-12-07 08:00:00.000000

The detectors count a person's requests in a window (velocity, denial bursts, repeated
justifications) and the people who made requests on an account in a window. With an index on
`requester_id` alone and one on `account_ref` alone, each of those looked read every request
the person, or the account, ever had: a pass's cost grew with the log, and on SQLite the pass
holds the write lock (a busy hour of one support person on one account held it for most of a
second). `(requester_id, created_at)` bounds a person's count to the window;
`(account_ref, requester_id, created_at)` lets the per-account look step from person to person
(the velocity detector's `people_on`). Both replace the single-column indexes they start
with, which every other look-up by person or by account uses as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022_request_window_indexes"
down_revision: str | Sequence[str] | None = "0021_split_undo_link"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_requests_requester_id_created_at", "requests", ["requester_id", "created_at"]
    )
    op.create_index(
        "ix_requests_account_ref_requester_id_created_at",
        "requests",
        ["account_ref", "requester_id", "created_at"],
    )
    op.drop_index("ix_requests_requester_id", table_name="requests")
    op.drop_index("ix_requests_account_ref", table_name="requests")


def downgrade() -> None:
    op.create_index("ix_requests_account_ref", "requests", ["account_ref"])
    op.create_index("ix_requests_requester_id", "requests", ["requester_id"])
    op.drop_index("ix_requests_account_ref_requester_id_created_at", table_name="requests")
    op.drop_index("ix_requests_requester_id_created_at", table_name="requests")
