"""A request is undone once, and an undo never reverses a later change (attack F3): the guards
of a single request's undo (`undo.undo_or_replay`, a request with `reverts_id`), kept apart
from `undo` because `submit` calls them and `undo` imports `submit`.

- Recording (`check_recordable`, in the undo's submit transaction, the original's row locked:
  racing undos of one request are decided one after the other): the original must still be
  `executed`, and no other undo of it may be open (pending, approved, scheduled, executing).
  An open undo that is not what the log recorded (written in by a DBA) does not count: `undo`
  refuses it first (`refuse_unlogged_undos`: cancelled, `request_tampered`).
  The open undo is named only to a caller who may see it (`access.may_see`).
- Execution (`problem`, before the claim; `held`, again under the account's lock on a platform
  kept in foureyes' database: `batch_undo_guard.unless_superseded`): the original must still
  be `executed`, and no change on its account (a non-read execution, read from the log by seq:
  `batch_undo_guard.Later`) may have committed after the original's execution.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.core.events import lock_request
from foureyes.core.services import Actor, Services
from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow
from foureyes.store.tree import in_tree
from foureyes.workflow import access, batch_undo_guard, integrity
from foureyes.workflow.batch_undo_guard import (
    OPEN_REQUEST,
    REQUEST_ENDS,
    Held,
    Judge,
    Later,
    in_flight,
)

OPEN_UNDO = (
    "another undo of request {original} is not yet ended: it must end (be declined, "
    "cancelled or carried out) before the request can be undone again"
)


def check_recordable(
    services: Services,
    session: Session,
    actor: Actor,
    original_id: str | None,
    item_id: str | None = None,
) -> None:
    """In an undo's submit transaction (re-runnable: it only reads and locks); nothing for a
    request that undoes nothing. An undo of a request (`original_id`): lock the original and
    refuse (Conflict) when it is no longer `executed` or another undo of it is open; that undo
    is named only if `actor` may see it. An undo item split out of a batch undo (`item_id`):
    `batch_undo_guard.check_split_recordable`."""
    if item_id is not None:
        batch_undo_guard.check_split_recordable(session, item_id)
    if original_id is None:
        return
    original = lock_request(session, original_id)
    if original.state != RequestState.EXECUTED.value:
        raise Conflict(
            f"only an executed request can be undone; this one is {original.state}",
            request_id=original_id,
        )
    other = next((row for row in _open_undos(session, original_id) if _logged(session, row)), None)
    if other is None:
        return
    if access.may_see(services, session, other, actor):
        raise Conflict(
            f"request {other.id} already undoes request {original_id} and is not yet ended: "
            "decline or cancel it first",
            request_id=other.id,
        )
    raise Conflict(OPEN_UNDO.format(original=original_id), request_id=original_id)


def refuse_unlogged_undos(
    services: Services, session: Session, original_id: str, actor: str | None
) -> None:
    """Refuse (`integrity.refuse`: cancelled, the high `request_tampered` alert), in the
    caller's transaction, every open undo of `original_id` not yet executing whose row is not
    what the log recorded (a row written in behind foureyes' back, with no `request.submitted`
    event: attack F3, session h2, blocked the honest undo with no alert). An executing one is
    the worker's to settle (its claim may be calling the platform): `check_recordable` only
    does not let it block."""
    now = services.clock()
    for row in _open_undos(session, original_id):
        if row.state == RequestState.EXECUTING.value:
            continue
        locked = lock_request(session, row.id)
        found = integrity.trail(session, locked.id)
        altered = found.problem(locked)
        if altered is not None and locked.state in OPEN_REQUEST:
            integrity.refuse(
                services, session, locked, found, altered, now, actor=actor, during="undo"
            )


def _open_undos(session: Session, original_id: str) -> list[RequestRow]:
    """The undos of `original_id` not yet ended, as the store has them."""
    return list(
        session.scalars(
            select(RequestRow)
            .where(RequestRow.reverts_id == original_id, RequestRow.state.in_(OPEN_REQUEST))
            .order_by(RequestRow.id)
        )
    )


def _logged(session: Session, row: RequestRow) -> bool:
    """Whether `row` is what the log recorded (`integrity.Trail.problem`): one that is not
    never blocks another undo (nothing runs it: review, execution and the worker refuse it)."""
    return integrity.trail(session, row.id).problem(row) is None


def problem(services: Services, session: Session, request: RequestRow) -> str | None:
    """Why the undo `request` (with `reverts_id`) may not be carried out now (None: it may, or
    it undoes no request), under its lock, before its claim: `held`, and on any platform no
    other execution on the account in flight (`batch_undo_guard.in_flight`)."""
    if request.reverts_id is None:
        return None
    found = held(services, session, request)
    if found is not None and found.tampered:
        # The original's own `request_tampered` alert, when it is the original that differs
        # from the log (a later change's row that does is named in the reason only).
        original = lock_request(session, request.reverts_id)
        trail = integrity.trail(session, original.id)
        altered = trail.problem(original)
        if altered is not None:
            now = services.clock()
            integrity.refuse(
                services, session, original, trail, altered, now, actor=None, during="undo"
            )
    if found is None:
        found = in_flight(services, session, request.account_ref, request=request.id)
    return None if found is None else f"not undone: {found.why}"


def judge(services: Services, session: Session, request: RequestRow) -> Judge | None:
    """`held` for the undo `request`, to call under the account's lock once its write was made
    (`batch_undo_guard.unless_superseded`); None when it undoes no request."""
    if request.reverts_id is None:
        return None
    return lambda: held(services, session, request)


def held(services: Services, session: Session, request: RequestRow) -> Held | None:
    """Held when the request the undo reverts (locked here) is no longer `executed`, or a
    change on its account was carried out after its execution (the log's order: `Later`);
    None: the undo may go ahead. Fails closed when the original's execution is not in the log
    exactly once."""
    assert request.reverts_id is not None
    original = lock_request(session, request.reverts_id)  # read afresh (populate_existing)
    # Its row decides what follows (its state, the account looked at, the params restored):
    # first it must be what the log says it is (a DBA who re-targeted it made the check look
    # at an account with no later change: attack F2; one who set it `reverted` cancelled the
    # undo with a false reason and no alert: G4), and name the undo's own account. Held as
    # tampered: `problem` raises the original's `request_tampered` alert.
    altered = integrity.trail(session, original.id).problem(original)
    if altered is None and original.account_ref != request.account_ref:
        altered = f"it names {original.account_ref}, its undo {request.account_ref}"
    if altered is not None:
        return Held(
            f"the request it undoes ({original.id}) is not what was submitted: {altered}",
            tampered=True,
        )
    if original.state != RequestState.EXECUTED.value:
        return Held(
            f"the request it undoes ({original.id}) is {original.state}, not executed: "
            "it was undone already"
        )
    typed = _typed_over_recorded(request, original)
    if typed:
        # Recorded before typed values under these names were refused (`undo._reverse`), or
        # by a foureyes that let them be: shown redacted like the recorded ones (G5).
        return Held(
            f"its {', '.join(typed)} differ from what foureyes recorded to restore; "
            "a value other than the recorded one is asked for on its own"
        )
    seq = _executed_at(session, original)
    if seq is None:
        return Held(
            f"foureyes cannot find the execution of the request it undoes ({original.id}) "
            "in the audit log exactly once"
        )
    found = Later(services, session).held(original.account_ref, seq)
    if found is None:
        return None
    # `Later` speaks of an item; here the undo reverses a request.
    return Held(found.why.replace("the item it undoes", "the request it undoes"), found.tampered)


def _typed_over_recorded(request: RequestRow, original: RequestRow) -> list[str]:
    """The names of the undo's params whose values are not the ones foureyes recorded (the
    original's undo params, verified against the log by the caller) under the same name."""
    recorded = original.undo_params or {}
    return sorted(
        name
        for name, value in request.params.items()
        if name in recorded and value != recorded[name]
    )


def _executed_at(session: Session, original: RequestRow) -> int | None:
    """The seq of the one event that says the original ended `executed` (its execution, or
    its reconciliation), judged by the body the tree covers; None when not exactly one."""
    found: list[int] = []
    for seq, raw in session.execute(
        select(EventRow.seq, EventRow.body)
        .where(
            EventRow.request_id == original.id,
            EventRow.kind.in_(REQUEST_ENDS),
            in_tree(),
        )
        .order_by(EventRow.seq)
    ):
        try:
            body = json.loads(stored_bytes(raw))
        except ValueError:
            return None
        if (
            isinstance(body, dict)
            and body.get("kind") in REQUEST_ENDS
            and body.get("request") == original.id
            and body.get("to") == RequestState.EXECUTED.value
        ):
            found.append(int(seq))
    return found[0] if len(found) == 1 else None
