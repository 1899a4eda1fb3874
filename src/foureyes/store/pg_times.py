"""PostgreSQL's `infinity` and `-infinity` timestamps, read as the far ends of Python's range.

psycopg cannot read them as `datetime` and raises, so one row a database administrator wrote
with `created_at = 'infinity'` made every query that loads it fail: the alerts list, a worker
pass, a timeline (the third attack run blinded oversight's alert list with one row). Read as
`datetime.max` / `datetime.min` (UTC), such a row loads, compares as the time it claims (far in
the future or past), and the checks that compare times with the log name it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import adapters
from psycopg.types.datetime import TimestampLoader, TimestamptzLoader

__all__ = ["read_infinite_times"]

_FAR_FUTURE = datetime.max
_FAR_PAST = datetime.min


class _Timestamptz(TimestamptzLoader):
    def load(self, data: bytes | bytearray | memoryview) -> datetime:
        if data == b"infinity":
            return _FAR_FUTURE.replace(tzinfo=UTC)
        if data == b"-infinity":
            return _FAR_PAST.replace(tzinfo=UTC)
        return super().load(data)


class _Timestamp(TimestampLoader):
    def load(self, data: bytes | bytearray | memoryview) -> datetime:
        if data == b"infinity":
            return _FAR_FUTURE
        if data == b"-infinity":
            return _FAR_PAST
        return super().load(data)


def read_infinite_times() -> None:
    """Register the loaders for every psycopg connection of this process (idempotent)."""
    adapters.register_loader("timestamptz", _Timestamptz)
    adapters.register_loader("timestamp", _Timestamp)
