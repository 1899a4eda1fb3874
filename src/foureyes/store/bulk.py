"""Statements over many keys at once (the bulk reads of batches).

`one_of(session, column, values)` is `column IN (values)`: on PostgreSQL as `column =
ANY(array)`, one bound parameter however many values (psycopg parses a statement with a
thousand placeholders on every call, and does not cache statements that long); on SQLite as
an IN list (its parser is native code, and it has no arrays). `chunks(values)` cuts a long
list into pieces of at most `CHUNK`, so that an IN list stays within SQLite's bound-parameter
limit and one statement's answer stays small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, any_, bindparam
from sqlalchemy.orm import Session

CHUNK = 1000


def one_of(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `values` (strings), written for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        found: ColumnElement[bool] = column == any_(
            bindparam(None, list(values), type_=ARRAY(String))
        )
        return found
    within: ColumnElement[bool] = column.in_(list(values))
    return within


def chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """`values` in consecutive pieces of at most `CHUNK`."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
