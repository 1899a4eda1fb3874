"""`/healthz`: for load balancers, without a token. (`/metrics`, for the operator's metrics
token only, is `foureyes.api.metrics`.)

It tells no more than whether foureyes can serve: 200 when the store answers and a policy is
loaded, else a 503 problem whose detail names no host, path or error text (those go to the
log), and whether the detectors ran and checkpoints were signed recently (raising
`detector_silence` or `checkpoint_stale` if not).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from foureyes import detect
from foureyes.api.schemas import problem_responses
from foureyes.errors import FoureyesError, Unavailable
from foureyes.web.deps import ServicesDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Whether foureyes can serve", responses=problem_responses(503))
def healthz(request: Request, services: ServicesDep) -> dict[str, Any]:
    """`{"status": "ok"}` when the store answers and a policy is in force; `detectors` and
    `checkpoints` say whether the detectors and the log's checkpoints are keeping up."""
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
    # Likewise for checkpoints: where no worker signs them (none runs, it lacks the key, the
    # witness refuses the log), the probe raises `checkpoint_stale`. One indexed query while
    # all is well. Still 200: a stale log is for people to look at, not a reason to stop serving.
    checkpoints = detect.check_checkpoints(services, request.app.state.settings.checkpoint_deadline)
    return {
        "status": "ok",
        "database": "ok",
        "policy_version": version,
        "detectors": "silent" if silence_alert is not None else "ok",
        "checkpoints": "stale" if checkpoints.stale else "ok",
    }
