"""Connecting to the store: SQLite (WAL) by default, PostgreSQL in production.

`Database.transaction()` is the only way operations touch the database: one transaction per
operation, committed when the block ends and rolled back on any exception, so a state change and
its audit event are written together or not at all. On SQLite every transaction starts with
`BEGIN IMMEDIATE`, which takes the write lock up front (SQLite's stand-in for row locks); on
PostgreSQL rows are locked with `SELECT … FOR UPDATE`.

On a SQLite file, writers queue for that lock before they ask SQLite for it
(`foureyes.store.writers`): a thread lock in each process and an advisory file lock between
processes (the server's workers, the background worker, the CLI), waited for in the kernel.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    InvalidatePoolError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from foureyes.errors import BadInput, OutcomeUnknown, Unavailable
from foureyes.store import txn_memo
from foureyes.store.pg_times import read_infinite_times
from foureyes.store.together import Together
from foureyes.store.writers import Writers

log = logging.getLogger(__name__)

T = TypeVar("T")

_READ_ONLY = "foureyes_read_only"  # an execution option: see `Database.read`
# The read transaction open in this context (thread, or task), per database: see `read`.
_open_read: ContextVar[tuple[Database, Session] | None] = ContextVar(
    "foureyes_open_read", default=None
)

PG_CONNECT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # milliseconds
}


class Database:
    """An engine plus the transaction discipline above."""

    def __init__(
        self, url: str, *, echo: bool = False, ping_after_idle: float | None = None
    ) -> None:
        """`ping_after_idle` (PostgreSQL): seconds a pooled connection may sit unused before
        it is pinged at its next checkout (default PING_AFTER_IDLE_SECONDS)."""
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg"))
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # No pre-ping on every checkout (a round trip per transaction, ~0.3 ms of a
            # dry run's CPU): `_ping_idle_connections` pings only connections that sat idle.
            kwargs.update(pool_size=10, max_overflow=10)
            # A peer that vanishes without closing the connection (a partition, a dead host)
            # must fail the call, not hang it while holding row locks: bounded connects, TCP
            # keepalives and a bound on unacknowledged sends. The URL's own values win.
            kwargs["connect_args"] = {
                key: value for key, value in PG_CONNECT_DEFAULTS.items() if key not in parsed.query
            }
        if self.dialect != "sqlite":
            read_infinite_times()  # a row holding `infinity` must not break every query
        self.engine: Engine = create_engine(url, **kwargs)
        txn_memo.install(self.engine)
        if self.dialect == "sqlite":
            _sqlite_discipline(self.engine)
        else:
            idle = PING_AFTER_IDLE_SECONDS if ping_after_idle is None else ping_after_idle
            _ping_idle_connections(self.engine, idle)
        file = parsed.database if self.dialect == "sqlite" else None
        # A file's writers queue (module docstring); none for PostgreSQL or an in-memory SQLite.
        self._writers = Writers(file if file and file != ":memory:" else None)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; the option tells `_on_begin` (SQLite) that this transaction only reads.
        # On PostgreSQL a read is one snapshot too (REPEATABLE READ; READ COMMITTED gives each
        # statement its own): a check that reads a request, then its reviews, must not see the
        # request before a concurrent COMMIT and its reviews after it (the several-servers
        # test saw a reviewer's own racing approval answered 404 that way).
        isolation = {} if self.dialect == "sqlite" else {"isolation_level": "REPEATABLE READ"}
        reader = self.engine.execution_options(**{_READ_ONLY: True}, **isolation)
        self._reads = sessionmaker(reader, expire_on_commit=False)
        # Group commit on SQLite only (`together`).
        self._together: Together | None = (
            Together(self.transaction) if self.dialect == "sqlite" else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One atomic unit of work. Raises Unavailable if the database fails or the connection
        to it is lost before the COMMIT (nothing was changed: the server rolls back), and its
        subclass OutcomeUnknown if that happens during the COMMIT (it may have committed).
        Either speaks for this transaction only: a call made of several, which committed an
        earlier one, must answer a later failure as OutcomeUnknown itself
        (`foureyes.workflow.outcome`). The driver's message goes to the log only (it can
        name hosts)."""
        with self._writers.one(), self._unit(self._sessions()) as session:
            yield session

    def together(self, unit: Callable[[Session], T]) -> T:
        """`unit(session)` in a write transaction; its answer or what it raised. On SQLite,
        concurrent callers' units may share the transaction, committed once for all (group
        commit: `foureyes.store.together`), so `unit` must be re-runnable: a shared
        transaction that fails before its COMMIT runs each of its units again alone.

        On PostgreSQL each unit has its own transaction, at once: in a group, the first
        unit's append takes the log's head lock and the later units then lock rows, the
        reverse of a lone transaction's order (its rows, then the head), and the groups of
        two serving processes deadlocked (an attack found it). PostgreSQL's group commit
        waits for a group whose events are all appended at its end."""
        if self._together is None:
            with self.transaction() as session:
                return unit(session)
        return self._together.run(unit)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads (the hot paths: a token's check, a dry run's inputs).
        On SQLite it starts with a plain (deferred) `BEGIN`: in WAL mode it reads one
        consistent snapshot of everything committed before its first read, without taking
        or waiting for the write lock that `transaction()` takes up front (threads and
        processes waiting on one another for reads was the API's bottleneck). Writing in it
        is a mistake: on SQLite it may fail as Unavailable. On PostgreSQL it is a REPEATABLE READ
        transaction: every statement in it reads the same snapshot.

        A `read()` opened while another `read()` of this database is open in the same context
        (thread or task) joins it: the same session, the same snapshot, no second connection
        or BEGIN. A dry run's token check, account lookup (the demo platform lives in this
        database), pins and policy are one transaction that way. `transaction()` never joins:
        a write always has its own."""
        current = _open_read.get()
        if current is not None and current[0] is self:
            try:
                yield current[1]
            except (OperationalError, InterfaceError) as exc:
                raise _unavailable(exc, committing=False) from exc
            return
        with self._unit(self._reads()) as session:
            token = _open_read.set((self, session))
            try:
                yield session
            finally:
                _open_read.reset(token)

    def open_read(self) -> Session | None:
        """The session of the `read()` of this database open in this context, if one is: what
        a read that joins it reads on (`foureyes.store.one_row`)."""
        current = _open_read.get()
        return current[1] if current is not None and current[0] is self else None

    @contextmanager
    def _unit(self, session: Session) -> Iterator[Session]:
        committing = False
        try:
            with session.begin():
                yield session
                committing = True  # the block is done: leaving `begin()` commits
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc, committing=committing) from exc
        except DataError as exc:
            # A value the database cannot hold (a NUL in PostgreSQL text, a number out of
            # range) came from the caller: refused like any bad input, and nothing was written.
            log.info("database refused a value: %s", str(exc.orig or exc).splitlines()[0])
            raise BadInput(
                "a value cannot be stored (a NUL character, or a number out of range)"
            ) from exc
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        self._writers.close()


def _unavailable(exc: OperationalError | InterfaceError, *, committing: bool) -> Unavailable:
    """The Unavailable a driver failure becomes (its message goes to the log only)."""
    text = str(exc.orig or exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    log.warning("database failure%s: %s", " during COMMIT" if committing else "", reason)
    if committing:
        return OutcomeUnknown(
            "the connection to the database was lost during the commit: the change may "
            "have been made; reload before trying again"
        )
    return Unavailable("the database is unavailable; reload and try again")


# A pooled connection idle longer than this is pinged before use (see below).
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "foureyes_idle_since"  # in a pooled connection's `info` (cleared on reconnect)


def _ping_idle_connections(engine: Engine, after: float) -> None:
    """SQLAlchemy's pre-ping, for connections that were idle: one that sat in the pool for
    `after` seconds or more is pinged at checkout, and if the ping fails the pool is
    invalidated and a new connection made (what `pool_pre_ping` does on every checkout).
    A server restart or a dropped connection between bursts is thus absorbed as before. Under
    load, connections return within milliseconds and go unpinged; a connection that dies in
    that window fails its transaction as Unavailable (as one that dies mid-transaction always
    did, pinged or not), and the disconnect invalidates the pool, so the next checkouts
    reconnect."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # None: a fresh connection
        if idle_since is None or time.monotonic() - idle_since < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"an idle connection failed its ping: {exc}") from exc


def _sqlite_discipline(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        # Sent on the driver's connection: one BEGIN per transaction, without a statement's
        # way through the engine (its events, context and result). A failure (the file busy
        # past `busy_timeout`) is raised as the engine would raise it (OperationalError).
        try:
            connection.connection.driver_connection.execute(
                "BEGIN" if read_only else "BEGIN IMMEDIATE"
            )
        except sqlite3.Error as exc:
            raise DBAPIError.instance("BEGIN", None, exc, sqlite3.Error) from exc
