"""Migration 0017 (chat channels): the outbox keeps a request card in `details`, beside the
rows already queued (which keep none and are shown from their subject and body), and its
downgrade drops the column and keeps the rows. On real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from foureyes.store import migrate
from foureyes.store.database import Database

NOW = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
BEFORE = "0016_approval_routing"


@pytest.fixture(params=["sqlite", "pg"], ids=["sqlite", "pg"])
def empty_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'empty.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(url)
    yield database
    database.dispose()


def _columns(database: Database) -> set[str]:
    return {c["name"] for c in inspect(database.engine).get_columns("outbox")}


def test_0017_adds_the_card_beside_queued_rows_and_drops_it_again(
    empty_database: Database,
) -> None:
    migrate.upgrade(empty_database, BEFORE)
    queued = (
        "INSERT INTO outbox (channel, kind, subject, body, created_at, attempts) "
        "VALUES ('room', 'request.pending', 's', 'b', :at, 0)"
    )
    with empty_database.engine.begin() as connection:
        connection.execute(text(queued), {"at": NOW})

    migrate.upgrade(empty_database, "0017_chat_channels")

    assert "details" in _columns(empty_database)
    with empty_database.engine.begin() as connection:
        assert connection.execute(text("SELECT details FROM outbox")).scalar_one() is None

    migrate.downgrade(empty_database, BEFORE)

    assert "details" not in _columns(empty_database)
    with empty_database.engine.begin() as connection:
        assert connection.execute(text("SELECT subject FROM outbox")).scalars().all() == ["s"]
    migrate.upgrade(empty_database)
    migrate.check(empty_database)
