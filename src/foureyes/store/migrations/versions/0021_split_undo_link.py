"""Requests: reverts_item_id, the batch item a split-out undo request reverses

Revision ID: 0021_split_undo_link
Revises: 0020_batch_immutable_pin_names
Create Date: 2026-12-07 02:00:00.000000

An undo of a batch item whose account the policy now sends to its own request (protected
since, or no longer fitting the batch rule) is split out of the reverse batch as an ordinary
request. Until this version that request said nothing of the item it reverses, so none of the
undo guards held it (batch attack F1): the item stayed `executed`, a second undo was accepted,
and the execution-time "superseded by a later change" check never ran. The request now names
the item (`requests.reverts_item_id`, also in its `request.submitted` event); the undo guards
read it as they read a reverse batch item's `reverts_item_id`.

The column joins what the 0007/0010 trigger refuses to UPDATE (it is part of what was asked).
0010's module is loaded from its file and its trigger builder reused over its columns plus
this one (a migration never imports the application). Plain ALTER TABLE, no batch rebuild of
`requests` (which would drop its triggers); an index, no foreign key (SQLite adds none to an
existing table). Downgrade puts 0010's trigger back before dropping the column (SQLite
refuses to drop a column a trigger names).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0021_split_undo_link"
down_revision: str | Sequence[str] | None = "0020_batch_immutable_pin_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED = ("reverts_item_id",)
_WRITE_ONCE = ("undo_params", "salt")  # as 0010 left them


def _salt_0010(with_added: bool) -> ModuleType:
    """0010's module, loaded from its file beside this one (a private copy: its column list is
    extended here with `ADDED` when `with_added`)."""
    path = Path(__file__).with_name("0010_request_salt.py")
    spec = importlib.util.spec_from_file_location("migration_0010_request_salt", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if with_added:
        names = vars(module)
        names["IMMUTABLE_REQUEST_COLUMNS"] = (*names["IMMUTABLE_REQUEST_COLUMNS"], *ADDED)
    return module


def upgrade() -> None:
    op.add_column("requests", sa.Column("reverts_item_id", sa.String(length=36), nullable=True))
    op.create_index(op.f("ix_requests_reverts_item_id"), "requests", ["reverts_item_id"])
    _salt_0010(with_added=True)._guard_requests(_WRITE_ONCE)


def downgrade() -> None:
    _salt_0010(with_added=False)._guard_requests(_WRITE_ONCE)
    op.drop_index(op.f("ix_requests_reverts_item_id"), table_name="requests")
    op.drop_column("requests", "reverts_item_id")
