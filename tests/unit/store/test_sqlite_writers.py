"""On a SQLite file, write transactions queue for their turn (`foureyes.store.writers`): a thread
lock in the process, an advisory lock on `<file>-writer` between processes. Reads never queue;
a writer that cannot have its turn in time is Unavailable and wrote nothing."""

from __future__ import annotations

import fcntl
import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from foureyes.errors import Unavailable
from foureyes.store import writers as writers_module
from foureyes.store.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with made.transaction() as session:
        session.execute(text("CREATE TABLE counted (n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counted (n) VALUES (0)"))
    yield made
    made.dispose()


@contextmanager
def another_process_writing(tmp_path: Path) -> Iterator[None]:
    """The writers' lock held as another process holds it (its own open file: `flock` locks
    belong to an open file, so this one conflicts with the database's)."""
    descriptor = os.open(tmp_path / "w.db-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def count(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(text("SELECT n FROM counted")).scalar_one())


def test_a_writer_waits_for_another_process_and_gives_up_in_time_writing_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers_module, "WRITER_WAIT_SECONDS", 0.05)
    with another_process_writing(tmp_path):
        with pytest.raises(Unavailable), db.transaction() as session:
            session.execute(text("UPDATE counted SET n = n + 1"))
        assert count(db) == 0  # reads do not queue
    with db.transaction() as session:  # its turn came: it writes
        session.execute(text("UPDATE counted SET n = n + 1"))
    assert count(db) == 1


def test_the_lock_file_is_the_owners_alone(db: Database, tmp_path: Path) -> None:
    with db.transaction() as session:
        session.execute(text("UPDATE counted SET n = n + 1"))
    assert (tmp_path / "w.db-writer").stat().st_mode & 0o077 == 0


def test_threads_writing_at_once_each_write_once(db: Database) -> None:
    """Eight threads, twenty read-modify-write transactions each: none lost, none refused."""
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                with db.transaction() as session:
                    n = session.execute(text("SELECT n FROM counted")).scalar_one()
                    session.execute(text("UPDATE counted SET n = :n"), {"n": n + 1})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert count(db) == 160


def test_a_database_disposed_or_dropped_leaves_no_lock_file_open(tmp_path: Path) -> None:
    def open_lock_files() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if _points_at(fd, "-writer"))

    before = open_lock_files()
    for n in range(3):
        made = Database(f"sqlite:///{tmp_path / f'{n}.db'}")
        with made.transaction() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        assert open_lock_files() == before + 1
        if n % 2:
            made.dispose()
        else:
            made.engine.dispose()
            del made, session
            gc.collect()
        assert open_lock_files() == before


def _points_at(fd: Path, suffix: str) -> bool:
    try:
        return os.readlink(fd).endswith(suffix)
    except OSError:
        return False


def _waiters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "foureyes-writers-wait"]


def test_a_writer_waiting_for_another_process_writes_once_it_lets_go(
    db: Database, tmp_path: Path
) -> None:
    """The waiter is blocked in the kernel on the lock (not sleeping between looks): it
    writes once the other process lets go, and leaves no lock file open."""
    lock_files = _open_lock_files()
    written = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with db.transaction() as session:
                session.execute(text("UPDATE counted SET n = n + 1"))
            written.set()
        except BaseException as exc:
            failures.append(exc)

    with another_process_writing(tmp_path):
        writer = threading.Thread(target=write)
        writer.start()
        while not _waiters():  # the writer found the lock held and waits for it
            assert writer.is_alive(), failures
            threading.Event().wait(0.001)
        assert not written.is_set()
        assert count(db) == 0
    writer.join()
    assert failures == []
    assert count(db) == 1
    assert _open_lock_files() == lock_files


def test_a_wait_given_up_lets_the_lock_go_when_it_gets_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that gave up (Unavailable) must not keep the lock its waiter gets later: the
    other processes would queue behind a turn nobody takes."""
    monkeypatch.setattr(writers_module, "WRITER_WAIT_SECONDS", 0.05)
    lock_files = _open_lock_files()
    with another_process_writing(tmp_path):
        with pytest.raises(Unavailable), db.transaction() as session:
            session.execute(text("UPDATE counted SET n = n + 1"))
        late = _waiters()
        assert late  # still waiting in the kernel after its caller gave up
    for waiter in late:
        waiter.join()
    with another_process_writing(tmp_path):  # free: LOCK_NB succeeds
        assert count(db) == 0
    assert _open_lock_files() == lock_files


def _open_lock_files() -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _points_at(fd, "-writer"))
