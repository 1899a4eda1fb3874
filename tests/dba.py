"""What a database administrator can do that foureyes' own connections cannot: get past the
triggers that guard the store (the append-only audit tables, the immutable parts of requests
and reviews). The tamper tests use it to play the attacker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text

from foureyes.store.database import Database


@contextmanager
def dba(database: Database) -> Iterator[Connection]:
    """A connection with foureyes' triggers out of the way, as a DBA can arrange: on
    PostgreSQL a superuser switches them off for the transaction; on SQLite they are dropped
    and put back afterwards."""
    with database.engine.begin() as connection:
        triggers: list[Any] = []
        if database.dialect == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            triggers = list(
                connection.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                )
            )
            for name, _ in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
        yield connection
        for _, sql in triggers:
            connection.execute(text(sql))


def tamper(database: Database, sql: str, **params: Any) -> int:
    """Run one statement as the DBA (triggers out of the way); the number of rows it changed."""
    with dba(database) as connection:
        return connection.execute(text(sql), params).rowcount
