"""The lease on a batch item carried out on a remote platform, held for as long as its call
runs: `with item_heartbeat(services, item_id, attempt): <the platform call>` renews the item's
`lease_until` on a thread every third of `Services.execution_lease`, so that another worker
(`batch_execute._next_items`) never takes a live call's item for a dead one and reconciles
or runs it again while the call is still under way. A renewal that fails (the database is
down) is logged and tried at the next beat; one that finds the item settled or re-claimed
stops. The same contract as `foureyes.workflow.lease.heartbeat`, for batch items.
"""

from __future__ import annotations

from sqlalchemy import update

from foureyes.core.services import Services
from foureyes.store.tables import BatchItemRow
from foureyes.workflow.lease import Beat


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


def item_heartbeat(services: Services, item_id: str, attempt: int) -> Beat:
    """Renews one batch item's lease while its platform call runs (the module's contract)."""
    return Beat(
        services,
        f"batch item {item_id} attempt {attempt}",
        lambda: renew_item(services, item_id, attempt),
    )
