"""`/v1/decisions`: the dry run. What the policy in force would decide about a request, and
why, for the caller as requester; nothing is recorded and nothing changes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from foureyes.api.auth import ActorDep, ServicesDep
from foureyes.api.routers.requests import client_address
from foureyes.api.schemas import RequestBody, problem_responses
from foureyes.workflow import operations

router = APIRouter(
    prefix="/v1/decisions",
    tags=["decisions"],
    responses=problem_responses(401, 404, 422, 503),
)


@router.post("", summary="What would happen, and why (changes nothing)")
def dry_run(
    body: RequestBody, request: Request, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Takes the same body as `POST /v1/requests` and answers the decision alone: `outcome`
    (`allowed`, `pending` or `denied`), the policy version, the matching rules, the factors
    (with nobody's approval yet), `min_people`, the combined options and every reason. Bad
    input (an unknown action or account, params failing the schema) is a problem, as it would
    be for the request itself."""
    decision = operations.dry_run(services, actor, body.submission(client_address(request)))
    view = decision.to_dict()
    view["factors"] = [
        {**factor, "approved_by": [], "missing": factor["approvals"]} for factor in view["factors"]
    ]
    return view
