"""`/v1/decisions`: the dry run. What the policy in force would decide about a request, and
why, for the caller as requester; nothing is recorded and nothing changes.

The hottest route of the API (admin tools ask it before every action), so it is written for
cost. With a local token (`fey_…`) the dry run runs on the event loop (`workflow.dry_run`):
everything it reads from the store in one statement, awaited on PostgreSQL, then the check and
the decision. With an identity provider's token, the token check and the dry run run in one
thread-pool call (`submit.dry_run`). Either way the answer is encoded once, without validating
it against a response model. What it checks and answers is what any other route does: the
token is read afresh from the store on every call."""

from __future__ import annotations

import functools
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from foureyes.api.auth import BearerDep, actor_of
from foureyes.api.routers.requests import client_address
from foureyes.api.schemas import RequestBody, problem_responses
from foureyes.auth.tokens import TOKEN_PREFIX
from foureyes.core.services import Services
from foureyes.policy.decision import Decision
from foureyes.store.dry_run_reads import DryRunReader
from foureyes.web.deps import app_services
from foureyes.workflow import operations
from foureyes.workflow.dry_run import dry_run_for_token
from foureyes.workflow.submit import Submission

router = APIRouter(
    prefix="/v1/decisions",
    tags=["decisions"],
    responses=problem_responses(401, 404, 422, 503),
)


@router.post(
    "",
    summary="What would happen, and why (changes nothing)",
    response_model=dict[str, Any],
)
async def dry_run(body: RequestBody, request: Request, token: BearerDep) -> Response:
    """Takes the same body as `POST /v1/requests` and answers the decision a submit of it
    would get now: `outcome` (`allowed`, `pending` or `denied`), the policy version, the
    matching rules, the factors (with nobody's approval yet), `min_people`, the combined
    options and every reason. Quotas are counted as the submit counts them (not used): over
    one is `denied`, naming it. Bad input (an unknown action or account; for someone the
    policy lets ask, params failing the schema or a justification that does not fit) is a
    problem, as it would be for the request itself; someone the policy denies is answered
    `denied` without their params being looked at. A body without a justification is answered
    as if a fitting one were given (`options` say what a submit needs). A denial is recorded
    as evidence (a `decision.denied` audit event, rate-limited per person)."""
    services = app_services(request)
    submission = body.submission(client_address(request))
    if token.startswith(f"{TOKEN_PREFIX}_"):
        reader: DryRunReader = request.app.state.dry_run_reader
        decision = await dry_run_for_token(services, reader, token, submission)
        view = _view(decision)
    else:
        work = functools.partial(_decide, request, services, token, submission)
        view = await run_in_threadpool(work)
    content = json.dumps(view, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(content.encode("utf-8"), media_type="application/json")


def _decide(
    request: Request, services: Services, token: str, submission: Submission
) -> dict[str, Any]:
    """The caller (401 unless the token verifies), then the decision: the token, the pins
    and the policy from one snapshot (see `operations.dry_run`)."""
    decision = operations.dry_run(
        services, functools.partial(actor_of, request, services, token), submission
    )
    return _view(decision)


def _view(decision: Decision) -> dict[str, Any]:
    view = decision.to_dict()
    view["factors"] = [
        {**factor, "approved_by": [], "missing": factor["approvals"]} for factor in view["factors"]
    ]
    return view
