"""One SELECT run on the driver itself, for the read every API call makes (a token's check).

SQLAlchemy's session, transaction and result layers cost several times what the database
takes to run a small statement (on SQLite ten times: 0.7 ms of CPU against 0.07 ms). One
statement reads one snapshot on its own, on PostgreSQL and SQLite alike, so it needs no
transaction around it: `OneRow.fetch` runs the statement, compiled once per dialect, on a
connection of the engine's own pool in autocommit (on PostgreSQL no BEGIN and COMMIT round
trips; on SQLite the driver is always in autocommit, `Database`'s events begin transactions),
and answers the driver's row as it is: a tuple of plain values, hashable (no JSON is parsed:
select JSON as text). `values` turns one into what SQLAlchemy would have answered, with its
own result processors.

Inside an open `Database.read()` of the same database the statement runs in that read instead
(its connection, its snapshot: a dry run's token check). A driver failure is Unavailable, a
value the database cannot hold (a NUL) BadInput, as `Database` answers them. Nothing is cached
but the compiled statement: every call reads what is committed then.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Dialect, Select
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from foureyes.errors import BadInput, Unavailable
from foureyes.store.database import Database

__all__ = ["Compiled", "OneRow"]

log = logging.getLogger(__name__)

# What the pool may raise itself (its connections' pings: `Database`), answered as a driver's
# failure is.
_SQLALCHEMY_FAILURES = (OperationalError, InterfaceError, DisconnectionError)


class Compiled:
    """The statement as one dialect's driver takes it."""

    def __init__(self, statement: Select[Any], database: Database) -> None:
        dialect = database.engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # Constants SQLAlchemy binds (SQLite's `OFFSET ?` after a LIMIT), with the caller's
        # parameters filled in by name at each call.
        self.defaults = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        processors: list[Callable[[Any], Any] | None] = []
        for column in statement.selected_columns:
            kind = column.type.dialect_impl(dialect)
            processors.append(kind.result_processor(dialect, None))
        self.processors = tuple(processors)

    def values(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """`row` (from `OneRow.fetch`) with SQLAlchemy's result processors applied: what a
        `Result` of the statement would hold."""
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.processors, row, strict=True)
        )

    def parameters(self, given: Mapping[str, Any]) -> Any:
        params = {**self.defaults, **given}
        if self.order is None:
            return params
        return tuple(params[name] for name in self.order)


class OneRow:
    """A SELECT of at most one row, run on the driver (module docstring). Its parameters are
    passed to the driver as given: plain strings and numbers only (no type of SQLAlchemy's
    converts them)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # By dialect, held weakly: tests make thousands of databases, and an id may come back.
        self._compiled: weakref.WeakKeyDictionary[Dialect, Compiled] = weakref.WeakKeyDictionary()

    def compiled(self, database: Database) -> Compiled:
        """The statement compiled for `database`'s dialect (once per engine)."""
        dialect = database.engine.dialect
        found = self._compiled.get(dialect)
        if found is None:
            found = self._compiled[dialect] = Compiled(self.statement, database)
        return found

    def fetch(self, database: Database, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The row the statement finds in `database` now (None: none), as the driver gives it."""
        compiled = self.compiled(database)
        args = compiled.parameters(params)
        errors = database.engine.dialect.loaded_dbapi
        session = database.open_read()
        try:
            if session is not None:  # join it: its snapshot
                driver = session.connection().connection.driver_connection
                return _run(driver, compiled.sql, args)
            return _run_alone(database, compiled.sql, args)
        except errors.DataError as exc:
            log.info("database refused a value: %s", _first(exc))
            raise BadInput(
                "a value cannot be stored (a NUL character, or a number out of range)"
            ) from exc
        except (errors.OperationalError, errors.InterfaceError, *_SQLALCHEMY_FAILURES) as exc:
            log.warning("database failure: %s", _first(exc))
            raise Unavailable("the database is unavailable; reload and try again") from exc


def _run(driver: Any, sql: str, args: Any) -> tuple[Any, ...] | None:
    cursor = driver.cursor()
    try:
        cursor.execute(sql, args)
        rows = cursor.fetchall()  # to the end: SQLite's statement, and its snapshot, end
    finally:
        cursor.close()
    if len(rows) > 1:
        raise RuntimeError("a OneRow statement found more than one row")
    return tuple(rows[0]) if rows else None


def _run_alone(database: Database, sql: str, args: Any) -> tuple[Any, ...] | None:
    """On a pooled connection of its own. On PostgreSQL in autocommit for the statement, and
    back out of it before the connection returns to the pool, whatever happened: a connection
    that cannot be put back is discarded (`invalidate`), never handed to a transaction that
    would then commit statement by statement."""
    engine = database.engine
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        if database.is_sqlite:
            return _run(driver, sql, args)
        driver.autocommit = True
        try:
            return _run(driver, sql, args)
        finally:
            driver.autocommit = False  # raising, it is discarded below
    except BaseException as exc:
        errors = engine.dialect.loaded_dbapi
        if isinstance(exc, errors.Error) and engine.dialect.is_disconnect(exc, driver, None):
            # As SQLAlchemy does on a disconnect: the pool's older connections go too (a
            # restarted server dropped them all), each replaced at its next checkout.
            engine.pool._invalidate(pooled, exc)  # SQLAlchemy's own call (private)
        elif not isinstance(exc, errors.DataError):
            # Anything but a value refused before it was sent (a NUL): not pooled again.
            pooled.invalidate()
        raise
    finally:
        pooled.close()


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
