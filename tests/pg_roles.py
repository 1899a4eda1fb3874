"""Two PostgreSQL roles for a test database: an owner (NOSUPERUSER, owns the database and its
`public` schema, as a DBA sets one up for `foureyes init`) and a runtime role that owns nothing.

Role names are unique per use, and the roles are dropped at the end (what they owned is
handed back to the admin first, so the test database can be emptied and reused).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = ["PgRoles", "pg_roles"]


@dataclass(frozen=True)
class PgRoles:
    owner: str  # role names
    runtime: str
    owner_url: str  # URLs of the test database as each role
    runtime_url: str
    admin_url: str  # the test database as the (superuser) admin

    def url_as(self, role: str) -> str:
        return make_url(self.admin_url).set(username=role).render_as_string(hide_password=False)


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@contextmanager
def pg_roles(admin_url: str, database_url: str) -> Iterator[PgRoles]:
    """An owner and a runtime role for the (empty) database at `database_url` (a URL as the
    admin); both dropped afterwards. `admin_url` is the server's admin database."""
    suffix = secrets.token_hex(4)
    owner, runtime = f"fey_owner_{suffix}", f"fey_app_{suffix}"
    parsed = make_url(database_url)
    name = parsed.database or ""
    roles = PgRoles(
        owner=owner,
        runtime=runtime,
        owner_url=parsed.set(username=owner).render_as_string(hide_password=False),
        runtime_url=parsed.set(username=runtime).render_as_string(hide_password=False),
        admin_url=database_url,
    )
    with _connect(admin_url) as admin:
        for role in (owner, runtime):
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                    sql.Identifier(role)
                )
            )
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    with _connect(database_url) as connection:
        connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
    try:
        yield roles
    finally:
        with _connect(database_url) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            # The runtime role's grants first (the owner's default privileges name it), then
            # what the owner owns goes to the admin, then the owner's remaining grants.
            for statement in (
                sql.SQL("DROP OWNED BY {}").format(sql.Identifier(runtime)),
                sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(owner)),
                sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)),
            ):
                connection.execute(statement)
        with _connect(admin_url) as admin:
            for role in (runtime, owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
