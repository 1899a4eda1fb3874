"""Stopping a batch before it is carried out, as a single request is cancelled
(`foureyes.workflow.review.cancel`): its requester may withdraw it while it is pending or
approved; while its delay runs (approved, `not_before` still ahead), anyone whose review of it
would count now (`batch_views.may_approve`) may cancel it too: the delay is the time in which
they can. Once it is executing it is too late (its items are being carried out).

To anyone who may not see the batch it is NotFound, as an unknown id. The batch is first
checked against its log (`batch_ledger`): one not where its events say is stopped as altered.
The cancellation is one `batch.cancelled` event naming who cancelled it and why; its items,
never carried out, show as cancelled (`batch_views`).
"""

from __future__ import annotations

from foureyes.core import logstate
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, Forbidden
from foureyes.text import refuse_unseen
from foureyes.workflow import batch_events, batch_ledger, batch_views

MAX_REASON = 2000


def cancel_batch(services: Services, actor: Actor, batch_id: str, reason: str = "") -> str:
    """Cancel the batch (the module's docstring); its new state."""
    if len(reason) > MAX_REASON:
        raise BadInput(f"the reason is longer than {MAX_REASON} characters")
    refuse_unseen(reason, "reason")  # read in the console, the CLI and the log
    logstate.refuse(services)
    stopped: str | None = None
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        if batch is None or not batch_views.may_see(services, session, batch, actor):
            raise batch_views.unknown(batch_id)
        found = batch_ledger.ledger(session, batch.id)
        lifecycle = found.problem(batch)
        if lifecycle is not None:
            stopped = batch_ledger.refuse(
                services, session, batch, found, lifecycle, now, during="cancel"
            )
        else:
            if batch.state not in ("pending", "approved"):
                raise Conflict(
                    f"only a pending or approved batch can be cancelled; batch {batch.id} is "
                    f"{batch.state}",
                    batch_id=batch.id,
                )
            if actor.id != batch.requester_id:
                in_delay = (
                    batch.state == "approved"
                    and batch.not_before is not None
                    and batch.not_before > now
                )
                if not in_delay:
                    raise Forbidden(
                        "only the requester may cancel a batch that is not in its delay"
                    )
                if not batch_views.may_approve(services, session, batch, actor):
                    raise Forbidden("only the requester or an eligible reviewer may cancel it")
            batch_events.move(
                services,
                session,
                batch,
                "cancelled",
                allowed=("pending", "approved"),
                actor=actor.id,
                now=now,
                reason=reason or f"cancelled by {actor.id}",
            )
            return batch.state
    raise Conflict(f"the batch was not cancelled by you: {stopped}", batch_id=batch_id)
