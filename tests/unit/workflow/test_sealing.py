"""The sealing of records (`foureyes.core.sealing`): what foureyes writes is sealed in the
same transaction, in the order the transactions commit, and only when something a decision
reads changed."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from tests.worlds import make_world

from foureyes.store import seals
from foureyes.store.database import Database
from foureyes.store.tables import ConsoleSessionRow, EventRow, PinRow, TokenRow
from foureyes.workflow import operations


def _seals(database: Database, subject: str) -> int:
    with database.transaction() as session:
        query = select(func.count()).where(
            EventRow.account_ref == subject, EventRow.kind == seals.SEALED
        )
        return int(session.scalar(query) or 0)


def _intact(database: Database, subject: str) -> bool:
    with database.transaction() as session:
        return seals.sealed_now(session, subject) == seals.current_digest(session, subject)


@pytest.mark.pg_only
def test_two_transactions_changing_one_accounts_pins_at_once_seal_both(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pins set on one account by two transactions, each having checked the account's
    pins as stored (without the other's pin) before either commits: each reads them again once
    it holds the log's head lock, so the last seal is the set both left, and neither is taken
    for a change made behind foureyes' back (the other's pin is sealed by then)."""
    world = make_world(database)
    now = world.clock.now
    subject = "foureyes:pins/chirp:bob"
    both_read = threading.Barrier(2, timeout=10)
    first_read = threading.local()
    read = seals.stored_state

    def stored_state(session: Session, of: str, *, lock: bool) -> tuple[object, object, object]:
        found = read(session, of, lock=lock)
        if of == subject and not getattr(first_read, "done", False):
            first_read.done = True
            both_read.wait()  # both have read the set without the other's pin
        return found

    monkeypatch.setattr(seals, "stored_state", stored_state)
    errors: list[BaseException] = []

    def pin(name: str) -> None:
        try:
            with database.transaction() as session:
                session.add(PinRow(account_ref="chirp:bob", pin=name, created_at=now))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pin, args=(name,)) for name in ("watchlist", "protected")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    monkeypatch.undo()
    with database.transaction() as session:
        assert world.services.pins(session, "chirp:bob") == {"watchlist", "protected"}
    assert _intact(database, subject)


def test_a_change_no_decision_reads_writes_no_seal(database: Database) -> None:
    """A token's label, a session seen again: nothing a seal covers changed, no event."""
    world = make_world(database)
    services = world.services
    token = operations.issue_token(services, "c-1001", label="laptop")
    token_id = token.split("_")[1]
    subject = f"foureyes:token/{token_id}"
    assert _seals(database, subject) == 1
    with database.transaction() as session:
        row = session.get(TokenRow, token_id)
        assert row is not None
        row.label = "old laptop"
    assert _seals(database, subject) == 1
    operations.revoke_token(services, token_id)
    assert _seals(database, subject) == 2
    assert _intact(database, subject)


def test_an_orm_bulk_statement_is_sealed_too_and_pins_refuse_it(database: Database) -> None:
    """A bulk UPDATE through a session names no rows: every record of its kind is read back
    and the changed ones sealed. On pins it is refused (a deleted account's set is lost)."""
    world = make_world(database)
    services = world.services
    token = operations.issue_token(services, "c-1001")
    token_id = token.split("_")[1]
    with database.transaction() as session:
        session.execute(
            update(TokenRow)
            .where(TokenRow.id == token_id)
            .values(expires_at=world.clock.now + timedelta(days=1))
        )
    assert _seals(database, f"foureyes:token/{token_id}") == 2
    assert operations.authenticate(services, token).id == "c-1001"
    with pytest.raises(RuntimeError, match="account_pins is sealed"):  # noqa: SIM117
        with database.transaction() as session:
            session.execute(update(PinRow).values(pin="x"))


def test_a_console_session_deleted_in_bulk_is_left_alone(database: Database) -> None:
    world = make_world(database)
    now = world.clock.now
    with database.transaction() as session:
        session.add(
            ConsoleSessionRow(
                id="a" * 64,
                staff_id="c-1001",
                identity="kim",
                method="token",
                token_id=None,
                client="",
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=12),
            )
        )
    subject = "foureyes:session/" + "a" * 64
    assert _seals(database, subject) == 1
    with database.transaction() as session:
        session.execute(delete(ConsoleSessionRow))
    assert _seals(database, subject) == 1
