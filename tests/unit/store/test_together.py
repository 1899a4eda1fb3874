"""Group commit (`Database.together`): concurrent callers' units share one transaction and one
COMMIT, each seeing what the ones before it wrote; a unit that fails leaves nothing and makes
every unit of its group run again alone (the others still commit); a lost COMMIT is every
unit's answer and none runs again; each unit runs in its caller's context."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from foureyes.core import sealing
from foureyes.errors import Conflict, OutcomeUnknown
from foureyes.store import writers as writers_module
from foureyes.store.database import Database

_caller: ContextVar[str] = ContextVar("test_together_caller", default="nobody")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 't.db'}")
    with made.transaction() as session:
        session.execute(text("CREATE TABLE written (name TEXT PRIMARY KEY, seen INTEGER)"))
    yield made
    made.dispose()


def begins(db: Database) -> list[int]:
    counted = [0]

    def began(*_: Any) -> None:
        counted[0] += 1

    event.listen(db.engine, "begin", began)
    return counted


def names(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.execute(text("SELECT name FROM written ORDER BY name")).scalars())


def writing(name: str, *, fail: bool = False) -> Callable[[Session], int]:
    """A unit that writes `name` with how many rows it saw before it; raises Conflict after
    writing if `fail`."""

    def unit(session: Session) -> int:
        seen = int(session.execute(text("SELECT count(*) FROM written")).scalar_one())
        session.execute(
            text("INSERT INTO written (name, seen) VALUES (:name, :seen)"),
            {"name": name, "seen": seen},
        )
        if fail:
            raise Conflict(f"{name} refuses")
        return seen

    return unit


def grouped(db: Database, units: dict[str, Callable[[Session], Any]]) -> dict[str, Any]:
    """Each unit from its own thread, the first one held inside its transaction until all the
    others are waiting: they then run as one group after it. The answers (or exceptions)."""
    answers: dict[str, Any] = {}
    release = threading.Event()
    first, *others = units

    def held(session: Session) -> Any:
        release.wait(timeout=60)
        return units[first](session)

    def call(name: str, unit: Callable[[Session], Any]) -> None:
        _caller.set(name)
        try:
            answers[name] = db.together(unit)
        except Exception as exc:
            answers[name] = exc

    threads = [threading.Thread(target=call, args=(first, held))]
    threads[0].start()
    waiting = db._together._waiting
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:  # the leader took the first unit
        time.sleep(0.001)
    for name in others:
        threads.append(threading.Thread(target=call, args=(name, units[name])))
        threads[-1].start()
    while len(waiting) < len(others) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(waiting) == len(others), "the other units never queued"
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_a_lone_unit_runs_at_once_in_its_own_transaction(db: Database) -> None:
    counted = begins(db)
    assert db.together(writing("a")) == 0
    assert counted[0] == 1
    assert names(db) == ["a"]


def test_units_waiting_together_share_one_transaction_each_seeing_the_ones_before(
    db: Database,
) -> None:
    counted = begins(db)
    answers = grouped(db, {name: writing(name) for name in ["a", "b", "c", "d", "e"]})
    assert counted[0] == 2  # the first alone, the four waiting for it together
    assert names(db) == ["a", "b", "c", "d", "e"]
    assert answers["a"] == 0
    assert sorted(answers[name] for name in "bcde") == [1, 2, 3, 4]  # one after the other


def test_more_waiting_than_a_group_holds_are_led_in_turn_each_answered_once(
    db: Database,
) -> None:
    """The lead passes from caller to caller: groups of at most `most`, in queue order, and
    every caller answered (none left waiting for a wake-up that never comes)."""
    assert db._together is not None
    db._together._most = 2
    counted = begins(db)
    answers = grouped(db, {name: writing(name) for name in "abcdefg"})
    assert counted[0] == 4  # the first alone, then six waiting in groups of two
    assert names(db) == list("abcdefg")
    assert sorted(answers.values()) == list(range(7))


def test_a_failing_unit_writes_nothing_and_the_others_of_its_group_still_commit(
    db: Database,
) -> None:
    answers = grouped(
        db, {"a": writing("a"), "b": writing("b"), "c": writing("c", fail=True), "d": writing("d")}
    )
    assert isinstance(answers["c"], Conflict)
    assert str(answers["c"]) == "c refuses"
    assert names(db) == ["a", "b", "d"]
    assert answers["b"] in {1, 2}
    assert answers["d"] in {1, 2}


def test_a_lost_commit_is_every_units_answer_and_none_runs_again(db: Database) -> None:
    runs: list[str] = []

    def counting(name: str) -> Callable[[Session], int]:
        inner = writing(name)

        def unit(session: Session) -> int:
            runs.append(name)
            if name in {"b", "c"}:
                event.listen(session, "before_commit", lose_commit, once=True)
            return inner(session)

        return unit

    def lose_commit(session: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    answers = grouped(db, {name: counting(name) for name in "abc"})
    assert answers["a"] == 0
    assert isinstance(answers["b"], OutcomeUnknown)
    assert isinstance(answers["c"], OutcomeUnknown)
    assert sorted(runs) == ["a", "b", "c"]  # b and c once each: nothing ran again


def test_an_outcome_unknown_a_unit_raises_is_its_own_and_the_others_still_commit(
    db: Database,
) -> None:
    def unsure(session: Session) -> int:
        writing("b")(session)
        raise OutcomeUnknown("b cannot tell")

    answers = grouped(db, {"a": writing("a"), "b": unsure, "c": writing("c")})
    assert isinstance(answers["b"], OutcomeUnknown)
    assert str(answers["b"]) == "b cannot tell"
    assert answers["c"] in {1, 2}
    assert names(db) == ["a", "c"]  # b's write was rolled back; c ran again alone


def test_a_lone_unit_runs_in_its_callers_context(db: Database) -> None:
    def whose(session: Session) -> str:
        return _caller.get()

    _caller.set("the caller")
    assert db.together(whose) == "the caller"


def test_what_waits_for_a_transactions_end_runs_once_the_shared_one_committed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tampered record's alert waits for the thread's transactions to end
    # (`sealing.when_idle`): from any unit of a group, it runs once, after the COMMIT, never
    # inside the shared transaction (a write there would wait for the group's own lock).
    sealing._listen()
    monkeypatch.setattr(writers_module, "WRITER_WAIT_SECONDS", 2.0)
    after: list[tuple[str, list[str]]] = []

    def waiting(name: str) -> Callable[[Session], int]:
        inner = writing(name)

        def unit(session: Session) -> int:
            answer = inner(session)
            sealing.when_idle(lambda: after.append((name, names(db))))
            return answer

        return unit

    grouped(db, {name: waiting(name) for name in "abcd"})
    assert sorted(name for name, _ in after) == ["a", "b", "c", "d"]
    for name, seen in after:
        assert name in seen  # its own write committed before it ran


@pytest.mark.pg_only
def test_on_postgresql_each_unit_runs_at_once_in_its_own_transaction(database: Database) -> None:
    # A group there would take the log's head lock before its later units' row locks, the
    # reverse of a lone transaction's order: two serving processes deadlocked.
    release, started = threading.Event(), threading.Event()
    answers: dict[str, int] = {}

    def transaction_id(session: Session) -> int:
        return int(session.execute(text("SELECT txid_current()")).scalar_one())

    def held(session: Session) -> int:
        started.set()
        release.wait(timeout=60)
        return transaction_id(session)

    first = threading.Thread(target=lambda: answers.update(held=database.together(held)))
    first.start()
    assert started.wait(timeout=60)
    answers["second"] = database.together(transaction_id)  # not held back by the first
    assert "held" not in answers
    release.set()
    first.join(timeout=60)
    assert answers["held"] != answers["second"]


def test_a_unit_asking_for_another_write_does_not_wait_for_itself(db: Database) -> None:
    def nested(session: Session) -> int:
        writing("outer")(session)
        session.commit()  # SQLite: the nested write needs the file's lock free
        return db.together(writing("inner"))

    assert db.together(nested) == 1
    assert names(db) == ["inner", "outer"]
