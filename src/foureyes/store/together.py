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

A unit alone runs in its caller's context (`contextvars`); units sharing a transaction run
in one context with it, so that what waits for the transaction's end (a tampered record's
alert: `core.sealing.when_idle`) runs once it has ended. A caller waits until its answer is
known. A caller that finds nobody leading runs its own unit at once: grouping adds
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
    # Set once: when the job is settled, or when its caller is handed the lead.
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    value: Any = None
    error: BaseException | None = None

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error, self.done = value, error, True
        self.woken.set()


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
        self._queue = threading.Lock()  # guards `_waiting` and `_leading`
        self._waiting: list[_Job[Any]] = []
        self._leading = False
        self._leader: int | None = None  # the leading thread's id

    def run(self, unit: Callable[[Session], T]) -> T:
        """`unit(session)` in a write transaction, possibly shared with other callers' units
        (one COMMIT): its answer, or what it raised. The transaction's own failures are
        raised as `Database.transaction` raises them.

        Callers queue in order. The one that finds nobody leading leads: it runs the front of
        the queue (its own unit first) as one transaction, settles each caller, and hands the
        lead to the caller now at the front, if any. Each caller is woken once, by its answer
        or by the lead (all waiters woken at every COMMIT made them take turns for the GIL
        only to sleep again)."""
        if self._leader == threading.get_ident():
            # Asked from inside a unit this thread runs for a group: waiting for the group
            # would wait for itself. Its own transaction, as a nested write always had.
            with self._transaction() as session:
                return unit(session)
        job: _Job[T] = _Job(unit)
        with self._queue:
            self._waiting.append(job)
            leads = not self._leading
            self._leading = True
        if not leads:
            job.woken.wait()  # answered, or handed the lead with its job at the queue's front
        if not job.done:
            self._lead()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def _lead(self) -> None:
        """Run the front of the queue as one group, then pass the lead on (or give it up)."""
        self._leader = threading.get_ident()
        batch: list[_Job[Any]] = []
        try:
            with self._queue:
                batch = self._waiting[: self._most]
                del self._waiting[: self._most]
            self._run(batch)
        finally:
            for left in batch:
                if not left.done:  # the leader itself was interrupted
                    left.settle(error=Unavailable("the write was interrupted: try again"))
            self._leader = None
            with self._queue:
                if self._waiting:
                    self._waiting[0].woken.set()  # its caller leads next
                else:
                    self._leading = False

    def _run(self, batch: list[_Job[Any]]) -> None:
        # A transaction and the units in it run in one context from its BEGIN to its end:
        # what waits for a thread's transactions to end (`core.sealing.when_idle`: a
        # tampered record's alert) is kept in context variables. A unit alone runs in its
        # caller's context; a shared transaction in a fresh copy of the leader's.
        if len(batch) > 1 and contextvars.copy_context().run(self._shared, batch):
            return
        for job in batch:
            try:
                value = job.context.run(self._alone, job)
            except Exception as exc:  # the unit's own answer, raised to its caller
                job.settle(error=exc)
            else:
                job.settle(value)

    def _alone(self, job: _Job[T]) -> T:
        with self._transaction() as session:
            return job.unit(session)

    def _shared(self, batch: list[_Job[Any]]) -> bool:
        """Run `batch` in one transaction: True once each unit is settled with its answer (or
        all with a lost COMMIT's OutcomeUnknown), False if a unit raised or the database
        failed before the COMMIT (nothing was kept: each must run again alone)."""
        values: list[Any] = []
        unit_failed = False
        try:
            with self._transaction() as session:
                for job in batch:
                    try:
                        values.append(job.unit(session))
                    except Exception:
                        unit_failed = True
                        raise
        except OutcomeUnknown as lost:
            if unit_failed:  # raised by a unit, not the COMMIT: it was rolled back
                return False
            for job in batch:  # it may have committed: nothing runs again
                job.settle(error=lost)
            return True
        except Exception as exc:  # one unit, or the database: each runs alone
            log.debug("a shared transaction failed (%s): its units run alone", exc)
            return False
        for job, value in zip(batch, values, strict=True):
            job.settle(value)
        return True
