"""Shared fixtures: paths to the repository's examples and test data, and test databases.

Running in parallel
-------------------
`scripts/test` runs the suite on pytest-xdist (`-n auto`): one worker process per core. Each
worker has its own PostgreSQL session database (its name carries the pid) and its own tmp_path
tree, and starts its own Synapse, PDS or Request Tracker when its tests need one (their installs
into the shared caches take a file lock: scripts/atproto-setup, rt-setup, axe-core).

Databases
---------
`database` is a migrated, empty `Database`, once on SQLite and once on PostgreSQL (test ids
`[sqlite]` and `[pg]`); the same test runs on both, as the design asks. Mark a test
`@pytest.mark.pg_only` to run only its `[pg]` case (the `[sqlite]` one is deselected).

- SQLite: the schema is migrated once per session into a template file; each test gets a copy
  of it in its own tmp_path (a file copy, about a millisecond) and its own engine.
- PostgreSQL: one database per session, `foureyes_test_<pid>_<random>`, created from the
  `postgres` database, migrated once, dropped at the end. Each test shares its engine and gets
  the tables emptied and the sequences restarted first, touching only what the previous test
  used (see `_empty_pg`: ~2 ms after a test that wrote nothing, a few ms more per table used).
  Tests must not leave transactions open: the clean-up waits at most 10 s for their locks, then
  fails the next test.

`pg_url` is the URL (`postgresql://…`, libpq form) of an empty, unmigrated database of the test's
own, for tests of migrations and of init; when the test ends its connections are closed and it
is emptied (~0.15 s) for the next such test, which is cheaper than a new database (~1 s).

The server is `FOUREYES_TEST_PG_URL` (a libpq URL of a database to run CREATE DATABASE from) if
set, else 127.0.0.1:5432 as `postgres`, `root` or the current user, whichever connects. If none
connects, every PostgreSQL test FAILS saying so: CI must run them, so they are never skipped.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from foureyes import notify
from foureyes.core import sealing
from foureyes.store import migrate
from foureyes.store.database import Database

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

PG_ENV = "FOUREYES_TEST_PG_URL"
PG_HOST = "127.0.0.1:5432"
# How long the per-test clean-up waits for locks a previous test left behind.
CLEANUP_LOCK_TIMEOUT = "10s"

# The CLI's tables (rich) are as wide as the terminal: COLUMNS when set, else the size of a
# standard stream that is a terminal, else 80. Under pytest-xdist no stream is a terminal and
# COLUMNS is 80, so the tables wrapped and the tests reading their rows failed; one width for
# every run, wherever it runs.
os.environ["COLUMNS"] = "200"

# Property tests run on a busy 2-core machine: no per-example deadline and no "too slow" health
# check (both measure the machine, not the code). A test's own @settings still takes precedence.
settings.register_profile(
    "busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("busy-machine")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pg_only: run only the PostgreSQL case of a test using `database`"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("database") == "sqlite"
        (dropped if on_sqlite and item.get_closest_marker("pg_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _notification_channels_unset() -> Iterator[None]:
    """Every test starts with the process's notification channels unset (everything is
    queued): a command run in-process (`services_for`) sets them for the whole process, and
    `enqueue` then writes only what they can carry."""
    notify.configure(None)
    yield
    notify.configure(None)


@pytest.fixture(autouse=True)
def _no_database_sealed() -> None:
    """Every test starts with no database watched for sealing (`foureyes.core.sealing`):
    the PostgreSQL tests share one `Database`, and a test that builds no services of its own
    must not have its writes sealed as an earlier test's services did."""
    sealing.unwatch_all()


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def bench_workload_dir() -> Path:
    """The decision benchmark's workload, kept in the repository (bench/workload/)."""
    return ROOT / "bench" / "workload"


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_candidates() -> list[str]:
    if os.environ.get(PG_ENV):
        return [os.environ[PG_ENV]]
    users = dict.fromkeys(["postgres", "root", getpass.getuser()])
    return [f"postgresql://{user}@{PG_HOST}/postgres" for user in users]


def _admin_connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def _pg_admin_url() -> str:
    """A URL of the server's `postgres` database, for CREATE/DROP DATABASE; fails if unreachable."""
    problems: list[str] = []
    for url in _pg_candidates():
        try:
            with _admin_connect(url):
                return url
        except psycopg.Error as exc:
            problems.append(f"{url}: {str(exc).strip()}")
    pytest.fail(
        "PostgreSQL is not reachable, and the PostgreSQL tests must run. Start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
        f"or set {PG_ENV} to a server's admin database URL. Tried: " + "; ".join(problems),
        pytrace=False,
    )


class _PgDatabases:
    """Test databases on the server: made on demand, reused when handed back, dropped at the end.

    CREATE DATABASE costs ~0.3 s and DROP DATABASE ~0.5-1 s (the server writes the whole
    template and checkpoints), emptying one by dropping its schema ~0.15 s: so a database a
    test is done with is emptied and kept for the next test that wants an empty one.
    """

    def __init__(self, admin_url: str) -> None:
        self._admin = _admin_connect(admin_url)
        self._admin_url = make_url(admin_url)
        self._made: list[str] = []
        self._free: list[str] = []

    def url(self, name: str) -> str:
        return self._admin_url.set(database=name).render_as_string(hide_password=False)

    def create(self, label: str) -> str:
        name = f"foureyes_{label}_{os.getpid()}_{secrets.token_hex(4)}"
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._made.append(name)
        return self.url(name)

    def acquire(self) -> str:
        """The URL of an empty database (a fresh one, or one emptied after an earlier test)."""
        return self.url(self._free.pop()) if self._free else self.create("raw")

    def release(self, url: str) -> None:
        """Empty the database at `url` and keep it for reuse (drop it if that fails)."""
        name = make_url(url).database or ""
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                # Whatever the test left connected goes, as DROP DATABASE … WITH (FORCE) would.
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                connection.execute("SET lock_timeout = '5s'")
                connection.execute("DROP SCHEMA public CASCADE")
                connection.execute("CREATE SCHEMA public")
                leftovers = connection.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname <> 'public' "
                    "AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
                ).fetchall()
        except psycopg.Error:
            leftovers = [("?",)]
        if leftovers:  # something outside `public`, or the reset failed: do not reuse it
            self._drop(name)
            self._made.remove(name)
        else:
            self._free.append(name)

    def _drop(self, name: str) -> None:
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def close(self) -> None:
        try:
            for name in self._made:
                self._drop(name)
        finally:
            self._admin.close()


@pytest.fixture(scope="session")
def _pg_databases(_pg_admin_url: str) -> Iterator[_PgDatabases]:
    databases = _PgDatabases(_pg_admin_url)
    yield databases
    databases.close()


@dataclass(frozen=True)
class _PgSession:
    database: Database
    tables: tuple[str, ...]  # every foureyes table, referenced ones first
    superuser: bool

    @property
    def occupied_query(self) -> str:
        return " UNION ALL ".join(
            f"(SELECT '{name}' FROM \"{name}\" LIMIT 1)" for name in self.tables
        )


@pytest.fixture(scope="session")
def _pg_session(_pg_databases: _PgDatabases) -> Iterator[_PgSession]:
    """The session's migrated PostgreSQL database, shared by every `database[pg]` test."""
    database = Database(_pg_databases.create("test"))
    migrate.upgrade(database)
    tables = tuple(table.name for table in migrate.model_metadata().sorted_tables)
    with database.engine.connect() as connection:
        superuser = bool(
            connection.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        )
    yield _PgSession(database, tables, superuser)
    database.dispose()


@pytest.fixture
def pg_url(_pg_databases: _PgDatabases) -> Iterator[str]:
    """The URL of an empty (not migrated) PostgreSQL database of the test's own.

    Fresh or emptied (its `public` schema dropped and recreated) after an earlier test; every
    connection to it is closed when the test ends.
    """
    url = _pg_databases.acquire()
    yield url
    _pg_databases.release(url)


def _empty_pg(session: _PgSession) -> None:
    """Delete every row and restart every sequence, touching only what the last test used.

    TRUNCATE of every table costs ~0.4 s (new files for each table and index), so: find the
    tables with rows (one query), DELETE from them with triggers off (the append-only triggers
    refuse DELETE; `session_replication_role = replica` skips them, superusers only, else fall
    back to TRUNCATE of just those tables), then rewind the sequences that moved.
    """
    with session.database.engine.begin() as connection:
        connection.execute(text(f"SET LOCAL lock_timeout = '{CLEANUP_LOCK_TIMEOUT}'"))
        occupied = set(connection.scalars(text(session.occupied_query)))
        if occupied and session.superuser:
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            for name in reversed(session.tables):
                if name in occupied:
                    connection.execute(text(f'DELETE FROM "{name}"'))
        elif occupied:
            names = ", ".join(f'"{name}"' for name in session.tables if name in occupied)
            connection.execute(text(f"TRUNCATE {names} CASCADE"))
        moved = connection.scalars(
            text(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) "
                "FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        ).all()
        for sequence in moved:
            connection.execute(text("SELECT setval(:s, 1, false)"), {"s": sequence})


# --- SQLite ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy: migrations run once per session, not once per test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "foureyes.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    database.dispose()
    # Leave WAL mode (which folds the log into the file), so that the one file is the whole
    # database; each Database switches its copy back to WAL when it connects.
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    return path


# --- the fixture tests use -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "pg"], ids=["sqlite", "pg"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated, empty `Database`: SQLite and PostgreSQL (see the module docstring)."""
    if request.param == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        path = tmp_path / "foureyes.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    session: _PgSession = request.getfixturevalue("_pg_session")
    _empty_pg(session)
    yield session.database
