"""The queue of writers on one SQLite file: one write transaction at a time, taken in turn.

SQLite's own wait for a busy file sleeps up to 100 ms between tries, so the writers of two
processes polling one lock made a submit's latency seconds at the tail. Here a process's
threads queue on a lock, and the thread holding it takes an advisory lock (`flock`) on
`<file>-writer` against the other processes. A writer that finds that lock held waits for it
in the kernel, which hands it over as soon as it is let go: polling for it (as this did, every
0.5 to 4 ms) let the process that had just let go take it again before the other process
looked, turn after turn, and that process's requests waited for hundreds of milliseconds
(`bench/api.py`: p99 409 ms polling, 112 ms waiting in the kernel, at the same rate).

The lock only orders writers: SQLite's own lock (`BEGIN IMMEDIATE`) still keeps them one at a
time, for a program that writes without this queue too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from foureyes.errors import Unavailable

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the thread lock alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# How long a writer waits for its turn, as long as SQLite's own `busy_timeout`.
WRITER_WAIT_SECONDS = 30.0

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class Writers:
    """One write transaction at a time on a SQLite file (see the module): `one()` is a
    writer's turn. The lock file is re-opened after a fork (a descriptor shared with the
    parent would share its lock). A thread that opens a write transaction inside its own
    passes (SQLite's lock decides, as before). Waiting longer than WRITER_WAIT_SECONDS is
    Unavailable, as SQLite's busy database is. `path` None: nothing to queue for."""

    def __init__(self, path: str | None) -> None:
        self._path = None if path is None else f"{path}-writer"
        self._lock = threading.RLock()
        self._depth = 0
        self._file: tuple[int, int] | None = None  # (pid, descriptor)
        self._closer: weakref.finalize[[int], Writers] | None = None
        self._held: int | None = None  # the descriptor whose lock this turn holds

    @contextmanager
    def one(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        if not self._lock.acquire(timeout=WRITER_WAIT_SECONDS):
            raise Unavailable("the database is busy: try again")
        try:
            if self._depth == 0:
                self._held = self._take_file(deadline)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._leave_file()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the lock file (`Database.dispose`); a later write opens it again."""
        if self._closer is not None:
            self._closer()
        self._closer, self._file = None, None

    def _descriptor(self) -> int | None:
        if fcntl is None or self._path is None:
            return None
        pid = os.getpid()
        if self._file is None or self._file[0] != pid:
            self.close()  # a parent's descriptor, inherited by a fork: not this process's lock
            # Made for foureyes' user alone whatever the umask, as the database file's
            # neighbours (-wal, -shm) are made by SQLite.
            descriptor = os.open(self._path, _OPEN_FLAGS, 0o600)
            self._file = (pid, descriptor)
            # Closed with the database (`close`), or when it is dropped unclosed (tests make
            # thousands): never left open for the life of the process.
            self._closer = weakref.finalize(self, os.close, descriptor)
        return self._file[1]

    def _take_file(self, deadline: float) -> int | None:
        """The file lock, taken: the descriptor that holds it (None: no lock file)."""
        try:
            descriptor = self._descriptor()
        except OSError as exc:
            # A directory foureyes may read but not create files in: SQLite's own lock alone.
            log.warning("cannot open the writers' lock %s: %s", self._path, exc)
            return None
        if descriptor is None:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            pass  # another process writes: wait in the kernel for it to let go
        assert self._path is not None
        waited = _wait_in_kernel(self._path, deadline - time.monotonic())
        if waited is None:
            raise Unavailable("the database is busy: try again")
        return waited

    def _leave_file(self) -> None:
        held, self._held = self._held, None
        if held is None or fcntl is None:
            return
        if self._file is not None and held == self._file[1]:
            if self._file[0] == os.getpid():
                fcntl.flock(held, fcntl.LOCK_UN)
            return
        os.close(held)  # a waiter's own open file: closing it lets the lock go


def _wait_in_kernel(path: str, seconds: float) -> int | None:
    """Wait up to `seconds` for the file lock on `path`, blocked in the kernel (`flock`
    has no timeout, so a thread waits while this one waits for it): a descriptor of its own
    open file, holding the lock, or None in time. A wait given up on lets the lock go as soon
    as it gets it. Its own open file, not the process's: `flock` locks belong to an open file,
    so a late waiter letting go can never release a lock another turn holds."""
    descriptor = os.open(path, _OPEN_FLAGS, 0o600)
    guard = threading.Lock()
    done = threading.Event()
    held: list[int] = []  # the descriptor, once the lock is held for the caller
    abandoned = False

    def wait() -> None:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as exc:  # not expected of a blocking flock: the caller is told busy
            log.warning("waiting for the writers' lock %s failed: %s", path, exc)
            os.close(descriptor)
            done.set()
            return
        with guard:
            if abandoned:
                os.close(descriptor)  # nobody waits for it any more: let it go
                return
            held.append(descriptor)
            done.set()

    threading.Thread(target=wait, name="foureyes-writers-wait", daemon=True).start()
    done.wait(max(0.0, seconds))
    with guard:
        if held:  # taken, perhaps just as the time ran out
            return held[0]
        abandoned = True
    return None
