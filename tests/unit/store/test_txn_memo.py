"""`store.txn_memo`: an answer is kept for the rest of its transaction only until that
transaction writes where it was read from (or sends anything unrecognised), and never outlives
the transaction; the records decisions rest on (a person, pins, the policy in force) read
through it are seen changed as soon as the same transaction changes them."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update

from foureyes.errors import RecordAltered
from foureyes.store import txn_memo
from foureyes.store.database import Database
from foureyes.store.tables import PinRow, StaffRow
from tests.worlds import World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _counting(reads: list[int], value: int = 1) -> int:
    reads.append(value)
    return len(reads)


def test_an_answer_is_kept_until_a_write_to_a_table_it_was_read_from(world: World) -> None:
    reads: list[int] = []
    with world.services.database.transaction() as session:
        connection = session.connection()

        def recall() -> int:
            return txn_memo.recall(connection, "k", 1, ("staff",), lambda: _counting(reads))

        assert recall() == recall() == 1
        # A write elsewhere keeps it; a write to its table forgets it.
        session.execute(text("UPDATE outbox SET attempts = 0 WHERE id = -1"))
        assert recall() == 1
        session.execute(text("UPDATE staff SET name = 'x' WHERE id = 'nobody'"))
        assert recall() == 2
        # Any statement that is neither a read nor a plain write to a named table forgets all.
        session.execute(text("WITH n AS (SELECT 1) UPDATE account_pins SET pin = 'x' WHERE 1 = 0"))
        assert recall() == 3
    assert len(reads) == 3


def test_nothing_outlives_its_transaction_nor_a_rolled_back_savepoint(world: World) -> None:
    reads: list[int] = []
    database = world.services.database

    def recall(session_connection: object) -> int:
        return txn_memo.recall(
            session_connection,  # type: ignore[arg-type]
            "k",
            1,
            ("staff",),
            lambda: _counting(reads),
        )

    with database.transaction() as session:
        assert recall(session.connection()) == 1
    with database.transaction() as session:
        assert recall(session.connection()) == 2  # a new transaction reads again
        with session.begin_nested():
            assert recall(session.connection()) == 2
            session.execute(text("UPDATE outbox SET attempts = 0 WHERE id = -1"))
            raised_inside = recall(session.connection())
        assert raised_inside == 2
        nested = session.begin_nested()
        recall(session.connection())
        nested.rollback()
        assert recall(session.connection()) == 3  # a savepoint rolled back forgets everything
    with database.read() as session:
        assert recall(session.connection()) == 4


def test_a_person_changed_in_the_same_transaction_is_read_changed(world: World) -> None:
    """The sealed person is remembered: a change to their row in the same transaction (here
    one foureyes did not seal: an altered record) is seen at the next read, never hidden by
    the memo."""
    services = world.services
    with services.database.transaction() as session:
        before = services.staff(session, "e-2001")
        assert services.staff(session, "e-2001") == before
        session.execute(update(StaffRow).where(StaffRow.id == "e-2001").values(region="xx"))
        with pytest.raises(RecordAltered):
            services.staff(session, "e-2001")


def test_pins_changed_in_the_same_transaction_are_read_changed(world: World) -> None:
    services = world.services
    account = "chirp:alice"
    with services.database.transaction() as session:
        pins, _, _ = services.pins_and_policy(session, account)
        assert services.pins(session, account) == pins
        session.add(PinRow(account_ref=account, pin="protected", created_at=world.clock.now))
        session.flush()
        with pytest.raises(RecordAltered):
            services.pins(session, account)
        with pytest.raises(RecordAltered):
            services.pins_and_policy(session, account)


def test_a_policy_version_added_in_the_same_transaction_is_in_force_at_once(
    world: World,
) -> None:
    services = world.services
    with services.database.transaction() as session:
        version, _ = services.policy_in_force(session)
        assert services.policy_in_force(session)[0] == version
        session.execute(
            text(
                "INSERT INTO policy_versions (version, digest, text, created_at) "
                "SELECT :n, digest, text, created_at FROM policy_versions WHERE version = :v"
            ),
            {"n": version + 1, "v": version},
        )
        # The new row is read (and, not vouched for by the log, refused): not the memo's.
        with pytest.raises(RecordAltered):
            services.policy_in_force(session)
