"""`store.one_row`: the token check's statement run on the driver reads what SQLAlchemy reads,
joins an open read's snapshot, and hands PostgreSQL connections back to the pool as it took
them (never in autocommit), whatever happened (a NUL, a connection killed while pooled)."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from foureyes.errors import BadInput, Unavailable
from foureyes.store.database import Database
from foureyes.store.one_row import OneRow
from foureyes.store.queries import TOKEN_AND_PERSON, TOKEN_AND_PERSON_AS_TEXT, TOKEN_AND_PERSON_JSON
from foureyes.store.tables import TokenRow
from foureyes.workflow import operations
from tests.worlds import World, make_world

READ = OneRow(TOKEN_AND_PERSON_AS_TEXT)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _token_id(world: World, staff_id: str = "e-2001") -> str:
    return operations.issue_token(world.services, staff_id, lifetime=timedelta(days=3)).split("_")[
        1
    ]


def test_the_row_holds_what_sqlalchemy_reads(world: World) -> None:
    database = world.services.database
    for staff_id in ("e-2001", "e-3002"):
        token_id = _token_id(world, staff_id)
        with database.read() as session:
            expected = session.connection().execute(TOKEN_AND_PERSON, {"token_id": token_id}).one()
        row = READ.fetch(database, {"token_id": token_id})
        assert row is not None
        hash(row)  # plain values: it can key a cache
        values = dict(zip(expected._fields, READ.compiled(database).values(row), strict=True))
        for name in TOKEN_AND_PERSON_JSON:
            values[name] = json.loads(values[name])
        for name in expected._fields:
            assert values[name] == getattr(expected, name), name
            assert type(values[name]) is type(getattr(expected, name)), name
    assert READ.fetch(database, {"token_id": "no-such-token"}) is None


def test_inside_a_read_it_reads_that_reads_snapshot(world: World) -> None:
    database = world.services.database
    token_id = _token_id(world)
    with database.read() as session:
        session.connection().execute(select(TokenRow.id))  # the snapshot is taken
        with database.transaction() as writer:
            writer.execute(
                update(TokenRow)
                .where(TokenRow.id == token_id)
                .values(revoked_at=world.services.clock())
            )
        inside = READ.fetch(database, {"token_id": token_id})
    after = READ.fetch(database, {"token_id": token_id})
    assert inside is not None
    assert after is not None
    assert inside[1] is None  # revoked_at, as of the read's snapshot
    assert after[1] is not None  # read afresh: the revocation counts


def _pooled_autocommit(database: Database) -> bool:
    pooled = database.engine.raw_connection()
    try:
        return bool(pooled.driver_connection.autocommit)  # type: ignore[union-attr]
    finally:
        pooled.close()


@pytest.mark.pg_only
def test_postgres_connections_go_back_to_the_pool_out_of_autocommit(world: World) -> None:
    database = world.services.database
    token_id = _token_id(world)
    assert READ.fetch(database, {"token_id": token_id}) is not None
    assert not _pooled_autocommit(database)
    with pytest.raises(BadInput, match="NUL"):
        READ.fetch(database, {"token_id": "a\x00"})
    assert not _pooled_autocommit(database)
    # A write after them is still one transaction: a failure in it leaves nothing behind.
    with pytest.raises(RuntimeError):
        _change_then_fail(database)
    with database.read() as session:
        assert "changed" not in set(session.scalars(select(TokenRow.label)))


def _change_then_fail(database: Database) -> None:
    with database.transaction() as session:
        session.execute(update(TokenRow).values(label="changed"))
        raise RuntimeError("rolled back")


@pytest.mark.pg_only
def test_a_pooled_connection_killed_while_idle_fails_closed_and_is_replaced(
    world: World,
) -> None:
    database = world.services.database
    token_id = _token_id(world)
    first = READ.fetch(database, {"token_id": token_id})
    url = make_url(database.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND state = 'idle'"
        )
    with contextlib.suppress(Unavailable):  # its first use may find it dead: a 503
        READ.fetch(database, {"token_id": token_id})
    assert READ.fetch(database, {"token_id": token_id}) == first
    assert not _pooled_autocommit(database)
