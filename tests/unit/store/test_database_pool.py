"""PostgreSQL's connection pool: a connection that sat idle is pinged before it is used (a
server that dropped it is noticed and a new connection made); one returned a moment ago is not
(the hot paths skip the round trip), and if it was dropped, that call fails as Unavailable and
the next one reconnects."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import text

from foureyes.errors import Unavailable
from foureyes.store.database import Database


def backend_pid(database: Database) -> int:
    """The server process behind the connection a read transaction gets."""
    with database.read() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")))


def terminate(url: str, pid: int) -> None:
    """End the server process `pid` (as a restart or a dropped connection would), and wait
    until it is gone."""
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
        while admin.execute(gone, (pid,)).fetchone() != (True,):
            admin.execute("SELECT pg_sleep(0.01)")


Connect = Callable[[float], Database]


@pytest.fixture
def connect(pg_url: str) -> Iterator[Connect]:
    """A `Database` on the test's PostgreSQL with the given `ping_after_idle`."""
    made: list[Database] = []

    def make(ping_after_idle: float) -> Database:
        database = Database(pg_url, ping_after_idle=ping_after_idle)
        made.append(database)
        return database

    yield make
    for database in made:
        database.dispose()


def test_an_idle_connection_dropped_by_the_server_is_replaced_unseen(
    connect: Connect, pg_url: str
) -> None:
    database = connect(0.0)  # every pooled connection counts as idle
    first = backend_pid(database)
    terminate(pg_url, first)
    second = backend_pid(database)  # the ping failed: a new connection, and no error
    assert second != first


def test_a_busy_connection_dropped_by_the_server_fails_one_call(
    connect: Connect, pg_url: str
) -> None:
    database = connect(3600.0)  # never idle long enough to be pinged
    first = backend_pid(database)
    terminate(pg_url, first)
    with pytest.raises(Unavailable):
        backend_pid(database)
    assert backend_pid(database) != first  # the pool was invalidated: the next call reconnects
