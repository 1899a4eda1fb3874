"""Undoing a batch: one reverse batch (the action that undoes it, `ActionSpec.reversible_by`)
over its executed items, all or those chosen by position, decided by the policy like any batch
(`batch_submit`): its items are decided one by one, split out or denied as the rules say, and it
waits for its own approvals. Each reverse item names the item it reverses (in its digest, and
to the platform as `ExecutionOrder.reverts`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict
from foureyes.store.tables import BatchItemRow
from foureyes.workflow import batch_idempotency, batch_undo_guard, batch_views
from foureyes.workflow.batch_submit import BatchSubmission, submit_batch


def undo_batch(
    services: Services,
    actor: Actor,
    batch_id: str,
    *,
    positions: Sequence[int] | None = None,
    justification: str | None = None,
) -> str:
    """Submit the reverse batch; its id. BadInput for an action nothing undoes, a position
    that names no executed item; Conflict when no item of the batch was executed."""
    given = _reverse(services, actor, batch_id, positions, justification)
    with _alerting(services, batch_id):
        return submit_batch(services, actor, given)


def undo_batch_or_replay(
    services: Services,
    actor: Actor,
    batch_id: str,
    *,
    positions: Sequence[int] | None = None,
    justification: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[str, bool]:
    """`undo_batch` keeping the promise of an idempotency key: (the reverse batch's id,
    replayed). The key stands for the undo as asked (`batch_idempotency.undo_fingerprint`):
    a retry answers the reverse batch the first call made, before the checks that it would
    now fail (its items are being undone already)."""
    if idempotency_key is None:
        return undo_batch(
            services, actor, batch_id, positions=positions, justification=justification
        ), False
    asked = batch_idempotency.undo_fingerprint(batch_id, positions, justification)
    found = batch_idempotency.earlier(services, actor, idempotency_key, asked)
    if found is not None:
        return found, True
    try:
        given = _reverse(services, actor, batch_id, positions, justification)
        keyed = dataclasses.replace(given, idempotency_key=idempotency_key)
        with _alerting(services, batch_id):
            return batch_idempotency.submit_or_replay(services, actor, keyed, asked=asked)
    except batch_undo_guard.OriginalAltered:
        raise
    except Conflict:
        # A call with this key recorded its undo after our look-up (a client's retry racing
        # its first call): the undo guard refuses ours as "already undone" before the unique
        # index could; the key's promise is the first call's answer, not a conflict.
        found = batch_idempotency.earlier(services, actor, idempotency_key, asked)
        if found is None:
            raise
        return found, True


@contextlib.contextmanager
def _alerting(services: Services, batch_id: str) -> Iterator[None]:
    """An undo refused because the batch it reverses was altered raises the high
    `batch_tampered` alert (in its own transaction: the undo's rolled back)."""
    try:
        yield
    except batch_undo_guard.OriginalAltered as exc:
        batch_undo_guard.alert(services, batch_id, exc.message, "undo")
        raise


def _reverse(
    services: Services,
    actor: Actor,
    batch_id: str,
    positions: Sequence[int] | None,
    justification: str | None,
) -> BatchSubmission:
    """The reverse batch of the chosen executed items, as `undo_batch` submits it."""
    with services.database.read() as session:
        batch = batch_views.visible(services, session, batch_id, actor)
        executed = {
            item.position: item
            for item in session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.state == "executed")
                .order_by(BatchItemRow.position)
            )
        }
        if not executed:
            if batch.state == "reverted":
                raise Conflict(f"batch {batch_id} is reverted: it was undone already")
            raise Conflict(f"no item of batch {batch_id} was executed: there is nothing to undo")
        platform = next(iter(executed.values())).account_ref.partition(":")[0]
        reverse = services.connector(platform).action(batch.action).reversible_by
        if reverse is None:
            raise BadInput(f"{batch.action} cannot be undone")
        if positions is None:
            chosen = list(executed.values())
        else:
            wrong = [p for p in positions if p not in executed]
            undone = _reverted(session, batch_id, wrong)
            if undone:
                raise Conflict(
                    f"item {undone[0]} of batch {batch_id} is reverted: it was undone already",
                    positions=undone,
                )
            if wrong:
                raise BadInput(
                    f"no executed item at position {wrong[0]} of batch {batch_id}",
                    positions=wrong,
                )
            chosen = [executed[p] for p in sorted(set(positions))]
        batch_undo_guard.refuse_open_undo(session, batch_id, [item.id for item in chosen])
        return BatchSubmission(
            action=reverse,
            accounts=[item.account_ref for item in chosen],
            params={},
            justification=justification if justification is not None else batch.justification,
            reverts=batch.id,
            reverts_items=tuple(item.id for item in chosen),
        )


def _reverted(session: Session, batch_id: str, positions: Sequence[int]) -> list[int]:
    if not positions:
        return []
    return sorted(
        session.scalars(
            select(BatchItemRow.position).where(
                BatchItemRow.batch_id == batch_id,
                BatchItemRow.position.in_(list(positions)),
                BatchItemRow.state == "reverted",
            )
        )
    )
