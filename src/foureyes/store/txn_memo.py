"""Reads of the records decisions rest on, remembered for the rest of one transaction until
it writes to a table they read.

One review reads the same person, the same pins and the policy in force again and again: its
checks, its settle, the re-check before carrying it out, each card. Within one transaction
their answers change only if the transaction itself writes where they were read from (or, on
PostgreSQL in READ COMMITTED, another transaction commits in between: the first answer
stands, as if every read had been made at the first look, which is what a REPEATABLE READ
transaction sees anyway).

So an answer is kept on the connection (`recall`, for the tables it names) and forgotten:

- when the transaction ends (COMMIT, ROLLBACK) or begins, and when a savepoint rolls back;
- as soon as the connection sends a write to one of the tables it was read from;
- as soon as the connection sends any statement that is neither a read (`SELECT`) nor a plain
  `INSERT`/`UPDATE`/`DELETE` whose table can be read off it: deny by default, an unrecognised
  statement forgets everything.

Nothing is remembered outside a transaction, nor across two. What a reader raises (an altered
record) is never remembered: it is read, and raised, again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

__all__ = ["install", "peek", "recall", "recall_flushed", "remember"]

T = TypeVar("T")

_KEY = "foureyes.txn_memo"
_MISSING = object()
_READ = re.compile(r"\s*(?:SELECT|SAVEPOINT|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE)
_WRITE = re.compile(
    r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?[\s(]',
    re.IGNORECASE,
)


class _Memo:
    """The answers of one transaction, each with the tables it was read from."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, Hashable], tuple[object, frozenset[str]]] = {}

    def forget(self, table: str | None) -> None:
        """Forget what was read from `table` (None: everything)."""
        if table is None:
            self.answers.clear()
            return
        for key in [k for k, (_, tables) in self.answers.items() if table in tables]:
            del self.answers[key]


def install(engine: Engine) -> None:
    """Keep each connection's memo to its transaction and forget on writes (module docstring)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        memo = connection.info.get(_KEY)
        if memo is None or not memo.answers or _READ.match(statement):
            return
        written = _WRITE.match(statement)
        memo.forget(written.group(1).lower() if written else None)

    def _ended(connection: Connection, *_args: Any) -> None:
        # An invalidated connection (dropped by the server) has no info to clear until it is
        # rolled back; the next transaction's "begin" clears it.
        if not connection.invalidated and not connection.closed:
            connection.info.pop(_KEY, None)

    for moment in ("begin", "commit", "rollback", "rollback_savepoint"):
        event.listen(engine, moment, _ended)


def recall(
    connection: Connection, kind: str, key: Hashable, tables: Collection[str], read: Callable[[], T]
) -> T:
    """`read()`'s answer, remembered on `connection` for the rest of its transaction under
    (`kind`, `key`) until it writes to one of `tables` (lower-case names), which `read` reads.
    Outside a transaction, `read()` every time."""
    memo = _memo(connection)
    found, _ = (_MISSING, None) if memo is None else memo.answers.get((kind, key), (_MISSING, None))
    if found is _MISSING:
        found = read()
        remember(connection, kind, key, tables, found)
    return found  # type: ignore[return-value]


def recall_flushed(
    session: Session, kind: str, key: Hashable, tables: Collection[str], read: Callable[[], T]
) -> T:
    """`recall` on `session`'s connection, what the session holds unwritten written first (as
    the read's autoflush would: a row added since the last read is then seen, its INSERT
    forgetting the answer). In a block that holds the session's writes back (`no_autoflush`)
    `read()` is made as the writes stand, and nothing is remembered."""
    if not session.autoflush:
        return read()
    session.flush()
    return recall(session.connection(), kind, key, tables, read)


def peek(connection: Connection, kind: str, key: Hashable) -> Any:
    """The remembered answer to (`kind`, `key`), else None (nothing is read)."""
    memo = _memo(connection)
    found = None if memo is None else memo.answers.get((kind, key))
    return None if found is None else found[0]


def remember(
    connection: Connection, kind: str, key: Hashable, tables: Collection[str], value: object
) -> None:
    """Keep `value` as `recall` would have, for an answer read with others in one statement."""
    memo = _memo(connection)
    if memo is not None:
        memo.answers[(kind, key)] = (value, frozenset(tables))


def _memo(connection: Connection) -> _Memo | None:
    """The memo of the connection's transaction (made at its first use); None outside one."""
    if not connection.in_transaction():
        return None
    memo = connection.info.get(_KEY)
    if memo is None:
        memo = connection.info[_KEY] = _Memo()
    return memo
