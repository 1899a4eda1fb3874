"""The lease on a batch item carried out on a remote platform, held for as long as its call
runs: `with ItemHeartbeat(services, item_id, attempt): <the platform call>` renews the item's
`lease_until` on a thread every third of `Services.execution_lease`, so that another worker
(`batch_execute._next_items`) never takes a live call's item for a dead one and reconciles
or runs it again while the call is still under way. A renewal that fails (the database is
down) is logged and tried at the next beat; one that finds the item settled or re-claimed
stops. The same contract as `foureyes.workflow.lease.Heartbeat`, for batch items.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy import update

from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.store.tables import BatchItemRow
from foureyes.workflow.lease import RENEWALS_PER_LEASE

log = logging.getLogger(__name__)


def renew_item(services: Services, item_id: str, attempt: int) -> bool:
    """Extend the item's lease by a lease from now; False when it is no longer this attempt's
    (settled, put back, or claimed again)."""
    with services.database.transaction() as session:
        result = session.execute(
            update(BatchItemRow)
            .where(
                BatchItemRow.id == item_id,
                BatchItemRow.state == "executing",
                BatchItemRow.attempt == attempt,
            )
            .values(lease_until=services.clock() + services.execution_lease)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1


class ItemHeartbeat:
    """Renews one batch item's lease while its platform call runs (the module's contract)."""

    def __init__(self, services: Services, item_id: str, attempt: int) -> None:
        self._services = services
        self._item = item_id
        self._attempt = attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease item {item_id}#{attempt}", daemon=True
        )

    def __enter__(self) -> ItemHeartbeat:
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
                if not renew_item(self._services, self._item, self._attempt):
                    return
            except FoureyesError as exc:  # the store is down: the lease may lapse
                log.warning("batch item %s: lease not renewed: %s", self._item, exc.message)
            except Exception:  # a bug: its traceback, and keep beating
                log.exception("batch item %s: lease not renewed", self._item)
