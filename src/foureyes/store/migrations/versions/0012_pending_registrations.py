"""Security key enrolments in progress kept on the server: webauthn_registrations

Revision ID: 0012_pending_registrations
Revises: 0011_login_bindings
Create Date: 2026-11-26 10:00:00.000000

The challenge of a security key enrolment in progress was kept in the browser's signed
login-state cookie; replaying an earlier copy of the cookie brought a used challenge back, so
one challenge could be answered many times. From this version it is a row keyed by the console
session that asked for it (`auth/registrations.py`), deleted with the session (ON DELETE
CASCADE) and consumed by the first registration response checked against it.

A new table, empty: enrolments in progress at the upgrade are started again (they last five
minutes).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_pending_registrations"
down_revision: str | Sequence[str] | None = "0011_login_bindings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webauthn_registrations",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=100), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["console_sessions.id"],
            name=op.f("fk_webauthn_registrations_session_id_console_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_webauthn_registrations")),
    )
    with op.batch_alter_table("webauthn_registrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webauthn_registrations_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webauthn_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webauthn_registrations_expires_at"))
    op.drop_table("webauthn_registrations")
