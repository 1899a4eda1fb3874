"""Step-up credentials count from a moment: counts_from on both credential tables

Revision ID: 0008_credential_cooldown
Revises: 0007_immutable_requests
Create Date: 2026-11-26 05:00:00.000000

A step-up credential (a security key, a device key) added after `foureyes init` counts for
approvals only once a cool-down has passed (`[step_up] cooldown`), so that its owner, who is
told of it, can revoke it first. The moment is fixed when the credential is added (a later
change of the setting does not move it); credentials that `foureyes serve --demo` adds at its
initialisation count at once. Credentials that exist already keep counting as they did: their
`counts_from` is their `created_at`.

Batch mode for the NOT NULL after the backfill (SQLite rebuilds these two small tables;
nothing refers to them). PostgreSQL alters them in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_credential_cooldown"
down_revision: str | Sequence[str] | None = "0007_immutable_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("staff_step_up_keys", "staff_webauthn_credentials")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("counts_from", sa.DateTime(timezone=True), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET counts_from = created_at"))  # noqa: S608
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "counts_from", existing_type=sa.DateTime(timezone=True), nullable=False
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("counts_from")
