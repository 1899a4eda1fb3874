"""Undoing a batch: one reverse batch (the action that undoes it, `ActionSpec.reversible_by`)
over its executed items, all or those chosen by position, decided by the policy like any batch
(`batch_submit`): its items are decided one by one, split out or denied as the rules say, and it
waits for its own approvals. Each reverse item names the item it reverses (in its digest, and
to the platform as `ExecutionOrder.reverts`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict
from foureyes.store.tables import BatchItemRow, BatchRow
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
    with _alerting(services, batch_id):
        given, _ = _reverse(services, actor, batch_id, positions, justification)
        return submit_batch(services, actor, given)


class Undone(NamedTuple):
    """What `undo_batch_or_replay` did: the reverse batch, whether it was a replay, and the
    items a whole-batch undo left out because another undo already carries them."""

    batch_id: str
    replayed: bool
    left_out: list[dict[str, Any]]


def undo_batch_or_replay(
    services: Services,
    actor: Actor,
    batch_id: str,
    *,
    positions: Sequence[int] | None = None,
    justification: str | None = None,
    idempotency_key: str | None = None,
) -> Undone:
    """`undo_batch` keeping the promise of an idempotency key (`Undone`; a replay names no
    item left out: it answers the first call's reverse batch). The key stands for the undo as
    asked (`batch_idempotency.undo_fingerprint`): a retry answers the reverse batch the first
    call made, before the checks that it would now fail (its items are being undone already)."""
    asked = batch_idempotency.undo_fingerprint(batch_id, positions, justification)
    if idempotency_key is not None:
        found = batch_idempotency.earlier(services, actor, idempotency_key, asked)
        if found is not None:
            return Undone(found, True, [])
    try:
        with _alerting(services, batch_id):
            given, left_out = _reverse(services, actor, batch_id, positions, justification)
            if idempotency_key is None:
                return Undone(submit_batch(services, actor, given), False, left_out)
            keyed = dataclasses.replace(given, idempotency_key=idempotency_key)
            made, replayed = batch_idempotency.submit_or_replay(services, actor, keyed, asked=asked)
            return Undone(made, replayed, [] if replayed else left_out)
    except batch_undo_guard.OriginalAltered:
        raise
    except Conflict:
        # A call with this key recorded its undo after our look-up (a client's retry racing
        # its first call): the undo guard refuses ours as "already undone" before the unique
        # index could; the key's promise is the first call's answer, not a conflict.
        if idempotency_key is None:
            raise
        found = batch_idempotency.earlier(services, actor, idempotency_key, asked)
        if found is None:
            raise
        return Undone(found, True, [])


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
) -> tuple[BatchSubmission, list[dict[str, Any]]]:
    """The reverse batch of the chosen executed items, as `undo_batch` submits it, and the
    items left out. A whole-batch undo (no `positions`) leaves out the items another undo
    not yet ended carries (batch attack 2, G4: one pending split-out undo must not block
    the rest), naming each and its undo; Conflict when that leaves none. Positions named
    explicitly are all undone or the call is refused."""
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
            _refuse_altered(session, batch)
            if batch.state == "reverted":
                raise Conflict(f"batch {batch_id} is reverted: it was undone already")
            raise Conflict(f"no item of batch {batch_id} was executed: there is nothing to undo")
        platform = next(iter(executed.values())).account_ref.partition(":")[0]
        reverse = services.connector(platform).action(batch.action).reversible_by
        if reverse is None:
            raise BadInput(f"{batch.action} cannot be undone")
        left_out: list[dict[str, Any]] = []
        named = batch_undo_guard.named_to(services, session, actor)
        if positions is None:
            held = batch_undo_guard.open_undos(
                session, batch_id, [item.id for item in executed.values()]
            )
            chosen = [item for item in executed.values() if item.id not in held]
            if not chosen:
                batch_undo_guard.refuse_open_undo(session, batch_id, list(held), named)
            left_out = [
                {
                    "position": item.position,
                    "account": item.account_ref,
                    "undone_by": {kind: named(kind, by)},
                }
                for item in executed.values()
                if item.id in held
                for kind, by in [held[item.id]]
            ]
        else:
            wrong = [p for p in positions if p not in executed]
            if wrong:
                _refuse_altered(session, batch)
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
        batch_undo_guard.refuse_open_undo(session, batch_id, [item.id for item in chosen], named)
        # Items whose rows say otherwise than their execution's event: alerted (below, the
        # look being a read), and undone as the event says (`batch_undo_guard.superseded`).
        noticed = batch_undo_guard.rows_against_log(session, chosen)
        given = BatchSubmission(
            action=reverse,
            accounts=[item.account_ref for item in chosen],
            params={},
            justification=justification if justification is not None else batch.justification,
            reverts=batch.id,
            reverts_items=tuple(item.id for item in chosen),
        )
    batch_undo_guard.alert_rows(services, batch_id, noticed, "undo")
    return given, left_out


def _refuse_altered(session: Session, batch: BatchRow) -> None:
    """OriginalAltered (and, from `undo_batch_or_replay`, the high `batch_tampered` alert) when
    the batch or its items are not what the log proves, before an item's state is believed to
    refuse the undo: every item set `reverted` in the store answered "nothing to undo" with no
    alert (attack H5)."""
    found = batch_undo_guard.altered(session, batch, [])
    if found is not None:
        raise batch_undo_guard.OriginalAltered(
            f"batch {batch.id} is not what its log and approved manifest prove: {found}; "
            "nothing of it is undone",
            batch_id=batch.id,
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
