"""`store.dry_run_reads`: the dry run's one statement reads what the separate queries read,
blocking or awaited alike, and the awaited reads survive what PostgreSQL connections go
through (a connection killed while pooled, a server that cannot be reached, a NUL)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from foureyes.connectors.demo import DemoConnector
from foureyes.errors import BadInput, Unavailable
from foureyes.store.database import Database
from foureyes.store.dry_run_reads import DryRunReader, DryRunReads, dry_run_statement
from foureyes.store.tables import PinRow
from foureyes.workflow import operations
from tests.worlds import World, make_world

T = TypeVar("T")


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _lookup(world: World) -> Any:
    connector = world.services.connector("chirp")
    assert isinstance(connector, DemoConnector)
    return connector.local_lookup().query


def _with_reader(database: Database, use: Callable[[DryRunReader], Awaitable[T]]) -> T:
    async def run() -> T:
        reader = DryRunReader(database, timeout=2.0)
        try:
            return await use(reader)
        finally:
            await reader.close()

    return asyncio.run(run())


def _read_both(world: World, token_id: str, ref: str) -> tuple[DryRunReads, DryRunReads]:
    lookup = _lookup(world)
    account_id = ref.partition(":")[2]
    reader = DryRunReader(world.services.database)
    blocking = reader.read(token_id, ref, account_id, lookup)
    awaited = _with_reader(
        world.services.database, lambda r: r.read_async(token_id, ref, account_id, lookup)
    )
    return blocking, awaited


def test_one_statement_reads_what_the_separate_queries_read(world: World) -> None:
    services = world.services
    token = operations.issue_token(services, "c-1001")
    token_id = token.split("_")[1]
    with services.database.transaction() as session:
        session.add(PinRow(account_ref="chirp:alice", pin="watchlist", created_at=world.clock()))
        session.add(PinRow(account_ref="chirp:alice", pin="protected", created_at=world.clock()))
    for reads in _read_both(world, token_id, "chirp:alice"):
        assert reads.record is not None
        actor = operations.authenticate(services, token)
        assert reads.record.id == actor.id == "c-1001"
        assert reads.record.token_identity == actor.identity
        assert tuple(sorted(reads.identities)) == actor.staff.identities
        assert reads.record.starts == actor.staff.starts
        assert reads.record.ends == actor.staff.ends
        assert list(reads.record.groups) == list(actor.staff.groups)
        assert dict(reads.record.attributes) == dict(actor.staff.attributes)
        assert reads.record.expires_at is not None
        assert reads.record.expires_at > world.clock()
        assert reads.record.revoked_at is None
        with services.database.read() as session:
            assert (
                reads.pins
                == services.pins(session, "chirp:alice")
                == {
                    "watchlist",
                    "protected",
                }
            )
            assert reads.policy_version == services.policy_in_force(session)[0]
        account = _demo(world).local_lookup().account(reads.account or {})
        assert account == services.resolve_account("chirp:alice")
        assert account.attributes["verified"] is False  # a real bool on SQLite too
        assert isinstance(account.attributes["followers"], int)


def _demo(world: World) -> DemoConnector:
    connector = world.services.connector("chirp")
    assert isinstance(connector, DemoConnector)
    return connector


def test_no_pins_no_account_and_no_token_read_as_empty(world: World) -> None:
    token_id = operations.issue_token(world.services, "e-2001").split("_")[1]
    for reads in _read_both(world, token_id, "chirp:nobody"):
        assert reads.record is not None
        assert reads.pins == frozenset()
        assert reads.account is None
    for reads in _read_both(world, "0123456789abcdef", "chirp:alice"):
        assert reads == DryRunReads(None, (), frozenset(), None, None)


def test_without_a_lookup_the_account_is_not_read(world: World) -> None:
    token_id = operations.issue_token(world.services, "e-2001").split("_")[1]
    reads = DryRunReader(world.services.database).read(token_id, "x:alice", "alice", None)
    assert reads.record is not None
    assert reads.account is None


def test_a_lookup_column_must_have_a_plain_name(world: World) -> None:
    query = select(PinRow.pin.label("it's"))
    with pytest.raises(ValueError, match="plain name"):
        dry_run_statement(world.services.database.dialect, query)


@pytest.mark.pg_only
def test_a_pooled_connection_killed_while_idle_is_replaced(world: World) -> None:
    database = world.services.database
    token_id = operations.issue_token(world.services, "e-2001").split("_")[1]
    lookup = _lookup(world)

    async def use(reader: DryRunReader) -> tuple[DryRunReads, DryRunReads]:
        first = await reader.read_async(token_id, "chirp:alice", "alice", lookup)
        with psycopg.connect(_libpq(database), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = '' AND pid <> pg_backend_pid() "
                "AND datname = current_database() AND state = 'idle' "
                "AND query LIKE 'SELECT staff_tokens.secret_sha256%%'"
            ).fetchall()
        assert killed, "the pool's connection was not found"
        second = await reader.read_async(token_id, "chirp:alice", "alice", lookup)
        return first, second

    first, second = _with_reader(database, use)
    assert first == second


@pytest.mark.pg_only
def test_an_unreachable_database_is_unavailable(database: Database) -> None:
    port = _closed_port()
    url = make_url(database.url).set(host="127.0.0.1", port=port)
    nowhere = Database(url.render_as_string(hide_password=False))
    try:

        async def use(reader: DryRunReader) -> DryRunReads:
            return await reader.read_async("0123456789abcdef", "chirp:alice", "alice", None)

        with pytest.raises(Unavailable, match="unavailable"):
            _with_reader(nowhere, use)
    finally:
        nowhere.dispose()


@pytest.mark.pg_only
def test_a_nul_is_bad_input(world: World) -> None:
    async def use(reader: DryRunReader) -> DryRunReads:
        return await reader.read_async("0123456789abcdef", "chirp:a\x00", "a\x00", None)

    with pytest.raises(BadInput, match="NUL"):
        _with_reader(world.services.database, use)


def _libpq(database: Database) -> str:
    url = make_url(database.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_reader_driven_from_a_new_loop_opens_a_pool_there(world: World) -> None:
    token_id = operations.issue_token(world.services, "e-2001").split("_")[1]
    lookup = _lookup(world)
    reader = DryRunReader(world.services.database)

    async def read() -> DryRunReads:
        return await reader.read_async(token_id, "chirp:alice", "alice", lookup)

    first = asyncio.run(read())  # its loop closes with its pool still open
    second = asyncio.run(read())
    asyncio.run(reader.close())
    assert first == second
    assert first.record is not None
