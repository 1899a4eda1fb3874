"""`core.request_index`: the events whose bodies name a request, whatever the columns say; what
a transaction read joins the index only if it commits; a log emptied and refilled is read
afresh; the oldest are forgotten beyond `KEEP` and still found for an old request."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session
from tests.dba import tamper

from foureyes.audit.log import AuditLog
from foureyes.core import request_index
from foureyes.store.database import Database

ORIGIN = "foureyes.test/request-index"


@pytest.fixture(autouse=True)
def _no_index_yet() -> None:
    request_index._INDEXES.clear()


def _append(database: Database, log: AuditLog, *requests: str | None) -> list[int]:
    with database.transaction() as session:
        return [
            log.append(
                session, kind="review.recorded", actor="e-1", account_ref=None, request_id=r
            ).seq
            for r in requests
        ]


def _seqs(database: Database, request_id: str, since: int = 0) -> list[int]:
    with database.transaction() as session:
        return request_index.events(session, request_id, since).seqs


def test_events_are_found_by_their_bodies_not_their_columns(database: Database) -> None:
    log = AuditLog(ORIGIN)
    a1, b1, a2 = _append(database, log, "a", "b", "a")
    assert _seqs(database, "a") == [a1, a2]  # the index is made from the bodies
    tamper(database, "UPDATE audit_events SET request_id = NULL WHERE seq = :seq", seq=a2)
    tamper(database, "UPDATE audit_events SET request_id = 'a' WHERE seq = :seq", seq=b1)
    (a3,) = _append(database, log, "a")
    assert _seqs(database, "a") == [a1, a2, a3]  # known already, and read since
    request_index._INDEXES.clear()
    assert _seqs(database, "a") == [a1, a2, a3]  # read afresh from the bodies
    assert _seqs(database, "a", since=a2) == [a2, a3]
    assert _seqs(database, "b") == [b1]
    with database.transaction() as session:
        found = request_index.hidden(session, "a", a1, {a1, a3})
    assert list(found.bodies) == [a2]
    assert found.gone == []


class _Undone(Exception):
    pass


def _append_own(session: Session, log: AuditLog) -> None:
    """Append an event of request `x` and see it in this transaction, then fail."""
    log.append(session, kind="review.recorded", actor="e", account_ref=None, request_id="x")
    assert request_index.events(session, "x", 0).seqs != []  # its own, in it
    raise _Undone


def _rolled_back(database: Database, log: AuditLog, undone: str) -> None:
    try:
        with database.transaction() as session:
            if undone == "transaction":
                _append_own(session, log)
            try:
                with session.begin_nested():
                    _append_own(session, log)
            except _Undone:
                pass
    except _Undone:
        pass


@pytest.mark.parametrize("undone", ["transaction", "savepoint"])
def test_what_a_rolled_back_transaction_read_never_joins(database: Database, undone: str) -> None:
    """Its own appends were never in the log: their seqs go to other events."""
    log = AuditLog(ORIGIN)
    (first,) = _append(database, log, "a")
    _seqs(database, "a")  # the index covers the log so far
    _rolled_back(database, log, undone)
    (reused,) = _append(database, log, "y")
    assert reused == first + 1
    assert _seqs(database, "x") == []
    assert _seqs(database, "y") == [reused]


def test_a_log_emptied_and_filled_again_is_read_afresh(database: Database) -> None:
    """As a restore from a backup: the index of the old log would hide the new one's events."""
    log = AuditLog(ORIGIN)
    _append(database, log, "a", "a", "a")
    assert len(_seqs(database, "a")) == 3
    for statement in ("DELETE FROM audit_nodes", "DELETE FROM audit_events"):
        tamper(database, statement)
    tamper(database, "UPDATE audit_head SET size = 0")
    log = AuditLog(ORIGIN)
    seqs = _append(database, log, "b", "b", "b", "b")
    assert _seqs(database, "b") == seqs
    assert _seqs(database, "a") == []


def test_a_shorter_log_read_below_the_index_names_no_row_missing(database: Database) -> None:
    """The index covers a range from a late seq (a request submitted then); the log is then
    replaced by a shorter one (a restore, or a test database emptied): a request submitted
    before that range is read from its submission, and the rows the old index covered that the
    new log never held are not named as deleted (a batch refused as altered, found in the
    suite: session 18)."""
    log = AuditLog(ORIGIN)
    old = _append(database, log, *(["x"] * 8))
    assert _seqs(database, "x", since=old[5]) == old[5:]  # the index: [old[5], head)
    for statement in ("DELETE FROM audit_nodes", "DELETE FROM audit_events"):
        tamper(database, statement)
    tamper(database, "UPDATE audit_head SET size = 0")
    log = AuditLog(ORIGIN)
    new = _append(database, log, "a", "a", "a")
    with database.transaction() as session:
        found = request_index.events(session, "a", new[0])
    assert found.seqs == new
    assert found.suspects == []
    with database.transaction() as session:
        assert request_index.hidden(session, "a", new[0], new).gone == []


def test_the_oldest_are_forgotten_beyond_keep_and_still_found(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_index, "KEEP", 4)
    monkeypatch.setattr(request_index, "CHUNK", 3)
    log = AuditLog(ORIGIN)
    first, _, last = _append(database, log, "old", None, "old")
    old = [first, last]
    assert _seqs(database, "old") == old
    later = _append(database, log, *["new"] * 6)
    assert _seqs(database, "new", since=later[0]) == later
    index = request_index._INDEXES[next(iter(request_index._INDEXES))]
    assert len(index._order) <= 4
    tamper(database, "UPDATE audit_events SET request_id = NULL")
    assert _seqs(database, "old", since=old[0]) == old  # read again from its submission
    assert _seqs(database, "new", since=later[0]) == later
