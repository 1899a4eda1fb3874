"""`/healthz` and `/metrics`: for load balancers and Prometheus, without a token.

Neither tells more than whether foureyes can serve and how busy it is: `/healthz` answers 200
when the store answers and a policy is loaded, else a 503 problem whose detail names no host,
path or error text (those go to the log); `/metrics` is the Prometheus text format.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from foureyes import detect
from foureyes.api.auth import ServicesDep
from foureyes.api.metrics import CONTENT_TYPE, Metrics
from foureyes.api.schemas import problem_responses
from foureyes.errors import FoureyesError, Unavailable

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Whether foureyes can serve", responses=problem_responses(503))
def healthz(services: ServicesDep) -> dict[str, Any]:
    """`{"status": "ok"}` when the store answers and a policy is in force."""
    try:
        with services.database.transaction() as session:
            session.execute(text("SELECT 1"))
            version, _ = services.policy_in_force(session)
    except FoureyesError as exc:
        log.warning("health check failed: %s", exc.message)
        raise Unavailable(
            "foureyes cannot serve: the store or the policy is not available"
        ) from None
    # A heartbeat check outside the worker: if the detector pipeline stopped (the worker died,
    # someone switched it off), the next health probe raises the `detector_silence` alert.
    silence_alert = detect.check_silence(services)
    return {
        "status": "ok",
        "database": "ok",
        "policy_version": version,
        "detectors": "silent" if silence_alert is not None else "ok",
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
def metrics(request: Request) -> Response:
    """HTTP traffic by route, the worker's passes, requests by state, the log's size."""
    registry: Metrics = request.app.state.metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)
