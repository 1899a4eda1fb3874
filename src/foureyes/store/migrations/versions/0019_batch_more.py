"""Batches: idempotency keys, and the names the platform reported for each item

Revision ID: 0019_batch_more
Revises: 0018_tickets
Create Date: 2026-12-06 21:00:00.000000

`batches.idempotency_key` and `idempotency_digest`: a retried `POST /v1/batches` (or batch
undo) with the same `Idempotency-Key` answers the batch the first call made, as a single
request's submit does (docs/idempotency.md). The key is unique per requester; the
unique index, not a look-up, decides between two submits racing with one key.

`batch_items.names`: the handle and display name the platform reported for the item's account
when the batch was submitted (a JSON list of strings, or NULL). Read by the `batch_lookalike`
detector only: an account named by a DID is compared by its handle. Not in the item's digest:
it is a hint for a detector, not part of what was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_batch_more"
down_revision: str | Sequence[str] | None = "0018_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    op.add_column("batches", sa.Column("idempotency_digest", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_batches_requester_id_idempotency_key",
        "batches",
        ["requester_id", "idempotency_key"],
        unique=True,
    )
    op.add_column("batch_items", sa.Column("names", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("batch_items", "names")
    op.drop_index("uq_batches_requester_id_idempotency_key", table_name="batches")
    op.drop_column("batches", "idempotency_digest")
    op.drop_column("batches", "idempotency_key")
