"""`/v1/requests`: submit, list, show, review, cancel, undo and execute requests.

Each route parses its input, calls one lifecycle operation as the token's owner, and answers
the request as that person may see it (`operations.show_to`). Reads are need-to-know
(`foureyes.workflow.access`): a request is visible to its requester, to whoever took part in it
(reviewed, cancelled, executed it) or may act on it now (review it, cancel it while its delay
runs, post-review a break-glass), and to oversight staff. To anyone else it is 404, exactly as
an unknown id — on reads and on every action — and lists leave it out. Routes are plain `def`:
the operations block on the store, so FastAPI runs them in its thread pool. The submit, the
hottest, makes that one trip itself: the token's check, the submit and the answer's encoding
in one call (`api.auth.TokenFirst` keeps the answers of a route whose token check is a
dependency).

Carrying out. An approved *write* is carried out by the background worker within a few seconds
(or once its delay has run); its requester may `POST …/execute` to carry it out now. An approved
action whose answer is for its requester alone — a *read*, or any action that reveals private
data, such as `account.login_as` and its session token (`ActionSpec.for_requester_only`) — is
carried out only when its requester asks, with `POST …/execute`: the answer holds the data
(`data`) that one time, and foureyes never stores it, so it cannot be fetched again. The worker
never carries it out, nobody else may (403), and one its requester never asks for expires.

Retrying a submit. A submit (or an undo) sent with an `Idempotency-Key` header can be retried
safely (after a 503, a timeout, a dropped connection): a retry with the same key and body answers
the request the first call made (200 and `Idempotent-Replayed: true`, or the same 403 if the
policy denied it) and records nothing; the key with another body is 422
`idempotency-key-reused` (docs/idempotency.md).

An answer never says nothing changed when something did. `503 unavailable` means nothing
changed. Once a call has changed something (a request recorded, a review, a cancellation, an
execution claimed), or may have (a COMMIT whose answer was lost), a failure after that is `503
outcome-unknown` with the `request_id` and `outcome: "unknown"`: look the request up, or retry
a submit with the same key (`foureyes.workflow.outcome`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from foureyes.api.auth import ActorDep, BearerDep, TokenFirst, actor_of
from foureyes.api.cursors import decode_cursor, encode_cursor
from foureyes.api.schemas import (
    CancelBody,
    RequestBody,
    ReviewBody,
    UndoBody,
    problem_responses,
)
from foureyes.core.services import Actor, Services
from foureyes.model import RequestState
from foureyes.web.deps import ServicesDep, app_services
from foureyes.web.problems import IDEMPOTENT_REPLAYED
from foureyes.workflow import operations
from foureyes.workflow.idempotency import KEY_PATTERN, MAX_KEY
from foureyes.workflow.submit import Submission

# What FastAPI encodes a `dict[str, Any]` answer with; routes that build their Response
# themselves use it, so that their bytes are what the declared model's would be.
_VIEW: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])

router = APIRouter(
    prefix="/v1/requests", tags=["requests"], responses=problem_responses(401, 422, 503)
)

RequestId = Annotated[str, Path(min_length=1, max_length=100, description="The request's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY,
        pattern=KEY_PATTERN,
        description=(
            "Your key for this submit (1 to 200 printable ASCII characters, e.g. a UUID), so "
            "that it can be retried safely: a retry with the same key and the same body "
            "answers the request the first call made and records nothing; the same key with "
            "another body is 422 `idempotency-key-reused`. Keys are yours alone (another "
            "person's equal key is another key) and never expire. Send one with every call: "
            "after a 503 `outcome-unknown` it is the only safe way to try again."
        ),
    ),
]
_REPLAYED_HEADER = {
    IDEMPOTENT_REPLAYED: {
        "description": "`true`: this answers an earlier submit with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _submit_responses(*more: int) -> dict[int | str, dict[str, Any]]:
    """The submit's answers beyond 201: a replay's 200, and its 403 with the replay header."""
    problems = problem_responses(403, 404, *more)
    return {
        200: {
            "model": dict[str, Any],
            "description": (
                "A retry with the Idempotency-Key of an earlier submit and the same body: "
                "that request as it is now (`data` is null). Nothing was recorded."
            ),
            "headers": {k: {**v, "required": True} for k, v in _REPLAYED_HEADER.items()},
        },
        **problems,
        403: {
            **problems[403],
            "headers": {k: {**v, "required": False} for k, v in _REPLAYED_HEADER.items()},
        },
    }


def client_address(request: Request) -> str | None:
    """The caller's address, as the server saw it (recorded with the request)."""
    return request.client.host if request.client is not None else None


async def submit_request(
    body: RequestBody,
    request: Request,
    token: BearerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record the request and its decision and answer it (201). `pending` waits for reviews;
    what the policy allows at once is carried out at once (a read's `data` comes back here,
    once). A request the policy denies is recorded too and answered 403 with its `request_id`
    and `decision`.

    With `Idempotency-Key`, a retry of this call (same key, same body) records nothing and
    carries nothing out: it answers the request the first call made, as it is now, with 200
    and `Idempotent-Replayed: true` (`data` null: a read's data is returned once only), or,
    if the policy denied it, the same 403 problem as the first time, with that header.

    Once the request is recorded, a failure (carrying it out, reading it back) is 503
    `outcome-unknown` with its `request_id`, never a 503 that says nothing changed."""
    submission = dataclasses.replace(
        body.submission(client_address(request)), idempotency_key=idempotency_key
    )
    work = functools.partial(_submit, request, app_services(request), token, submission)
    return await run_in_threadpool(work)


# Registered as the decorator would, with the route class that keeps `ActorDep`'s answers.
router.add_api_route(
    "",
    submit_request,
    methods=["POST"],
    status_code=201,
    summary="Ask for one action on one account",
    response_model=dict[str, Any],
    responses=_submit_responses(),
    route_class_override=TokenFirst,
)


def _submit(request: Request, services: Services, token: str, submission: Submission) -> Response:
    """The caller (401 unless the token verifies), the submit, and its answer: one trip to
    the thread pool (a dependency checking the token, the route, and FastAPI validating the
    view it answered were three)."""
    actor = actor_of(request, services, token)
    submitted, outcome = operations.submit_run_or_replay(services, actor, submission)
    return _submitted_response(services, actor, submitted, outcome)


def _submitted_response(
    services: Services,
    actor: Actor,
    submitted: operations.Submitted,
    outcome: operations.ExecutionOutcome | None,
) -> Response:
    """The view of a request a submit (or an undo) recorded or replayed, with `data` once:
    201, or 200 and `Idempotent-Replayed: true` for a replay. Encoded here, in the route's
    thread, with what FastAPI encodes a `dict[str, Any]` answer with (the same bytes), and not
    validated again after the route (in another trip to the thread pool)."""
    view = operations.show_submitted(services, actor, submitted)
    view["data"] = outcome.data if outcome is not None else None
    response = Response(
        _VIEW.dump_json(view),
        status_code=200 if submitted.replayed else 201,
        media_type="application/json",
    )
    if submitted.replayed:
        response.headers[IDEMPOTENT_REPLAYED] = "true"
    return response


@router.get("", summary="Requests, newest first")
def list_requests(
    services: ServicesDep,
    actor: ActorDep,
    state: Annotated[RequestState | None, Query(description="Only requests in this state.")] = None,
    reviewable: Annotated[
        bool, Query(description="Only pending requests you may still review.")
    ] = False,
    mine: Annotated[bool, Query(description="Only your own requests.")] = False,
    account: Annotated[
        str | None, Query(max_length=300, description="Only requests on this account.")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="Only requests for this action.")
    ] = None,
    requester: Annotated[
        str | None, Query(max_length=100, description="Only requests by this staff id.")
    ] = None,
    tier: Annotated[
        str | None,
        Query(max_length=100, description="Only requests on accounts of this tier when asked."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    """The requests you may see: `{"items": [...], "next": cursor}`; `next` is null on the
    last page. Filters narrow what you may see; none widens it."""
    filters = operations.ListFilter(
        state=None if state is None else state.value,
        mine=mine,
        reviewable=reviewable,
        account=account,
        action=action,
        requester=requester,
        tier=tier,
        limit=limit,
        before=decode_cursor(cursor),
    )
    items, position = operations.list_requests(services, actor, filters)
    return {"items": items, "next": encode_cursor(position)}


@router.get("/{request_id}", summary="One request", responses=problem_responses(404))
def show_request(request_id: RequestId, services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """The request, its decision with what each factor still needs, reviews and timeline.
    404, as for an unknown id, for a request you may not see."""
    return operations.show_to(services, actor, request_id)


@router.post(
    "/{request_id}/reviews",
    summary="Approve or deny a request",
    responses=problem_responses(403, 404, 409, 429),
)
def review_request(
    request_id: RequestId, body: ReviewBody, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Bound to the `digest` you were shown (another digest is 409: reload the request). Where
    a rule asks for step-up, `step_up` carries your enrolled device key's signature over this
    review's challenge, or a security key's WebAuthn assertion (see `GET …/step-up`); after
    10 failed step-ups within 15 minutes yours are refused unread for a while (429, with
    `Retry-After`). The deciding approval carries the request out in the same call, as a
    submit does what the policy allows at once (not one whose answer is for its requester
    alone, nor one with a delay). Answers the updated request (`executed`, or why not; once
    your review is recorded, a failure after it is 503 `outcome-unknown`)."""
    return operations.review_and_show(services, actor, request_id, body.review_input())


@router.get(
    "/{request_id}/step-up",
    summary="WebAuthn options to confirm your review with a security key",
    responses=problem_responses(404, 409),
)
def step_up_options(
    request_id: RequestId,
    services: ServicesDep,
    actor: ActorDep,
    decision: Annotated[Literal["approve", "deny"], Query(description="Your verdict.")],
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions (JSON, base64url bytes) for `navigator.credentials.get()`
    or a CTAP client: your active security keys, user verification required, and the challenge
    of this review (the request's digest, you, and `decision`), computed here. Send the result as
    `step_up: {"method": "webauthn", "credential": <the PublicKeyCredential JSON>}` with the same
    decision. 409 when the request is not pending or you have no security key."""
    return operations.step_up_options(services, actor, request_id, decision)


@router.post(
    "/{request_id}/post-reviews",
    summary="Sign off (or object to) a break-glass execution",
    responses=problem_responses(403, 404, 409),
)
def post_review_request(
    request_id: RequestId, body: ReviewBody, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """A break-glass request executes at once and owes a post-review by eligible colleagues
    within the rule's window. Bound to the `digest` like a review; the requester cannot sign
    off their own. Answers the request (its `reviews` list the sign-offs)."""
    operations.post_review(services, actor, request_id, body.review_input())
    done = f"your post-review of request {request_id} was recorded"
    return operations.show_after(services, actor, request_id, done)


@router.post(
    "/{request_id}/cancel",
    summary="Cancel a request that has not started",
    responses=problem_responses(403, 404, 409, 413),
)
def cancel_request(
    request_id: RequestId,
    services: ServicesDep,
    actor: ActorDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> dict[str, Any]:
    """The requester may cancel their own pending, approved or scheduled request; while a
    delay runs anyone eligible to review it may too. Answers the updated request."""
    reason = body.reason if body is not None else ""
    operations.cancel(services, actor, request_id, reason)
    return operations.show_after(services, actor, request_id, f"request {request_id} was cancelled")


@router.post(
    "/{request_id}/undo",
    status_code=201,
    summary="Ask for the reverse of an executed request",
    response_model=dict[str, Any],
    responses=_submit_responses(409),
)
def undo_request(
    request_id: RequestId,
    body: UndoBody,
    services: ServicesDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new request for the reverse action, linked to this one (`reverts`) and decided by the
    same policy; once it executes, this one becomes `reverted`. Answers the new request (201),
    or 403 with its `request_id` if the policy denies it. Values foureyes fills in to restore
    (a changed email's previous address) are private: every view shows them redacted. 404, as
    for an unknown id, for a request you may not see: checked first, and nothing recorded.

    With `Idempotency-Key`, as a submit: a retry (same key, same justification and params)
    answers the undo the first call made with 200 and `Idempotent-Replayed: true`, and records
    nothing. Once the undo is recorded, a failure is 503 `outcome-unknown` with its
    `request_id`."""
    submitted, outcome = operations.undo_run_or_replay(
        services,
        actor,
        request_id,
        body.justification,
        body.params,
        idempotency_key=idempotency_key,
    )
    return _submitted_response(services, actor, submitted, outcome)


@router.post(
    "/{request_id}/execute",
    summary="Carry out an approved request now",
    responses=problem_responses(403, 404, 409),
)
def execute_request(
    request_id: RequestId, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Carry out an approved (or scheduled and due) request now and answer the updated request.

    A read, or an action that reveals private data (`account.login_as`: a session token), is
    carried out only for its requester (anyone else is 403), and its answer has the platform's
    data in `data` — this one time: foureyes does not keep it, and the request is then
    `executed`, so the data cannot be fetched again. For another write `data` is null (the
    worker would have carried it out within seconds anyway). A request that is not approved,
    or is scheduled for later, is 409. A database failure while it is carried out is 503
    `outcome-unknown` (it may have been carried out; never twice)."""
    outcome = operations.execute(services, request_id, actor=actor)
    done = (
        f"request {request_id} is being carried out by another process"
        if outcome is None
        else f"request {request_id} is now {outcome.state.value}"
    )
    view = operations.show_after(services, actor, request_id, done)
    view["data"] = None if outcome is None else outcome.data
    return view
