"""Alembic environment for the foureyes schema.

Two ways in:

- From code (`foureyes.store.migrate`): the caller has opened a transaction on the `Database`'s
  engine and passes the connection in `config.attributes["connection"]`; Alembic sees the
  transaction and runs every step inside it.
- From the `alembic` command (developers, with alembic.ini at the repository root): the URL is
  `-x url=...` if given, else `sqlalchemy.url` from alembic.ini (an empty in-memory SQLite, which
  is what `alembic revision --autogenerate` of the initial migration needs).

The target is every table registered on `Base.metadata` (`migrate.model_metadata`).
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, TypeDecorator
from sqlalchemy.sql import sqltypes

from foureyes.store.database import Database
from foureyes.store.migrate import migration_transaction, model_metadata

config = context.config
target_metadata = model_metadata()

# Logging from alembic.ini, for the `alembic` command only; a caller that set up logging itself
# (a test) passes attributes["configure_logger"] = False.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url")
    return url


def _render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Write a column type that is a TypeDecorator (`UTCDateTime`) as the SQLAlchemy type it
    stores as: migrations must not import the application's code, which changes after them."""
    del autogen
    if kind == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        if type(impl).__module__ == sqltypes.__name__:
            return f"sa.{impl!r}"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        # SQLite alters tables by copying them; batch mode does that (and is plain ALTER elsewhere).
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
    )


def run_offline() -> None:
    """Write the SQL to standard output (`alembic upgrade head --sql`) for a DBA to review."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    database = Database(_url())
    try:
        with migration_transaction(database) as own:
            _configure(own)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        database.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
