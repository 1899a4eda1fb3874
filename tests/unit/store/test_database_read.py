"""`Database.read` joins a read of the same database already open in the same thread (the dry
run's token check, pins, policy and demo-platform lookup are one transaction), and nothing
else joins: writes have their own transaction, another database its own, another thread its
own."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy.orm import Session

from foureyes.store.database import Database


def test_a_read_inside_a_read_joins_it(database: Database) -> None:
    with database.read() as outer, database.read() as inner:
        assert inner is outer
    with database.read() as later:  # the outer one ended: a new transaction
        assert later is not outer


def test_a_transaction_inside_a_read_has_its_own(database: Database) -> None:
    with database.read() as outer, database.transaction() as write:
        assert write is not outer


def test_another_database_or_thread_does_not_join(database: Database, tmp_path: Path) -> None:
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        seen: list[Session] = []
        with database.read() as outer:
            with other.read() as elsewhere:
                assert elsewhere is not outer

            def in_a_thread() -> None:
                with database.read() as session:
                    seen.append(session)

            thread = threading.Thread(target=in_a_thread)
            thread.start()
            thread.join()
        assert len(seen) == 1
        assert seen[0] is not outer
    finally:
        other.dispose()
