"""Undo: a new request for the reverse action, linked to the original, decided by the policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, FoureyesError
from foureyes.model import ActionSpec, RequestState
from foureyes.store.tables import RequestRow
from foureyes.workflow import idempotency, integrity, logged_result, undo_once
from foureyes.workflow.access import may_see, unknown_request
from foureyes.workflow.submit import Submission, Submitted, replay, submit_or_replay


def undo(
    services: Services,
    actor: Actor,
    request_id: str,
    justification: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> str:
    """`undo_or_replay`'s request id."""
    return undo_or_replay(
        services, actor, request_id, justification, params, idempotency_key=idempotency_key
    ).request_id


def undo_or_replay(
    services: Services,
    actor: Actor,
    request_id: str,
    justification: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> Submitted:
    """Submit the reverse of an executed request; returns the new request (`Submitted`). Once
    the undo executes, the original becomes `reverted`. `params` are the reverse action's own
    (e.g. the email address to restore); most reverse actions take none. Given none, the ones the
    platform reported when the original executed (`ExecutionResult.undo_params`: a changed
    email's previous address) are used, so that whoever undoes need not know what was there
    before. Values filled in that way are private: every view of the new request shows them
    redacted (`redaction.shown_params`); only the platform gets them. A value typed under a
    name foureyes stored is BadInput, whatever it is (it would be shown as redacted as the
    recorded one); params foureyes has none stored for are taken as given, shown as given.

    Only someone who may see the original (`access.may_see`) may undo it. To anyone else the
    original does not exist: the NotFound of an unknown id, checked before anything else (the
    state, whether it is reversible, the params), and nothing is recorded, so that trying ids
    teaches nothing (which action a request was, that it is executed) and files nothing.

    With an idempotency key, as `submit_or_replay`, the key standing for the undo as asked
    (`idempotency.undo_fingerprint`): a retry with the key and the same request, justification
    and params answers the undo the first call made (`replayed`) — looked up before anything
    else, since the original is `reverted` once that undo executed — and the key with anything
    else is IdempotencyKeyReused. (The key names the caller's own request only: a replay
    tells nothing about the original.)"""
    asked = None
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
        asked = idempotency.undo_fingerprint(
            reverts=request_id, justification=justification, params=params
        )
        earlier = _keyed(services, actor, idempotency_key)
        if earlier is not None:
            return replay(earlier, asked)
    try:
        return _undo(services, actor, request_id, (justification, params), idempotency_key, asked)
    except Conflict:
        # A call with this key recorded its undo after our look-up (a client's retry racing
        # its first call): the undo's guards refuse ours ("another undo is open", "reverted")
        # before the unique index could; the key's promise is the first call's answer.
        earlier = None if idempotency_key is None else _keyed(services, actor, idempotency_key)
        if earlier is None or asked is None:
            raise
        return replay(earlier, asked)


def _keyed(services: Services, actor: Actor, idempotency_key: str) -> idempotency.Earlier | None:
    with services.database.read() as session:
        return idempotency.find(session, actor.id, idempotency_key)


def _undo(
    services: Services,
    actor: Actor,
    request_id: str,
    given: tuple[str | None, Mapping[str, Any] | None],
    idempotency_key: str | None,
    asked: str | None,
) -> Submitted:
    """The undo itself (`undo_or_replay`, its key looked up already)."""
    justification, params = given
    refusal: FoureyesError | None = None
    with services.database.transaction() as session:
        original = session.get(RequestRow, request_id)
        if original is None or not may_see(services, session, original, actor):
            raise unknown_request(request_id)
        # The reverse acts on the original's account with its stored undo params, and its state
        # says whether it may: only if the original is what the log says (else security is
        # alerted, committed, and it fails): a state set `reverted` in the store refused an
        # undo with no alert (attack H9).
        found = integrity.trail(session, original.id)
        altered = found.problem(original)
        if altered is None and original.state != RequestState.EXECUTED.value:
            raise Conflict(
                f"only an executed request can be undone; this one is {original.state}",
                request_id=request_id,
            )
        # What its execution changed is the log's word too: a `result` edited to say it
        # changed nothing refused the undo for good, with no alert (attack F2, session h2).
        logged = (
            logged_result.Logged() if altered is not None else logged_result.check(original, found)
        )
        altered = altered or logged.unproven
        if altered is not None:
            refusal = Conflict(
                "it cannot be undone: "
                + integrity.refuse(
                    services,
                    session,
                    original,
                    found,
                    altered,
                    services.clock(),
                    actor=actor.id,
                    during="undo",
                ),
                request_id=request_id,
            )
        else:
            if logged.problem is not None:
                # Alerted (committed, whatever the undo's fate), and decided by the log.
                logged_result.alert_once(
                    services,
                    session,
                    original,
                    found,
                    logged.problem,
                    actor=actor.id,
                    during="undo",
                )
            # A forged open undo of it (a row the log never recorded) is refused, committed,
            # before `undo_once.check_recordable` looks for one (attack F3, session h2).
            undo_once.refuse_unlogged_undos(services, session, original.id, actor.id)
            try:
                reverse, account, params = _reverse(
                    services, original, params, already_applied=logged.already_applied
                )
            except FoureyesError as exc:
                refusal = exc  # raised once the alerts above are committed
    if refusal is not None:
        raise refusal
    return submit_or_replay(
        services,
        actor,
        Submission(
            action=reverse,
            account=account,
            params=dict(params or {}),
            justification=justification,
            reverts=request_id,
            idempotency_key=idempotency_key,
        ),
        asked=asked,
    )


def _reverse(
    services: Services,
    original: RequestRow,
    params: Mapping[str, Any] | None,
    *,
    already_applied: bool,
) -> tuple[str, str, Mapping[str, Any]]:
    """The reverse action of an executed, intact `original`, its account and its params;
    `already_applied`: whether its execution changed nothing, as the log says
    (`logged_result`), never as its row says."""
    request_id = original.id
    platform = original.account_ref.partition(":")[0]
    spec = services.connector(platform).action(original.action)
    if spec.reversible_by is None:
        raise Conflict(f"{original.action} cannot be undone", request_id=request_id)
    reverse = spec.reversible_by
    if already_applied:
        # The account was already in that state: someone else put it there (another tool,
        # another moderator). Undoing would lift a state foureyes did not create.
        raise Conflict(
            f"{original.action} changed nothing on {platform}: the account was already in that "
            "state, put there by someone else, so there is nothing of foureyes' to undo (lift "
            "it with its own request, if that is what is wanted)",
            request_id=request_id,
        )
    stored = original.undo_params or {}
    typed_over = sorted(set(params or {}) & set(stored))
    if typed_over:
        # What foureyes recorded is shown redacted (it is private), so a value typed under
        # its name would reach approvers looking exactly like it: they would approve a change
        # to an address none of them saw (attack F5). Refused whatever the value (no oracle).
        names = ", ".join(typed_over)
        raise BadInput(
            f"foureyes restores the {names} it recorded before request {request_id}: an undo "
            f"takes no other value for {names}; leave it out (to set another value, ask for "
            f"{reverse} on its own, where approvers see it)"
        )
    if not params:
        params = stored
        if not params:
            _check_needs_none(services, platform, reverse, request_id)
    return reverse, original.account_ref, params


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
        if integrity.trail(session, original.id).problem(original) is not None:
            return None  # undo params emptied in the store: the undo refuses it, alerting
    spec = services.connector(platform).action(reverse)
    return spec if spec.params_schema.get("required") else None
