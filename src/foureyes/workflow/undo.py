"""Undo: a new request for the reverse action, linked to the original, decided by the policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.tables import RequestRow
from foureyes.workflow.access import may_see, unknown_request
from foureyes.workflow.services import Actor, Services
from foureyes.workflow.submit import Submission, submit


def undo(
    services: Services,
    actor: Actor,
    request_id: str,
    justification: str | None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """Submit the reverse of an executed request; returns the new request's id. Once the undo
    executes, the original becomes `reverted`. `params` are the reverse action's own (e.g. the
    email address to restore); most reverse actions take none.

    Any member of staff may ask for an undo (whoever notices the harm; the undo is decided
    by the policy like any request, and recorded in their name). But to someone who may not
    see the original (`access.may_see`) every refusal about the original (not executed, not
    reversible) is the NotFound of an unknown id, so that trying ids teaches nothing about
    requests they may not see."""
    with services.database.transaction() as session:
        original = session.get(RequestRow, request_id)
        if original is None:
            raise unknown_request(request_id)
        hidden = not may_see(services, session, original, actor)
        if original.state != RequestState.EXECUTED.value:
            if hidden:
                raise unknown_request(request_id)
            raise Conflict(
                f"only an executed request can be undone; this one is {original.state}",
                request_id=request_id,
            )
        platform = original.account_ref.partition(":")[0]
        spec = services.connector(platform).action(original.action)
        if spec.reversible_by is None:
            if hidden:
                raise unknown_request(request_id)
            raise Conflict(f"{original.action} cannot be undone", request_id=request_id)
        reverse = spec.reversible_by
        account = original.account_ref
    return submit(
        services,
        actor,
        Submission(
            action=reverse,
            account=account,
            params=dict(params or {}),
            justification=justification,
            reverts=request_id,
        ),
    )
