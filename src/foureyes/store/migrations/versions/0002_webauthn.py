"""Security keys and passkeys for step-up (WebAuthn credentials)

Revision ID: 0002_webauthn
Revises: 0001
Create Date: 2026-11-25 15:33:56.558598
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_webauthn"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_webauthn_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("staff_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_webauthn_credentials_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_webauthn_credentials")),
        sa.UniqueConstraint(
            "credential_id", name=op.f("uq_staff_webauthn_credentials_credential_id")
        ),
    )
    with op.batch_alter_table("staff_webauthn_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_webauthn_credentials_staff_id"), ["staff_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_webauthn_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_webauthn_credentials_staff_id"))

    op.drop_table("staff_webauthn_credentials")
