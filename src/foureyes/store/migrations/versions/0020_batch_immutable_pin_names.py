"""Batches: 0019's columns join what never changes after insert; pins keep the names seen

Revision ID: 0020_batch_immutable_pin_names
Revises: 0019_batch_more
Create Date: 2026-12-07 01:10:00.000000

0019 added `batches.idempotency_key`, `batches.idempotency_digest` and `batch_items.names`
outside 0015's immutability triggers. All three are written once, when the batch is
recorded, and never by foureyes after: a key or digest changed later would let a retried
submit answer another batch (or make a new one), and a `names` changed later would blind
the `batch_lookalike` detector to a handle it was shown. From this version the database
refuses an UPDATE of them, as of the rest of what was asked (defence in depth: a DBA can
drop a trigger).

The triggers are 0015's, rebuilt with its own SQL builders over its column lists plus these
(0015's module is loaded from its file: a migration never imports the application). On
PostgreSQL the two change functions are redefined (the triggers call them by name); on
SQLite the two triggers are dropped and created again. Downgrade puts 0015's back.

`account_pins.names`: the handle and display name the platform reported for a pinned account
when the pin was made (a JSON list of strings, or NULL: not known then, or a pin made before
this version). Read by the `batch_lookalike` detector only, which makes no platform call: a
pinned DID nobody has acted on is compared by its handle too. Not immutable: a pin row is a
current mark (an unpin deletes it), not a record of what was asked.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0020_batch_immutable_pin_names"
down_revision: str | Sequence[str] | None = "0019_batch_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED = {
    "batches": ("idempotency_key", "idempotency_digest"),
    "batch_items": ("names",),
}
_JSON_ADDED = frozenset({"names"})


def _batches_0015() -> ModuleType:
    """0015's module, loaded from its file beside this one (its name starts with a digit)."""
    path = Path(__file__).with_name("0015_batches.py")
    spec = importlib.util.spec_from_file_location("migration_0015_batches", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rebuild(with_added: bool) -> None:
    """Batches' and batch_items' UPDATE guards over 0015's columns, and 0019's when
    `with_added`."""
    base = _batches_0015()
    postgres = op.get_context().dialect.name == "postgresql"
    for table, added in ADDED.items():
        columns = (*base.IMMUTABLE[table], *(added if with_added else ()))
        json_columns = base._JSON_COLUMNS | _JSON_ADDED
        if postgres:
            changed = base._any_changed(table, "IS DISTINCT FROM", columns, json_columns)
            op.execute(base.pg_change_function_sql(table, changed))
            continue
        op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable")
        op.execute(
            base.sqlite_change_trigger_sql(
                table, base._any_changed(table, "IS NOT", columns, json_columns)
            )
        )


def upgrade() -> None:
    _rebuild(with_added=True)
    op.add_column("account_pins", sa.Column("names", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("account_pins", "names")
    _rebuild(with_added=False)
