"""Undo: a new request for the reverse action, linked to the original, decided by the policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foureyes.errors import BadInput, Conflict
from foureyes.model import ActionSpec, RequestState
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
    email address to restore); most reverse actions take none. Given none, the ones the
    platform reported when the original executed (`ExecutionResult.undo_params`: a changed
    email's previous address) are used, so that whoever undoes need not know what was there
    before; given some, they win. Only someone who may see the original gets them filled in:
    they become the new request's params, which its requester sees.

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
        if not params:
            stored = None if hidden else original.undo_params
            params = stored if stored is not None else {}
            if not params:
                _check_needs_none(services, platform, reverse, request_id)
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


def _check_needs_none(services: Services, platform: str, reverse: str, request_id: str) -> None:
    """BadInput, saying what to give, when the reverse action requires params and foureyes has
    none to fill in (the original executed before foureyes kept them, or its platform does not
    report them): clearer than the schema's complaint about a missing property."""
    required = services.connector(platform).action(reverse).params_schema.get("required") or []
    if required:
        names = ", ".join(str(name) for name in required)
        raise BadInput(
            f"the undo ({reverse}) needs {names}, and foureyes has no record of what was there "
            f"before request {request_id}: give {names} with the undo (the value to restore)"
        )


def undo_asks_for(services: Services, actor: Actor, request_id: str) -> ActionSpec | None:
    """The reverse action whose params whoever undoes must give (the console shows its inputs):
    when it requires some and foureyes has none stored to fill in; None otherwise (and for a
    request that cannot be undone). NotFound, as for an unknown id, to someone who may not see
    the request. Says whether params are stored, never what they are."""
    with services.database.read() as session:
        original = session.get(RequestRow, request_id)
        if original is None or not may_see(services, session, original, actor):
            raise unknown_request(request_id)
        platform = original.account_ref.partition(":")[0]
        reverse = services.connector(platform).action(original.action).reversible_by
        if reverse is None or original.undo_params is not None:
            return None
    spec = services.connector(platform).action(reverse)
    return spec if spec.params_schema.get("required") else None
