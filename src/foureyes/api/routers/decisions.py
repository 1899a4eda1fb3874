"""`/v1/decisions`: the dry run. What the policy in force would decide about a request, and
why, for the caller as requester; nothing is recorded and nothing changes.

The hottest route of the API (admin tools ask it before every action), so it is written for
cost: the token check and the dry run run in one thread-pool call (FastAPI would spend a
thread hop on each), the token read in the dry run's read-only transaction, at most
CPU_BOUND_DRY_RUNS at once per process when the platform is local, and the answer is encoded
once, without validating it against a response model. What it checks and answers is
what any other route does: the token is read afresh from the store on every call."""

from __future__ import annotations

import functools
import json
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from foureyes.api.auth import BearerDep, ServicesDep, actor_of
from foureyes.api.routers.requests import client_address
from foureyes.api.schemas import RequestBody, problem_responses
from foureyes.workflow import operations
from foureyes.workflow.services import Services
from foureyes.workflow.submit import Submission

# A dry run on a platform kept in foureyes' database is CPU work from end to end (no wait
# but the local store): more of them in threads at once than this only queue on the GIL and
# starve the event loop, which was the p99 (120 ms at 16 connections, 17-38 ms with 2). A dry
# run on another platform waits on it, so it takes the shared thread pool instead.
CPU_BOUND_DRY_RUNS = 2

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
async def dry_run(
    body: RequestBody, request: Request, services: ServicesDep, token: BearerDep
) -> Response:
    """Takes the same body as `POST /v1/requests` and answers the decision alone: `outcome`
    (`allowed`, `pending` or `denied`), the policy version, the matching rules, the factors
    (with nobody's approval yet), `min_people`, the combined options and every reason. Bad
    input (an unknown action or account, params failing the schema) is a problem, as it would
    be for the request itself."""
    submission = body.submission(client_address(request))
    work = functools.partial(_decide, request, services, token, submission)
    if services.stored_here(submission.account):
        view = await to_thread.run_sync(work, limiter=_cpu_limiter(request))
    else:
        view = await run_in_threadpool(work)
    content = json.dumps(view, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(content.encode("utf-8"), media_type="application/json")


def _cpu_limiter(request: Request) -> CapacityLimiter:
    """The app's limit on dry runs in threads at once (made on first use, on the loop)."""
    state = request.app.state
    limiter: CapacityLimiter | None = getattr(state, "dry_run_limiter", None)
    if limiter is None:
        limiter = state.dry_run_limiter = CapacityLimiter(CPU_BOUND_DRY_RUNS)
    return limiter


def _decide(
    request: Request, services: Services, token: str, submission: Submission
) -> dict[str, Any]:
    """The caller (401 unless the token verifies), then the decision: the token, the pins
    and the policy from one snapshot (see `operations.dry_run`)."""
    decision = operations.dry_run(
        services, functools.partial(actor_of, request, services, token), submission
    )
    view = decision.to_dict()
    view["factors"] = [
        {**factor, "approved_by": [], "missing": factor["approvals"]} for factor in view["factors"]
    ]
    return view
