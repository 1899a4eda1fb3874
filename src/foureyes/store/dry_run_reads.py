"""What a dry run reads from foureyes' database, in one statement.

`POST /v1/decisions` is the API's hottest route: admin tools ask it before every action. It
needs the caller's token and person (with their identities), the account's pins, the policy
version in force and, for a platform kept in foureyes' database (the demo), the account. As
separate statements of one transaction that was seven round trips to PostgreSQL (BEGIN, five
SELECTs, COMMIT) and most of a dry run's cost. Here they are one SELECT. One statement reads
one snapshot on its own, on PostgreSQL and SQLite alike, so it needs no transaction around
it: on PostgreSQL it runs on an autocommit connection of a small asyncio pool, awaited on the
event loop (no thread hop, no BEGIN or COMMIT), and on SQLite in a read of `Database.read`.

Nothing is cached: every call reads the token, the person, the pins, the policy version and
the account as committed at that moment, so a revocation or a new policy counts at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import JSON, ColumnElement, Select, bindparam, func, literal_column, select
from sqlalchemy import type_coerce as as_json_of
from sqlalchemy.engine import make_url

from foureyes.errors import BadInput, Unavailable
from foureyes.store import seals
from foureyes.store.database import PG_CONNECT_DEFAULTS, Database
from foureyes.store.queries import TOKEN_AND_PERSON
from foureyes.store.tables import PolicyVersionRow

log = logging.getLogger(__name__)

# Connections of the asyncio pool, per process: each is held for one round trip, and a dry
# run is mostly CPU, so a few serve many requests at once.
POOL_SIZE = 4
POOL_TIMEOUT_SECONDS = 10.0
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class DryRunReads:
    """One snapshot of what a dry run needs.

    `record` has `TOKEN_AND_PERSON`'s columns as attributes, or is None when no token has the
    id. The account (a `LocalLookup`'s columns) is None when the platform has no such account,
    and also when the read was made without a lookup."""

    record: Any | None
    identities: tuple[str, ...]
    pins: frozenset[str]
    policy_version: int | None
    account: Mapping[str, Any] | None
    # The pins' latest seal (`foureyes.store.seals`), read with them.
    pins_seal: Any = None


def dry_run_statement(
    dialect: str, lookup: Select[*tuple[Any, ...]] | None
) -> Select[*tuple[Any, ...]]:
    """The one SELECT (bind parameters `token_id`, `account_ref` and, with a lookup,
    `account_id`): no row when no token has the id. Identities, pins and the account come as
    JSON, aggregated by the database (`json_agg`/`json_build_object` on PostgreSQL,
    `json_group_array`/`json_object` on SQLite)."""
    postgres = dialect == "postgresql"
    # The token, its person and their identities, with the seals of both: TOKEN_AND_PERSON.
    pins, pins_seal = seals.pins_columns(bindparam("account_ref"))
    version = select(func.max(PolicyVersionRow.version)).scalar_subquery()
    columns: list[ColumnElement[Any]] = [
        pins.label("pins"),
        pins_seal.label("pins_seal"),
        version.label("policy_version"),
    ]
    if lookup is not None:
        found = lookup.subquery("account")
        pairs: list[ColumnElement[Any]] = []
        for column in found.c:
            if not _COLUMN_NAME.fullmatch(column.key):  # it is written into the SQL as a key
                raise ValueError(f"a lookup column needs a plain name, not {column.key!r}")
            pairs += [literal_column(f"'{column.key}'"), column]
        as_object = func.json_build_object if postgres else func.json_object
        account = select(as_json_of(as_object(*pairs), JSON)).scalar_subquery()
        columns.append(account.label("account"))
    return TOKEN_AND_PERSON.add_columns(*columns)


def reads_of(row: Any | None) -> DryRunReads:
    """The reads from the statement's row (None: no token with that id)."""
    if row is None:
        return DryRunReads(None, (), frozenset(), None, None)
    account = getattr(row, "account", None)
    return DryRunReads(
        record=row,
        identities=tuple(row.identities or ()),
        pins=frozenset(row.pins or ()),
        policy_version=row.policy_version,
        account=account,
        pins_seal=row.pins_seal,
    )


class DryRunReader:
    """Reads `DryRunReads` from one database: `read` (blocking, in a `Database.read`) on any
    database; `read_async` on the event loop, through an asyncio pool of autocommit
    connections on PostgreSQL (opened on first use, closed by `close`)."""

    def __init__(
        self,
        database: Database,
        *,
        pool_size: int = POOL_SIZE,
        timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        """`timeout`: seconds to wait for a connection (to open the pool, or for one of its
        connections to be free) before answering Unavailable."""
        self.database = database
        self._pool_size = pool_size
        self._timeout = timeout
        self._statements: dict[
            int, tuple[Select[*tuple[Any, ...]] | None, Select[*tuple[Any, ...]], str]
        ] = {}
        self._pool: AsyncConnectionPool[Any] | None = None
        # The loop the pool lives on, and its lock: a server runs one loop per process, but
        # an app driven from several loops in turn (a test client without its context) must
        # not reach for a pool whose loop is gone; it gets a pool of its own.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    @property
    def awaits(self) -> bool:
        """Whether `read_async` awaits the database (PostgreSQL) rather than blocking."""
        return not self.database.is_sqlite

    def read(
        self,
        token_id: str,
        account_ref: str,
        account_id: str,
        lookup: Select[*tuple[Any, ...]] | None,
    ) -> DryRunReads:
        """The reads for token `token_id` and account `account_ref` (`account_id` on its
        platform, read by `lookup` when given), blocking, in a `Database.read`."""
        statement, _ = self._statement(lookup)
        with self.database.read() as session:
            row = (
                session.connection()
                .execute(statement, _params(token_id, account_ref, account_id))
                .one_or_none()
            )
        return reads_of(row)

    async def read_async(
        self,
        token_id: str,
        account_ref: str,
        account_id: str,
        lookup: Select[*tuple[Any, ...]] | None,
    ) -> DryRunReads:
        """As `read`. Unavailable when PostgreSQL cannot be reached (after one retry on a
        fresh connection: the read changes nothing, and a pooled connection may have died
        while idle); BadInput for a value PostgreSQL cannot hold (a NUL)."""
        if not self.awaits:
            return self.read(token_id, account_ref, account_id, lookup)
        _, sql = self._statement(lookup)
        params = _params(token_id, account_ref, account_id)
        pool = await self._open_pool()
        for attempt in (1, 2):
            try:
                async with pool.connection(timeout=self._timeout) as connection:
                    cursor = connection.cursor(row_factory=namedtuple_row)
                    await cursor.execute(sql, params)
                    return reads_of(await cursor.fetchone())
            except psycopg.DataError as exc:
                log.info("database refused a value: %s", str(exc).splitlines()[0])
                raise BadInput(
                    "a value cannot be stored (a NUL character, or a number out of range)"
                ) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning("database failure (dry run, attempt %d): %s", attempt, _first(exc))
                if attempt == 2:
                    raise _unavailable() from exc
                await pool.check()  # drop the idle connections that died with this one
            except PoolTimeout as exc:
                log.warning("no database connection for a dry run: %s", _first(exc))
                raise _unavailable() from exc
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None

    def _statement(
        self, lookup: Select[*tuple[Any, ...]] | None
    ) -> tuple[Select[*tuple[Any, ...]], str]:
        """The statement for `lookup`, and its SQL for psycopg (built once per lookup)."""
        cached = self._statements.get(id(lookup))
        if cached is None or cached[0] is not lookup:
            statement = dry_run_statement(self.database.dialect, lookup)
            sql = str(statement.compile(dialect=self.database.engine.dialect))
            cached = self._statements[id(lookup)] = (lookup, statement, sql)
        return cached[1], cached[2]

    async def _open_pool(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._opening, self._pool = loop, asyncio.Lock(), None
        if self._pool is not None:
            return self._pool
        assert self._opening is not None  # set with the loop
        async with self._opening:
            if self._pool is None:
                url = make_url(self.database.url).set(drivername="postgresql")
                settings = {
                    key: value for key, value in PG_CONNECT_DEFAULTS.items() if key not in url.query
                }
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    url.render_as_string(hide_password=False),
                    kwargs={"autocommit": True, **settings},
                    min_size=1,
                    max_size=self._pool_size,
                    name="foureyes-dry-runs",
                    open=False,
                )
                try:
                    await pool.open(wait=True, timeout=self._timeout)
                except PoolTimeout as exc:
                    await pool.close()
                    log.warning("cannot connect for dry runs: %s", _first(exc))
                    raise _unavailable() from exc
                self._pool = pool
            return self._pool


def _params(token_id: str, account_ref: str, account_id: str) -> dict[str, str]:
    return {"token_id": token_id, "account_ref": account_ref, "account_id": account_id}


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unavailable() -> Unavailable:
    return Unavailable("the database is unavailable; reload and try again")
