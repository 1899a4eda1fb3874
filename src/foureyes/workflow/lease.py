"""Execution leases: the process carrying out a request holds it, and renews the hold while the
platform call runs, so that reconciliation takes over only an execution whose process is gone.

- The claim (`execute.execute`) writes the attempt with `lease_until = now + lease`, where the
  lease is `Services.execution_lease` (settings' `execution_lease`, 2 minutes by default).
- While the platform call runs, a `heartbeat` renews it every third of the lease. A platform
  call may take longer than the lease: it is held as long as its process is alive and reaches
  the database.
- Reconciliation (`workflow.reconcile`) takes over only an attempt whose lease has lapsed (the
  process died, hung, or lost the database for a whole lease): `lapsed` in the worker's query,
  and again under the row locks. Taking over marks the attempt `taken_over`, which no heartbeat
  renews, and gives the reconciler the lease while it asks the platform.
- An executor that comes back after that no longer holds the request: `holds` is False, its
  outcome is kept on its attempt and moves nothing (`execute`).
- An executor whose platform call ended with its outcome unknown (cut short by the call's
  deadline, its answer lost or not believed) does not wait for its lease to lapse: it marks the
  attempt `abandoned` with its lease lapsed now, and the worker reconciles it at once.

Times come from `Services.clock`: the servers' clocks must agree to well within a lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.model import RequestState
from foureyes.store.tables import ExecutionRow, RequestRow

log = logging.getLogger(__name__)

TAKEN_OVER = "taken_over"  # an attempt reconciliation took over (its `outcome`)
# An attempt whose platform call ended with its outcome unknown (`ConnectorError.
# outcome_unknown`): its executor gave up the hold at once, for reconciliation to take over.
ABANDONED = "abandoned"
# The alert raised for every interrupted execution, and for a platform call that comes back
# applied after its request was taken over (docs/detectors.md, "raised by the core").
INTERRUPTED_ALERT = "execution_interrupted"
# How often a heartbeat renews, as a fraction of the lease: two renewals may be missed.
RENEWALS_PER_LEASE = 3


def lapsed(now: datetime) -> ColumnElement[bool]:
    """For a query on RequestRow: `executing`, and no attempt of it is held at `now`."""
    held = exists(
        select(ExecutionRow.id).where(
            ExecutionRow.request_id == RequestRow.id,
            ExecutionRow.finished_at.is_(None),
            ExecutionRow.lease_until > now,
        )
    )
    return (RequestRow.state == RequestState.EXECUTING.value) & ~held


def latest_attempt(session: Session, request_id: str, *, lock: bool = False) -> ExecutionRow | None:
    """The request's last attempt (locked FOR UPDATE with `lock`: a heartbeat renewing it waits,
    and then finds it taken over)."""
    query = (
        select(ExecutionRow)
        .where(ExecutionRow.request_id == request_id)
        .order_by(ExecutionRow.attempt.desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def held_until(attempt: ExecutionRow | None, now: datetime) -> datetime | None:
    """Until when `attempt` is held (by its executor, or by a reconciler that took it over),
    or None when it is not held at `now`."""
    if attempt is None or attempt.finished_at is not None or attempt.lease_until is None:
        return None
    return attempt.lease_until if attempt.lease_until > now else None


def holds(row: RequestRow, attempt: ExecutionRow) -> bool:
    """Whether the executor of `attempt` still holds the request: it is `executing` on that
    attempt, which nobody took over or finished. Checked under the request's row lock before an
    outcome is recorded."""
    return (
        row.state == RequestState.EXECUTING.value
        and attempt.outcome is None
        and attempt.finished_at is None
    )


def renew(services: Services, request_id: str, attempt: int) -> bool:
    """Extend the attempt's lease by a lease from now; False when it is no longer its
    executor's to renew (taken over, or finished)."""
    with services.database.transaction() as session:
        result = session.execute(
            update(ExecutionRow)
            .where(
                ExecutionRow.request_id == request_id,
                ExecutionRow.attempt == attempt,
                ExecutionRow.finished_at.is_(None),
                ExecutionRow.outcome.is_(None),
            )
            .values(lease_until=services.clock() + services.execution_lease)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1


class Beat:
    """`with Beat(services, what, renew): <the platform call>`: calls `renew()` on a thread every
    third of the lease until the block ends. A renewal that fails (the database is down) is
    logged and tried again at the next beat; one that answers False (the hold was taken over,
    settled or claimed again) stops: the outcome will say so. `what` names the hold in logs."""

    def __init__(self, services: Services, what: str, renew: Callable[[], bool]) -> None:
        self._services = services
        self._what = what
        self._renew = renew
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {what}", daemon=True)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._services.execution_lease.total_seconds() / RENEWALS_PER_LEASE
        while not self._stop.wait(interval):
            try:
                if not self._renew():
                    log.warning("%s was taken over while its platform call ran", self._what)
                    return
            except FoureyesError as exc:  # the store is down: the lease may lapse
                log.warning("%s: lease not renewed: %s", self._what, exc.message)
            except Exception:  # a bug: its traceback, and keep beating
                log.exception("%s: lease not renewed", self._what)


def heartbeat(services: Services, request_id: str, attempt: int) -> Beat:
    """`with heartbeat(services, request_id, attempt): <the platform call>`: the attempt's lease
    renewed while the call runs (`Beat`)."""
    return Beat(
        services,
        f"request {request_id} attempt {attempt}",
        lambda: renew(services, request_id, attempt),
    )
