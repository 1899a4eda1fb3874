"""Group commit: write transactions of concurrent callers made one, with one COMMIT.

A COMMIT waits for the database's durable write (an fsync: several milliseconds on the
disks foureyes runs on), and the log's head stays locked until it returns (on PostgreSQL the
head row, on SQLite the whole file), so transactions that each append to the log commit one
at a time, whatever the number of cores. `Together.run` lets the callers of one process that
arrive while a COMMIT is under way share the next one: one thread (the leader) runs their
units of work one after the other in a single transaction, each seeing what the ones before
it wrote, exactly as if they had run alone in that order; then one COMMIT makes them all
durable together.

All or each alone: if any unit raises, or the database fails before the COMMIT, the shared
transaction is rolled back and every unit of it runs again alone, in its own transaction, as
it would have without grouping; so a unit must be re-runnable (it decides from what it reads,
not from what an earlier run of it left in memory) and a failing one costs only time. A
COMMIT whose answer is lost (OutcomeUnknown) is every unit's answer: none runs again.

Each unit runs in its caller's context (`contextvars`), and its caller waits until its
answer is known. A caller that finds nobody leading runs its own unit at once: grouping adds
no wait to a lone request.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from foureyes.errors import OutcomeUnknown, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Units run in one transaction at most: bounds the wait of the last of them.
MOST_TOGETHER = 16


@dataclass(eq=False)
class _Job(Generic[T]):
    unit: Callable[[Session], T]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    done: bool = False
    value: Any = None
    error: BaseException | None = None

    def run(self, session: Session) -> T:
        return self.context.run(self.unit, session)

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error, self.done = value, error, True


class Together:
    """Runs units of work in shared transactions opened by `transaction` (see the module)."""

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        *,
        most: int = MOST_TOGETHER,
    ) -> None:
        self._transaction = transaction
        self._most = most
        self._changed = threading.Condition(threading.Lock())
        self._waiting: list[_Job[Any]] = []
        self._leading = False

    def run(self, unit: Callable[[Session], T]) -> T:
        """`unit(session)` in a write transaction, possibly shared with other callers' units
        (one COMMIT): its answer, or what it raised. The transaction's own failures are
        raised as `Database.transaction` raises them."""
        job: _Job[T] = _Job(unit)
        with self._changed:
            self._waiting.append(job)
        while True:
            with self._changed:
                while not job.done and self._leading:
                    self._changed.wait()
                if job.done:
                    break
                self._leading = True
                batch = self._waiting[: self._most]
                del self._waiting[: self._most]
            try:
                self._run(batch)
            finally:
                with self._changed:
                    for left in batch:
                        if not left.done:  # the leader itself was interrupted
                            left.settle(error=Unavailable("the write was interrupted: try again"))
                    self._leading = False
                    self._changed.notify_all()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def _run(self, batch: list[_Job[Any]]) -> None:
        if len(batch) > 1:
            values: list[Any] = []
            try:
                with self._transaction() as session:
                    for job in batch:
                        values.append(job.run(session))
            except OutcomeUnknown as lost:
                for job in batch:  # it may have committed: nothing runs again
                    job.settle(error=lost)
                return
            except Exception as exc:  # one unit, or the database: each runs alone below
                log.debug("a shared transaction failed (%s): its units run alone", exc)
            else:
                for job, value in zip(batch, values, strict=True):
                    job.settle(value)
                return
        for job in batch:
            try:
                with self._transaction() as session:
                    value = job.run(session)
            except Exception as exc:  # the unit's own answer, raised to its caller
                job.settle(error=exc)
            else:
                job.settle(value)
