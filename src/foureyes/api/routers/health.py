"""`/healthz`: for load balancers, without a token. (`/metrics`, for the operator's metrics
token only, is `foureyes.api.metrics`.)

It tells no more than whether foureyes can serve: 200 when the store answers and a policy is
loaded, else a 503 problem whose detail names no host, path or error text (those go to the
log); a 503 `log-rolled-back` or `log-head-altered` when the audit log is not consistent with
its witness, its head was moved or rows lie outside its tree (`foureyes.core.logstate`:
nothing is submitted, reviewed or executed then), with the reason; and whether the detectors
run (`silent` on every probe while their heartbeat is older than the policy's gap,
`heartbeat-ahead` while it is dated in the future), read where the log says they did, and
checkpoints were signed recently (raising `detector_silence` or `checkpoint_stale` if not);
and whether the alerts table holds every alert the log says was raised, and nothing else
(`alerts`: `tampered` while an alert's row is deleted or re-pointed or a row was written in,
raising `alert_tampered`; `foureyes.core.alert_ledger`). Any of those four not ok makes the
status `degraded`, with the `reasons`.

`platforms` says whether each connected platform answers (`ok`, `unreachable`, `unknown`:
`foureyes.core.reachability`, probed in the background at most every 30 s, a check waiting at
most a second for it). An unreachable platform, or one whose probe has not answered (`unknown`:
foureyes just started, or the platform hangs), makes the status `degraded` but keeps the 200:
foureyes still serves (staff submit, review and read requests; an execution meanwhile fails or
waits as docs/reconciliation.md says), and a load balancer that took it out of service for a
platform's outage would hide even the requests waiting for that platform. Its name only, never
its address or the error (those go to the log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from foureyes import detect
from foureyes.api.schemas import problem_responses
from foureyes.core import alert_ledger, logstate
from foureyes.core.reachability import UNKNOWN, UNREACHABLE, Reachability
from foureyes.core.services import Services
from foureyes.errors import FoureyesError, Unavailable
from foureyes.web.deps import ServicesDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Whether foureyes can serve", responses=problem_responses(503))
def healthz(request: Request, services: ServicesDep) -> dict[str, Any]:
    """`{"status": "ok"}` when the store answers, a policy is in force and the audit log may be
    acted on; `detectors` and `checkpoints` say whether the detectors and the log's checkpoints
    are keeping up (`"status": "degraded"` and `reasons` when not)."""
    try:
        with services.database.transaction() as session:
            session.execute(text("SELECT 1"))
            version, _ = services.policy_in_force(session)
    except FoureyesError as exc:
        log.warning("health check failed: %s", exc.message)
        raise Unavailable(
            "foureyes cannot serve: the store or the policy is not available"
        ) from None
    # Checked afresh on every probe: a log rolled back or with a moved head takes this process
    # out of service (its submits and reviews answer the same problem).
    finding = logstate.check(services)
    if finding is not None:
        raise finding
    # A heartbeat check outside the worker, on every probe while it lasts: the detector
    # pipeline stopped (the worker died, someone switched it off), or its heartbeat is dated
    # in the future; the first probe to see it raises the `detector_silence` alert.
    silence = detect.check_silence(services)
    # Likewise for checkpoints: where no worker signs them (none runs, it lacks the key, the
    # witness refuses the log), the probe raises `checkpoint_stale`. One indexed query while
    # all is well. Still 200: a stale log is for people to look at, not a reason to stop serving.
    checkpoints = detect.check_checkpoints(services, request.app.state.settings.checkpoint_deadline)
    # The detectors' cursor where the log vouches for it (else they may have skipped events).
    moved = detect.check_cursor(services)
    # The alerts table against the log's `alert.raised` events: an alert whose row was deleted
    # or re-pointed, or a row no event vouches for, is a finding (and `alert_tampered`, once an
    # hour). The events appended since the last probe are read, and one aggregate over the
    # alerts rows (`foureyes.core.alert_ledger`).
    alerts_seen = _alerts(services)
    platforms = _reachability(request).report(services.connectors)
    unreachable = [name for name, status in platforms.items() if status == UNREACHABLE]
    # Not answered yet (just started, or its probe hangs): not known to be up, so not `ok`.
    unknown = [name for name, status in platforms.items() if status == UNKNOWN]
    reasons = [
        *([] if silence is None else [silence.reason]),
        *(f"platform {name} cannot be reached" for name in unreachable),
        *(f"platform {name} has not answered its probe yet" for name in unknown),
        *([] if moved is None else [moved]),
        *([] if not checkpoints.stale else ["events wait too long for a signed checkpoint"]),
        *([] if alerts_seen is None else [alerts_seen]),
    ]
    body: dict[str, Any] = {
        "status": "degraded" if reasons else "ok",
        "database": "ok",
        "policy_version": version,
        "detectors": "cursor-moved"
        if moved is not None
        else ("ok" if silence is None else silence.status),
        "checkpoints": "stale" if checkpoints.stale else "ok",
        "alerts": "ok" if alerts_seen is None else "tampered",
        "platforms": platforms,
    }
    if reasons:
        body["reasons"] = reasons
    return body


def _alerts(services: Services) -> str | None:
    """What is wrong with the alerts table (None: nothing)."""
    return alert_ledger.look(services).reason()


def _reachability(request: Request) -> Reachability:
    """The app's one `Reachability` (made with the app; made here for an app built without)."""
    found = getattr(request.app.state, "reachability", None)
    if not isinstance(found, Reachability):
        found = request.app.state.reachability = Reachability()
    return found
