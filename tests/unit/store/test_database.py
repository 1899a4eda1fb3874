"""`Database`: its transaction discipline on SQLite and PostgreSQL, and the test fixtures."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from foureyes.errors import BadInput, Unavailable
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.store.tables import IdentityRow, PolicyVersionRow, StaffRow

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def add_staff(database: Database, staff_id: str = "e-1") -> None:
    with database.transaction() as session:
        session.add(StaffRow(id=staff_id, employment="employee", status="active", updated_at=NOW))


def count(database: Database, table: type[StaffRow] | type[PolicyVersionRow]) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


# --- the transaction -------------------------------------------------------------------------


def test_a_transaction_commits_when_the_block_ends(database: Database) -> None:
    add_staff(database)
    with database.transaction() as session:
        row = session.get(StaffRow, "e-1")
        assert row is not None
        assert row.status == "active"
        assert row.groups == []


def test_a_transaction_rolls_back_everything_on_an_exception(database: Database) -> None:
    def fail_after_writing() -> None:
        with database.transaction() as session:
            session.add(StaffRow(id="e-1", employment="employee", status="active", updated_at=NOW))
            session.flush()  # the row reached the database, inside the transaction
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_after_writing()
    assert count(database, StaffRow) == 0


@pytest.mark.pg_only
def test_a_value_the_database_cannot_hold_is_bad_input(database: Database) -> None:
    """A NUL in PostgreSQL text (schemathesis sent one in a filter): a 422, not a 500, and the
    transaction's earlier writes are gone too."""

    def write_then_filter_on_a_nul() -> None:
        with database.transaction() as session:
            session.add(StaffRow(id="e-1", employment="employee", status="active", updated_at=NOW))
            session.flush()
            session.execute(select(StaffRow).where(StaffRow.name == "A\x00B")).all()

    def read_a_nul() -> None:
        with database.read() as session:
            session.execute(select(StaffRow).where(StaffRow.id == "\x00")).all()

    with pytest.raises(BadInput, match="cannot be stored"):
        write_then_filter_on_a_nul()
    assert count(database, StaffRow) == 0
    with pytest.raises(BadInput):
        read_a_nul()


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError), database.transaction() as session:
        session.execute(insert(IdentityRow).values(identity="ghost", staff_id="nobody"))
    assert count(database, StaffRow) == 0


def test_times_come_back_as_the_same_instant(database: Database) -> None:
    with database.transaction() as session:
        session.add(PolicyVersionRow(version=1, digest="d" * 64, text="version: 1", created_at=NOW))
    with database.transaction() as session:
        stored = session.scalar(select(PolicyVersionRow.created_at))
    assert stored is not None
    # SQLite keeps no zone: the naive value is the UTC wall time that was written.
    assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == NOW


def test_a_database_that_cannot_be_reached_is_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'foureyes.db'}")
    with (
        pytest.raises(Unavailable, match="the database is unavailable"),
        database.transaction() as session,
    ):
        session.execute(text("SELECT 1"))


def test_postgresql_urls_use_psycopg() -> None:
    database = Database("postgresql://user@127.0.0.1:1/none")
    assert database.dialect == "postgresql"
    assert not database.is_sqlite
    assert database.engine.url.drivername == "postgresql+psycopg"
    assert database.url == "postgresql://user@127.0.0.1:1/none"  # as given


# --- SQLite specifics --------------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with database.transaction() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        database.dispose()


def test_sqlite_transactions_take_the_write_lock_when_they_begin(tmp_path: Path) -> None:
    # BEGIN IMMEDIATE: even a transaction that has only read holds the write lock, so two
    # transactions cannot both read a row and then both change it.
    path = tmp_path / "lock.db"
    database = Database(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again once the transaction ended
        other.execute("ROLLBACK")
    finally:
        other.close()
        database.dispose()


# --- the `database` fixture ------------------------------------------------------------------


def test_the_fixture_gives_a_migrated_database(database: Database) -> None:
    assert migrate.current(database) == migrate.head()
    assert count(database, StaffRow) == 0


@pytest.mark.parametrize("round_", [1, 2])
def test_the_fixture_gives_every_test_an_empty_database(database: Database, round_: int) -> None:
    # Both rounds find it empty whichever runs first, though each leaves rows behind.
    assert count(database, StaffRow) == 0
    add_staff(database, f"e-{round_}")
    with database.transaction() as session:
        session.execute(insert(IdentityRow).values(identity=f"i-{round_}", staff_id=f"e-{round_}"))
    assert count(database, StaffRow) == 1


@pytest.mark.pg_only
@pytest.mark.parametrize("round_", [1, 2])
def test_the_fixture_restarts_generated_ids(database: Database, round_: int) -> None:
    # On SQLite every test has its own file; on PostgreSQL the sequences behind generated ids
    # (reviews.id, executions.id, ...) are rewound, even if the last test only advanced them.
    del round_
    with database.transaction() as session:
        sequences = session.scalars(text("SELECT sequencename FROM pg_sequences")).all()
        assert "reviews_id_seq" in sequences
        for sequence in sequences:
            assert session.execute(text("SELECT nextval(:s)"), {"s": sequence}).scalar() == 1


@pytest.mark.pg_only
def test_pg_only_tests_run_on_postgresql_alone(database: Database) -> None:
    assert database.dialect == "postgresql"


def test_pg_url_is_an_empty_database_of_its_own(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        assert migrate.current(database) is None
        with database.engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
        assert tables == 0
        migrate.upgrade(database)  # leaves tables behind; the next user still gets it empty
    finally:
        database.dispose()


@pytest.mark.pg_only
def test_postgresql_connections_do_not_hang_on_a_vanished_peer(pg_url: str) -> None:
    """Bounded connects and TCP keepalives on every connection; the URL's own values win."""
    database = Database(pg_url + ("&" if "?" in pg_url else "?") + "keepalives_idle=5")
    try:
        with database.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            params = raw.info.get_parameters()  # type: ignore[attr-defined]
            assert params["connect_timeout"] == "10"
            assert params["keepalives"] == "1"
            assert params["keepalives_idle"] == "5"
            assert params["tcp_user_timeout"] == "60000"
    finally:
        database.dispose()
