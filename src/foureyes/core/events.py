"""Shared pieces of the lifecycle: locking a request, moving it between states (with its audit
event in the same transaction), the request digest and the salted commitments to its values
(`foureyes.core.commitments`), and loading reviews for the engine."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.canonical import canonical_json
from foureyes.audit.log import NewEvent
from foureyes.core import commitments
from foureyes.core.redaction import event_payload, notified_params
from foureyes.core.services import Services, json_safe
from foureyes.errors import Conflict, NotFound
from foureyes.model import RequestState
from foureyes.notify import hooks as notify_hooks
from foureyes.store.tables import RequestRow

REVIEW = "review"
POST_REVIEW = "post_review"

# The lifecycle (DESIGN "Request lifecycle"): which states each state may move to.
TRANSITIONS: Mapping[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING: frozenset(
        {
            RequestState.APPROVED,
            RequestState.SCHEDULED,
            RequestState.DENIED,
            RequestState.EXPIRED,
            RequestState.CANCELLED,
        }
    ),
    RequestState.APPROVED: frozenset(
        {RequestState.EXECUTING, RequestState.CANCELLED, RequestState.EXPIRED}
    ),
    RequestState.SCHEDULED: frozenset(
        {
            RequestState.EXECUTING,
            RequestState.CANCELLED,
            RequestState.APPROVED,
            RequestState.EXPIRED,  # only what waits for its requester (worker._expire)
        }
    ),
    RequestState.EXECUTING: frozenset(
        {RequestState.EXECUTED, RequestState.FAILED, RequestState.APPROVED}
    ),
    RequestState.EXECUTED: frozenset({RequestState.REVERTED}),
}


def request_digest(
    *,
    salt: str,
    action: str,
    account: str,
    params: Mapping[str, Any],
    justification: str | None,
    policy_version: int,
    requester: str,
    break_glass: bool,
    reverts: str | None,
) -> str:
    """SHA-256 of the canonical JSON of what reviewers approve: exactly this action, on exactly
    this account, with exactly these parameters, for this reason, under this policy, asked by
    this person, break-glass or not, undoing this request (or none). What a step-up signs, and
    what `foureyes.workflow.integrity` recomputes from the stored row before acting on it.

    Salted (version 3, docs/digests.md): the request's random `salt` is in the hashed body, so
    whoever sees the digest but not the salt (reviewers, oversight, the log's readers) cannot
    test a guess of a value the request holds and does not show them (the address an undo
    restores). The salt is stored with the request, never shown nor logged; the submitted
    event's digest binds it (another salt gives another digest)."""
    body = {
        "v": commitments.DIGEST_VERSION,
        "salt": salt,
        "action": action,
        "account": account,
        "params": json_safe(dict(params)),
        "justification": justification,
        "policy_version": policy_version,
        "requester": requester,
        "break_glass": break_glass,
        "reverts": reverts,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def v2_request_digest(
    *,
    action: str,
    account: str,
    params: Mapping[str, Any],
    justification: str | None,
    policy_version: int,
    requester: str,
    break_glass: bool,
    reverts: str | None,
) -> str:
    """The unsalted digest of requests submitted before version 3 (their submitted event has
    no `digest_version`): only to check those, never to make one."""
    body = {
        "v": 2,
        "action": action,
        "account": account,
        "params": json_safe(dict(params)),
        "justification": justification,
        "policy_version": policy_version,
        "requester": requester,
        "break_glass": break_glass,
        "reverts": reverts,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def legacy_request_digest(
    *,
    action: str,
    account: str,
    params: Mapping[str, Any],
    justification: str | None,
    policy_version: int,
) -> str:
    """The digest of requests submitted before it covered the requester, break-glass and the
    request undone (those fields of such a request are checked against its audit event)."""
    body = {
        "action": action,
        "account": account,
        "params": json_safe(dict(params)),
        "justification": justification,
        "policy_version": policy_version,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def params_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request's parameters, unsalted: what the submitted
    events of requests before digest version 3 carry (`params_sha256`), and what their undo
    params were vouched for with. Only to check those; also BadInput for params that JSON
    cannot hold. Anything new commits with `salted_digest` instead: an unsalted hash of a
    private value lets whoever reads it test guesses of the value offline."""
    return hashlib.sha256(canonical_json(json_safe(dict(params)))).hexdigest()


def salted_digest(salt: str, of: str, values: Mapping[str, Any]) -> str:
    """The commitment an audit event carries to a request's `params` (`params_salted_sha256`)
    or to the `undo_params` stored at its execution (`undo_params_salted_sha256`), instead of
    the values, which can be personal data: `commitments.salted_sha256` of them with the
    request's salt. Whoever holds the request row (the values and the salt) can check it
    against the log; whoever holds the log alone cannot test a guess."""
    return commitments.salted_sha256(salt, of, json_safe(dict(values)))


@overload
def lock_request(session: Session, request_id: str) -> RequestRow: ...
@overload
def lock_request(session: Session, request_id: str, *, skip_locked: bool) -> RequestRow | None: ...
def lock_request(
    session: Session, request_id: str, *, skip_locked: bool = False
) -> RequestRow | None:
    """The request row, locked for this transaction (FOR UPDATE; SQLite holds the write lock).
    With `skip_locked`, None when another transaction holds it (PostgreSQL's SKIP LOCKED)."""
    query = (
        select(RequestRow)
        .where(RequestRow.id == request_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    row = session.scalar(query)
    if row is None:
        if skip_locked and session.get(RequestRow, request_id) is not None:
            return None
        raise NotFound(f"no request {request_id!r}")
    return row


def expect_state(row: RequestRow, *allowed: RequestState) -> RequestState:
    state = RequestState(row.state)
    if state not in allowed:
        wanted = " or ".join(s.value for s in allowed)
        raise Conflict(
            f"request {row.id} is {state.value}, not {wanted}",
            request_id=row.id,
            state=state.value,
        )
    return state


def move(
    services: Services,
    session: Session,
    row: RequestRow,
    to: RequestState,
    *,
    actor: str | None,
    kind: str,
    now: datetime,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Change the state and write its audit event, in the caller's transaction."""
    current = RequestState(row.state)
    if to not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(
            f"request {row.id} cannot go from {current.value} to {to.value}",
            request_id=row.id,
            state=current.value,
        )
    row.state = to.value
    row.updated_at = now
    if reason is not None:
        row.reason = reason
    if to.final:
        row.finished_at = now
    record(
        services,
        session,
        kind=kind,
        actor=actor,
        row=row,
        payload={"from": current.value, "to": to.value, "reason": reason, **(details or {})},
        now=now,
    )
    # Its requester hears of every decision on it, through the outbox in this transaction.
    if to in notify_hooks.TOLD_TO_REQUESTER:
        notify_hooks.request_moved(
            session, row, now, actor=actor, params=notified_params(services, session, row)
        )


def record(
    services: Services,
    session: Session,
    *,
    kind: str,
    actor: str | None,
    row: RequestRow | None,
    payload: Mapping[str, Any],
    now: datetime,
    account_ref: str | None = None,
) -> None:
    """Append one audit event in the caller's transaction (no event, no change). Values of
    the account's private attributes in the payload (an execution's summary, reconciliation's
    state) are redacted first (`redaction.event_payload`): the log is append-only and copied,
    and holds no private value."""
    account_ref = account_ref or (row.account_ref if row is not None else None)
    body = dict(json_safe(event_payload(services, account_ref, payload)))
    if row is not None:
        body.setdefault("action", row.action)
        body.setdefault("digest", row.digest)
    # With the transaction's other events when it groups them (`AuditLog.group`).
    services.audit.add(
        session,
        NewEvent(
            kind=kind,
            actor=actor,
            account_ref=account_ref,
            request_id=row.id if row is not None else None,
            payload=body,
            at=now,
        ),
    )
