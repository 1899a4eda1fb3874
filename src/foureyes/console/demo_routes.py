"""The demo's step-up for reviewers without a security key (`foureyes.core.demo`), mounted only
on a server started with `foureyes serve --demo` (`mount_console`; elsewhere the path is a 404
like any unknown one).

- `POST /console/demo/step-up` `{"request_id", "decision"}` → `{"method": "device-key",
  "key_id", "signature"}`: the signed-in person's demo key, held by the demo server, signs
  that review's challenge. `webauthn.js` puts it into the review form's `step_up` field, where
  a security key's assertion would go, when the reviewer ticks the clearly labelled demo box;
  the review is then verified as any device-key step-up is.

Needs the CSRF token (`X-CSRF-Token`) and a console session; answers errors as problem+json.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from foureyes.console.csrf import CsrfDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.errors import FoureyesError, NotFound
from foureyes.web.deps import ServicesDep
from foureyes.web.problems import problem
from foureyes.workflow import operations

router = APIRouter()

STEP_UP = "/console/demo/step-up"


class DemoStepUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    decision: Annotated[StrictStr, Field(pattern="^(approve|deny)$")]


@router.post(STEP_UP)
def demo_step_up(
    request: Request,
    body: Annotated[DemoStepUpBody, Body()],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
) -> Response:
    try:
        if services.demo is None:  # mounted only on a demo server: never answers elsewhere
            raise NotFound(f"no page {request.url.path}")
        signed = operations.demo_step_up(services, actor, body.request_id, body.decision)
    except FoureyesError as exc:
        return problem(exc.status, exc.slug, exc.message, extensions=exc.details)
    return JSONResponse(signed, headers={"Cache-Control": "no-store"})
