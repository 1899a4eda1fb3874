"""`/v1/batches`: one action over a manifest of up to 10,000 accounts, under one quorum.

Each route parses its input, calls one batch operation (`foureyes.workflow.batch_*`) as the
token's owner and answers the batch as that person may see it (need-to-know, as for requests:
to anyone else a batch is 404, as an unknown id).

A manifest with bad lines (malformed, an unknown account, the same account twice under any of
its names, over the limit) is 422 `bad-manifest` with `errors`: one `{"line", "entry",
"error"}` per bad line; nothing is recorded. An approved batch is carried out by the worker
item by item; its progress is in `GET /v1/batches/{id}` (`progress`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from foureyes.api.auth import ActorDep
from foureyes.api.cursors import decode_cursor, encode_cursor
from foureyes.api.routers.requests import IdempotencyKey
from foureyes.api.schemas import StepUpAssertion, WebAuthnStepUp, problem_responses
from foureyes.model import ReviewDecision
from foureyes.web.deps import ServicesDep
from foureyes.web.problems import IDEMPOTENT_REPLAYED
from foureyes.workflow import (
    batch_cancel,
    batch_execute,
    batch_idempotency,
    batch_undo,
    batch_views,
)
from foureyes.workflow.batch_manifest import MAX_ITEMS
from foureyes.workflow.batch_review import MAX_COMMENT, BatchReviewInput, review_batch
from foureyes.workflow.batch_submit import BatchSubmission
from foureyes.workflow.decide import MAX_JUSTIFICATION

# A manifest of MAX_ITEMS references of up to 300 characters, as JSON or CSV.
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024

router = APIRouter(
    prefix="/v1/batches", tags=["batches"], responses=problem_responses(401, 404, 422, 503)
)
_STRICT = ConfigDict(extra="forbid", frozen=True)
BatchId = Annotated[str, Path(min_length=1, max_length=100, description="The batch's id.")]
Justification = Annotated[StrictStr | None, Field(max_length=MAX_JUSTIFICATION)]


class BatchBody(BaseModel):
    """`POST /v1/batches`: the manifest as `accounts` (a list of references) or as `csv`
    (text: one reference per line, an optional `account` header)."""

    model_config = _STRICT

    action: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    # Longer lists are let through to be refused line by line (the limit's own error).
    accounts: Annotated[list[Any] | None, Field(max_length=2 * MAX_ITEMS)] = None
    csv: Annotated[StrictStr | None, Field(max_length=MAX_BATCH_BODY_BYTES)] = None
    params: dict[str, Any] = Field(default_factory=dict)
    justification: Justification = None


class BatchReviewBody(BaseModel):
    """`POST /v1/batches/{id}/reviews`: approve or decline the manifest whose digest (the
    Merkle root) the reviewer was shown."""

    model_config = _STRICT

    decision: Literal["approve", "decline", "deny"]
    digest: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    comment: Annotated[StrictStr, Field(max_length=MAX_COMMENT)] = ""
    step_up: StepUpAssertion | WebAuthnStepUp | None = None


class BatchUndoBody(BaseModel):
    """`POST /v1/batches/{id}/undo`: reverse the whole batch, or the items at `positions`."""

    model_config = _STRICT

    positions: Annotated[list[int] | None, Field(max_length=MAX_ITEMS)] = None
    justification: Justification = None


class BatchCancelBody(BaseModel):
    """`POST /v1/batches/{id}/cancel`: why (optional)."""

    model_config = _STRICT

    reason: Annotated[StrictStr, Field(max_length=batch_cancel.MAX_REASON)] = ""


# A retry with the Idempotency-Key of an earlier call and the same body.
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": dict[str, Any],
        "description": "A retry with the Idempotency-Key of an earlier call and the same "
        "body: that batch as it is now. Nothing was recorded.",
        "headers": {
            IDEMPOTENT_REPLAYED: {
                "description": "`true`: this answers an earlier call with the same key.",
                "required": True,
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    }
}


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


@router.post(
    "",
    status_code=201,
    summary="Ask for one action on many accounts",
    responses={**problem_responses(403, 429), **_REPLAYED},
)
def submit(
    body: BatchBody,
    request: Request,
    response: Response,
    services: ServicesDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Decide every account on its own and record the batch (201): included items wait for
    the batch's approvals; `denied` lists the accounts left out, with reasons; `split_out` the
    ones that became their own requests (`split_requests`). A bad manifest is 422
    `bad-manifest` with one error per line, a batch over a quota 403 `over-quota`, an action no
    batch rule names 403 `batch-refused`: nothing recorded.

    With `Idempotency-Key`, as a request's submit: a retry (same key, same body) records
    nothing and answers the batch the first call made, 200 with `Idempotent-Replayed: true`;
    the key with another body is 422 `idempotency-key-reused`. A line naming no account counts
    toward your account look-up limit: past it the submit is 429, nothing recorded."""
    batch_id, replayed = batch_idempotency.submit_or_replay(
        services,
        actor,
        BatchSubmission(
            action=body.action,
            accounts=body.accounts,
            csv=body.csv,
            params=dict(body.params),
            justification=body.justification,
            client=_client(request),
            idempotency_key=idempotency_key,
        ),
    )
    _replayed(response, replayed)
    return batch_views.show(services, actor, batch_id)


def _replayed(response: Response, replayed: bool) -> None:
    if replayed:
        response.status_code = 200
        response.headers[IDEMPOTENT_REPLAYED] = "true"


@router.get("", summary="Batches, newest first")
def list_batches(
    services: ServicesDep,
    actor: ActorDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    reviewable: Annotated[bool, Query(description="Only batches you may still review.")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    """The batches you may see: `{"items": [...], "next": cursor}`, `next` null on the last
    page; the same cursors as `GET /v1/requests` (a forged one is 422 `bad-input`)."""
    items, position = batch_views.page_batches(
        services,
        actor,
        state=state,
        reviewable=reviewable,
        limit=limit,
        before=decode_cursor(cursor),
    )
    return {"items": items, "next": encode_cursor(position)}


@router.get("/{batch_id}", summary="One batch, its plan, reviews, progress and items")
def show(batch_id: BatchId, services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return batch_views.show(services, actor, batch_id)


@router.post(
    "/{batch_id}/reviews",
    summary="Approve or decline a batch",
    responses=problem_responses(403, 409),
)
def review(
    batch_id: BatchId, body: BatchReviewBody, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Bound to `digest`: another digest is 409. The requester may not review (403); a second
    review by the same person is 409."""
    decision = ReviewDecision.APPROVE if body.decision == "approve" else ReviewDecision.DENY
    review_batch(
        services,
        actor,
        batch_id,
        BatchReviewInput(
            decision=decision,
            digest=body.digest,
            comment=body.comment,
            step_up=None if body.step_up is None else body.step_up.model_dump(exclude_none=True),
        ),
    )
    return batch_views.show(services, actor, batch_id, items=False)


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch before it is carried out",
    responses=problem_responses(403, 409),
)
def cancel(
    batch_id: BatchId, body: BatchCancelBody, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """The requester may withdraw a pending or approved batch; while its delay runs, anyone
    eligible to approve it may cancel it too (403 otherwise). Executing or ended: 409."""
    batch_cancel.cancel_batch(services, actor, batch_id, body.reason)
    return batch_views.show(services, actor, batch_id, items=False)


@router.post(
    "/{batch_id}/execute",
    summary="Carry out an approved batch now",
    responses=problem_responses(409),
)
def execute(batch_id: BatchId, services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """What the worker does, now: every item not yet carried out; the batch as it is after.
    A batch that is not approved, or whose delay is not over, is 409 saying which."""
    batch_views.show(services, actor, batch_id, items=False)  # 404 for whoever may not see it
    batch_execute.execute_now(services, batch_id, worker=f"api:{actor.id}")
    return batch_views.show(services, actor, batch_id, items=False)


@router.get("/{batch_id}/proofs/{position}", summary="Proof that an item is in the manifest")
def prove(
    batch_id: BatchId,
    position: Annotated[int, Path(ge=0, lt=MAX_ITEMS)],
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of the item at `position` in the tree whose root is the
    batch's digest (`leaf_hash` = SHA-256(0x00 ‖ item digest)), verifiable with any RFC 9162
    verifier (`foureyes audit` uses the same code)."""
    return batch_views.prove(services, actor, batch_id, position)


@router.post(
    "/{batch_id}/undo",
    status_code=201,
    summary="Reverse a batch, or some of its items",
    responses={**problem_responses(403, 409), **_REPLAYED},
)
def undo(
    batch_id: BatchId,
    body: BatchUndoBody,
    response: Response,
    services: ServicesDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """One reverse batch (the action that undoes this one) over the executed items chosen,
    decided by the policy like any batch. With `Idempotency-Key`, a retry (same key, same
    positions and justification) answers the reverse batch the first call made (200,
    `Idempotent-Replayed: true`). Without `positions`, items another undo not yet ended
    carries are left out and listed (`left_out`: position, account, `undone_by`)."""
    undone = batch_undo.undo_batch_or_replay(
        services,
        actor,
        batch_id,
        positions=body.positions,
        justification=body.justification,
        idempotency_key=idempotency_key,
    )
    _replayed(response, undone.replayed)
    view = batch_views.show(services, actor, undone.batch_id)
    # A whole-batch undo leaves out the items another undo carries already: it says which.
    return {**view, "left_out": undone.left_out} if undone.left_out else view
