"""Execution leases and the governance record: executions.lease_until, governance_applied

Revision ID: 0009_execution_lease
Revises: 0008_credential_cooldown
Create Date: 2026-11-26 06:00:00.000000

An execution attempt is held by the process carrying it out until `lease_until`, which that
process renews while the platform call runs; reconciliation takes over only an attempt whose
lease has lapsed (before, any `executing` request untouched for two minutes was taken for
abandoned, even while its platform call was still running). Unfinished attempts that exist
already keep the two minutes they had: their lease ends two minutes after their start.

`governance_applied` is the record of foureyes' own actions by idempotency key (the request id),
written with each change, so that reconciling one of them asks that record rather than whether
the change happens to be visible (another request may have made it).

Both are plain additions (a nullable column, a new table): no batch rebuild, so the triggers of
0007 on `requests` are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_execution_lease"
down_revision: str | Sequence[str] | None = "0008_credential_cooldown"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    # An unfinished attempt keeps the two minutes it had (a process of the previous version may
    # still be carrying it out while a new one migrates).
    later = (
        "started_at + interval '2 minutes'"
        if op.get_context().dialect.name == "postgresql"
        else "datetime(started_at, '+2 minutes')"
    )
    op.execute(f"UPDATE executions SET lease_until = {later} WHERE finished_at IS NULL")  # noqa: S608
    op.create_table(
        "governance_applied",
        sa.Column("idempotency_key", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_governance_applied")),
    )


def downgrade() -> None:
    op.drop_table("governance_applied")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
