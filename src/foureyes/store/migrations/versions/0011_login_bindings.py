"""Logins remembered beyond their current holder: staff_logins

Revision ID: 0011_login_bindings
Revises: 0010_request_salt
Create Date: 2026-11-26 09:00:00.000000

One row per login name foureyes has seen on a person's record (`auth/logins.py`): who
held it last (kept after an HR import removes it, so that its arrival on another person's
record in a later import is reported as a move), the identity provider's account it is bound
to (issuer and subject, set at its first sign-in through the provider), the earliest moment a
provider token for it may have been issued (the last time it changed hands), and the provider
accounts bound to it before that.

A new table, empty: rows are written (and sealed, `row.sealed` on `foureyes:login/<name>`) by
the first HR import after the upgrade, which fills in what the audit log says of logins held
and removed before, and by sign-ins.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_login_bindings"
down_revision: str | Sequence[str] | None = "0010_request_salt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_logins",
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issuer", sa.String(length=300), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("identity", name=op.f("pk_staff_logins")),
    )


def downgrade() -> None:
    op.drop_table("staff_logins")
