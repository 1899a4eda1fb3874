"""PostgreSQL roles: an owner that migrates, and a runtime role that owns nothing.

The audit tables' append-only triggers hold only against a role that cannot switch them off:
PostgreSQL lets a table's owner (and a superuser) disable or drop its triggers, and the owner of
the database's schema drop the tables outright. So on PostgreSQL foureyes runs as two roles:

- the owner (`owner_database_url`) owns the schema's tables; only `foureyes init` and
  `foureyes migrate` connect as it. They run the migrations, then `grant_runtime`.
- the runtime role (`database_url`), which `serve` and `worker` use, owns nothing. It may
  SELECT and INSERT on the audit tables and nothing more, except UPDATE of `audit_head.size`:
  an append moves the head. That column cannot hide anything: `audit verify` proves the events
  are exactly seqs 0 … size-1, so a head moved back names the events beyond it, one moved on
  names the missing ones, and the next append after a head moved back collides with an
  existing seq. On the other tables (the workflow's) it has SELECT, INSERT, UPDATE and DELETE;
  never TRUNCATE, TRIGGER or REFERENCES, and nowhere may it create, alter or drop anything.

`check_runtime` is what `serve` and `worker` run at start: they refuse (fail closed) a role that
is a superuser, owns (or may become a role that owns) the database, schema or any table, or
could UPDATE, DELETE, TRUNCATE or put a trigger on an audit table, and a database whose
append-only triggers are not all enabled. Only a demo data directory (`serve --demo`) may run
as the owner, with a warning.

SQLite has no roles: whoever can write the database file can rewrite it, triggers included.
There the file's owner (the host's operator) is trusted, as the security model says, and
`audit verify` against a witnessed checkpoint is what catches a rewrite.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from foureyes.errors import BadInput
from foureyes.store import migrate
from foureyes.store.database import Database

__all__ = [
    "APPEND_ONLY_TABLES",
    "AUDIT_HEAD",
    "RoleKind",
    "check_runtime",
    "grant_runtime",
    "owner_warning",
    "prepare_runtime",
    "role_in_url",
]

# The audit tables the runtime role may only read and insert into (triggers refuse the rest).
APPEND_ONLY_TABLES = ("audit_events", "audit_nodes", "audit_checkpoints")
AUDIT_HEAD = "audit_head"  # ... and the head, whose `size` column it may also update
_HEAD_COLUMN = "size"
_MIGRATIONS_TABLE = "alembic_version"  # read only: `serve` checks the schema is current
_FORBIDDEN_ON_AUDIT = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
_FORBIDDEN_ON_HEAD = ("DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
_FIX = (
    "serve and worker must connect as a role that owns nothing (FOUREYES_DATABASE_URL); "
    "run `foureyes migrate` with the owner's URL in FOUREYES_OWNER_DATABASE_URL to grant "
    "that role what it needs (docs: foureyes.store.roles)"
)

RoleKind = Literal["sqlite", "runtime", "owner"]


def role_in_url(url: str) -> str | None:
    """The user name a PostgreSQL URL connects as (None when it names none: libpq's default)."""
    return make_url(url).username


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def grant_runtime(owner: Database, role: str) -> None:
    """As the owner (`owner` connects as it), give runtime role `role` exactly the privileges
    above on every table of the schema, and the same for tables made later (default privileges
    of SELECT and INSERT only, so a new table is append-only to it until granted more). Idempotent.
    BadInput if the role does not exist or is the owner itself."""
    with migrate.migration_transaction(owner) as connection:
        me = connection.execute(text("SELECT current_user")).scalar_one()
        if role == me:
            raise BadInput(
                f"the runtime role {role!r} is the owner role: give FOUREYES_DATABASE_URL "
                "another role, one that owns nothing"
            )
        found = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).scalar()
        if found is None:
            raise BadInput(
                f"database role {role!r} does not exist: create it (as a superuser or a role "
                f"with CREATEROLE: CREATE ROLE {role} LOGIN PASSWORD '…'), then run this again"
            )
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        tables = list(
            connection.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('r', 'p')"
                ),
                {"s": schema},
            ).scalars()
        )
        who, where = _quote(connection, role), _quote(connection, schema)
        statements = [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {where} FROM {who}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {where} FROM {who}",
            f"GRANT USAGE ON SCHEMA {where} TO {who}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
        ]
        for table in tables:
            name = f"{where}.{_quote(connection, table)}"
            if table in APPEND_ONLY_TABLES:
                statements.append(f"GRANT SELECT, INSERT ON {name} TO {who}")
            elif table == AUDIT_HEAD:
                statements.append(f"GRANT SELECT, INSERT ON {name} TO {who}")
                statements.append(f"GRANT UPDATE ({_HEAD_COLUMN}) ON {name} TO {who}")
            elif table == _MIGRATIONS_TABLE:
                statements.append(f"GRANT SELECT ON {name} TO {who}")
            else:
                statements.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {who}")
        owner_role = _quote(connection, me)
        statements += [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {where} "
            f"GRANT SELECT, INSERT ON TABLES TO {who}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {where} "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {who}",
        ]
        for statement in statements:
            connection.exec_driver_sql(statement)


def check_runtime(database: Database) -> str | None:
    """Why `database`'s role may not serve (one line), or None when it is a proper runtime
    role: see the module's docstring for what is checked. PostgreSQL only."""
    with database.read() as session:
        connection = session.connection()
        role, superuser = connection.execute(
            text("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")
        ).one()
        if superuser:
            return f"database role {role!r} is a superuser"
        holder = connection.execute(
            text(
                "SELECT r.rolname FROM pg_roles r WHERE r.rolsuper "
                "AND pg_has_role(current_user, r.oid, 'MEMBER') LIMIT 1"
            )
        ).scalar()
        if holder is not None:
            return f"database role {role!r} may become superuser {holder!r}"
        owns_database = connection.execute(
            text(
                "SELECT pg_has_role(current_user, datdba, 'MEMBER') FROM pg_database "
                "WHERE datname = current_database()"
            )
        ).scalar()
        if owns_database:
            return f"database role {role!r} owns the database"
        owns_schema = connection.execute(
            text(
                "SELECT pg_has_role(current_user, nspowner, 'MEMBER') FROM pg_namespace "
                "WHERE nspname = current_schema()"
            )
        ).scalar()
        if owns_schema:
            return f"database role {role!r} owns the schema"
        if connection.execute(
            text("SELECT has_schema_privilege(current_schema(), 'CREATE')")
        ).scalar():
            return f"database role {role!r} may create objects in the schema"
        owned = connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND pg_has_role(current_user, c.relowner, "
                "'MEMBER') ORDER BY c.relname LIMIT 1"
            )
        ).scalar()
        if owned is not None:
            return f"database role {role!r} owns (or may become the owner of) {owned}"
        return _audit_privileges(connection, role)


def _audit_privileges(connection: Connection, role: str) -> str | None:
    for table in (*APPEND_ONLY_TABLES, AUDIT_HEAD):
        if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            return f"the database has no table {table} (run `foureyes init` first)"
        forbidden = _FORBIDDEN_ON_HEAD if table == AUDIT_HEAD else _FORBIDDEN_ON_AUDIT
        for privilege in forbidden:
            held = connection.execute(
                text("SELECT has_table_privilege(:t, :p)"), {"t": table, "p": privilege}
            ).scalar()
            if held:
                return f"database role {role!r} has {privilege} on {table}"
        if table == AUDIT_HEAD:
            other = connection.execute(
                text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                    "AND attnum > 0 AND NOT attisdropped AND attname <> :c "
                    "AND has_column_privilege(:t, attname, 'UPDATE') LIMIT 1"
                ),
                {"t": table, "c": _HEAD_COLUMN},
            ).scalar()
            if other is not None:
                return f"database role {role!r} may update {table}.{other}"
            continue
        enabled = connection.execute(
            text(
                "SELECT tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(:t) "
                "AND tgname = :n AND NOT tgisinternal"
            ),
            {"t": table, "n": f"{table}_append_only"},
        ).scalar()
        if enabled not in ("O", "A"):
            state = "missing" if enabled is None else "disabled"
            return (
                f"the append-only trigger of {table} is {state} (the owner must "
                f"`ALTER TABLE {table} ENABLE TRIGGER {table}_append_only`)"
            )
    return None


def prepare_runtime(database: Database, *, allow_owner: bool = False) -> RoleKind:
    """Check, at the start of `serve` or `worker`, the role `database` connects as.

    "sqlite": no roles (the caller may migrate). "runtime": a proper runtime role, and the
    schema is at the code's revision (it cannot migrate: BadInput naming `foureyes migrate`
    otherwise). "owner": a role that fails the check, allowed only with `allow_owner` (a demo
    data directory): the caller may migrate, and should warn. Otherwise BadInput, one line
    saying what is wrong and how to fix it."""
    if database.is_sqlite:
        return "sqlite"
    problem = check_runtime(database)
    if problem is not None and not problem.startswith("the database has no table"):
        if allow_owner:
            return "owner"
        raise BadInput(f"refusing to start: {problem}; {_FIX}")
    revision, wanted = migrate.current(database), migrate.head()
    if revision != wanted:
        raise BadInput(
            f"refusing to start: the database schema is at revision {revision or 'none'}, this "
            f"foureyes needs {wanted}: run `foureyes migrate` (or `foureyes init` on a new "
            "database) with the owner's URL in FOUREYES_OWNER_DATABASE_URL"
        )
    if problem is not None:  # tables missing at the right revision: fail closed all the same
        raise BadInput(f"refusing to start: {problem}")
    return "runtime"


def owner_warning(database: Database) -> str:
    """The warning a demo running as the owner role prints."""
    role = role_in_url(database.url) or "(default)"
    return (
        f"warning: serving as database role {role}, which can rewrite the audit log "
        "(a demo only: real deployments run as a role that owns nothing, see `foureyes migrate`)"
    )
