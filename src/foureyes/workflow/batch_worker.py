"""The worker's batch pass: pending batches past their `expires_at` expire; approved batches
that are due, and batches left `executing` (their process died), are carried out
(`batch_execute.execute_batch`, which resumes where the last committed chunk ended). Safe with
several workers: every step locks the batch row, and chunks skip items another process holds."""

from __future__ import annotations

import logging

from sqlalchemy import select

from foureyes.core.services import Services
from foureyes.errors import Conflict, FoureyesError
from foureyes.store.tables import BatchRow
from foureyes.workflow import batch_events, batch_execute

log = logging.getLogger(__name__)


def run_batches(services: Services, worker: str) -> list[str]:
    """One pass; the ids of the batches it carried out (or tried to)."""
    expire_batches(services)
    acted = []
    for batch_id in batch_execute.runnable(services):
        try:
            batch_execute.execute_batch(services, batch_id, worker=worker)
        except Conflict:
            continue  # another worker holds it
        except FoureyesError as exc:
            log.warning("batch %s could not be carried out: %s", batch_id, exc.message)
            continue
        except Exception:  # a bug in one batch must not stop the worker's pass
            log.exception("batch %s could not be carried out", batch_id)
            continue
        acted.append(batch_id)
    return acted


def expire_batches(services: Services) -> list[str]:
    """Expire the pending batches whose time to be approved is over (one event each)."""
    now = services.clock()
    with services.database.read() as session:
        due = list(
            session.scalars(
                select(BatchRow.id).where(BatchRow.state == "pending", BatchRow.expires_at <= now)
            )
        )
    expired = []
    for batch_id in due:
        with services.database.transaction() as session:
            row = batch_events.lock(session, batch_id, skip_locked=True)
            if row is None or row.state != "pending":
                continue
            batch_events.move(
                services,
                session,
                row,
                "expired",
                allowed=("pending",),
                actor=None,
                now=services.clock(),
                reason="not approved in time",
            )
            expired.append(batch_id)
    return expired
