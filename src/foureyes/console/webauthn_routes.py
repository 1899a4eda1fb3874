"""Console routes for security keys and passkeys (WebAuthn): the Security keys page (list,
enrol, revoke; the person's device keys are listed and revoked there too) and the JSON
endpoints `webauthn.js` calls.

- `POST /console/webauthn/registration/options` → creation options for a new key of the
  signed-in person; the pending registration (challenge, person, expiry) is kept on the server
  under the console session (`foureyes.auth.registrations`), never in the browser.
- `POST /console/webauthn/registration/proof-options` `{"name", "credential"}` → request options
  for one of the person's security keys that count now to vouch for the new one (409 if they
  have none); the pending registration stays.
- `POST /console/webauthn/registration` `{"name", "credential", "proof"?}` → the pending
  registration is used up first, whatever the outcome (one response per challenge); with a proof
  (`{"method": "webauthn", "credential": <assertion>}`), the key is stored and counts after the
  cool-down (201); without one, security is asked to approve it (202, with the request id):
  the signed-in session alone never adds a key that counts (`foureyes.workflow.enrolment`).
- `POST /console/webauthn/assertion/options` `{"request_id", "decision"}` → request options for
  confirming that review; the server computes the challenge from the request it holds.

Every POST needs the CSRF token (`X-CSRF-Token` from the page's meta tag, or the form field).
The JSON endpoints answer errors as problem+json (the page shows `detail`); the page routes as
the console's HTML error pages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from foureyes.auth import webauthn
from foureyes.console.csrf import CsrfDep
from foureyes.console.sessions import ConsoleActorDep, ConsoleSessionDep
from foureyes.console.templating import render
from foureyes.errors import FoureyesError
from foureyes.web.deps import ServicesDep
from foureyes.web.problems import problem
from foureyes.workflow import operations

router = APIRouter()

PAGE = "/console/security-keys"
KeyId = Annotated[str, Path(min_length=1, max_length=32, pattern="^[0-9a-f]+$")]
_STRICT = ConfigDict(extra="forbid", frozen=True)


class ProofOptionsBody(BaseModel):
    model_config = _STRICT

    name: Annotated[StrictStr, Field(min_length=1, max_length=webauthn.MAX_NAME)]
    credential: dict[str, Any]


class RegistrationBody(ProofOptionsBody):
    proof: dict[str, Any] | None = None


class AssertionOptionsBody(BaseModel):
    model_config = _STRICT

    request_id: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    decision: Annotated[StrictStr, Field(pattern="^(approve|deny)$")]


def _problem(exc: FoureyesError) -> Response:
    # With its details, as the API answers: an outcome-unknown names the request it recorded,
    # a throttle's 429 when to try again.
    retry = exc.details.get("retry_after")
    headers = {"Retry-After": str(retry)} if isinstance(retry, int) else None
    return problem(exc.status, exc.slug, exc.message, extensions=exc.details, headers=headers)


@router.get(PAGE)
def security_keys(
    request: Request, services: ServicesDep, actor: ConsoleActorDep, done: str = ""
) -> Response:
    """The signed-in person's keys (security keys and device keys), a form to enrol a security
    key, and a button to revoke each."""
    notices = {
        "enrolled": "Security key added. It counts for approvals once its cool-down is over.",
        "revoked": (
            "Key revoked. Approvals you confirmed with it no longer count, unless already "
            "carried out."
        ),
    }
    rp = webauthn.relying_party(services)
    host = request.url.hostname or ""
    # A browser refuses keys for an RP ID the page is not on (e.g. the demo opened at
    # 127.0.0.1 instead of localhost): say where to go instead of letting the key fail.
    elsewhere = host != rp.id and not host.endswith("." + rp.id)
    return render(
        request,
        "security_keys.html",
        {
            "keys": operations.security_keys(services, actor.id),
            "now": services.clock(),
            "notice": notices.get(done),
            "rp_id": rp.id,
            "go_to": rp.origins[0] + PAGE if elsewhere else None,
        },
    )


@router.post(PAGE + "/{key_id}/revoke")
def revoke_key(
    key_id: KeyId, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep
) -> Response:
    operations.revoke_security_key(services, actor, key_id)
    return RedirectResponse(PAGE + "?done=revoked", status_code=303)


@router.post("/console/webauthn/registration/options")
def registration_options(
    services: ServicesDep, signed_in: ConsoleSessionDep, _csrf: CsrfDep
) -> Response:
    try:
        options = operations.start_security_key_enrolment(
            services, signed_in.actor, signed_in.session_id
        )
    except FoureyesError as exc:
        return _problem(exc)
    return JSONResponse(options, headers={"Cache-Control": "no-store"})


@router.post("/console/webauthn/registration/proof-options")
def proof_options(
    body: Annotated[ProofOptionsBody, Body()],
    services: ServicesDep,
    signed_in: ConsoleSessionDep,
    _csrf: CsrfDep,
) -> Response:
    try:
        options = operations.console_proof_options(
            services,
            signed_in.actor,
            signed_in.session_id,
            name=body.name,
            credential=body.credential,
        )
    except FoureyesError as exc:
        return _problem(exc)
    return JSONResponse(options, headers={"Cache-Control": "no-store"})


@router.post("/console/webauthn/registration")
def register(
    body: Annotated[RegistrationBody, Body()],
    services: ServicesDep,
    signed_in: ConsoleSessionDep,
    _csrf: CsrfDep,
) -> Response:
    try:
        done = operations.enrol_console_key(
            services,
            signed_in.actor,
            signed_in.session_id,
            name=body.name,
            credential=body.credential,
            proof=body.proof,
        )
    except FoureyesError as exc:
        return _problem(exc)
    if done.request_id is not None:
        return JSONResponse(
            {
                "key_id": done.key_id,
                "request_id": done.request_id,
                "next": f"/console/requests/{done.request_id}",
            },
            status_code=202,
        )
    assert done.counts_from is not None
    return JSONResponse(
        {
            "key_id": done.key_id,
            "counts_from": done.counts_from.isoformat(),
            "next": PAGE + "?done=enrolled",
        },
        status_code=201,
    )


@router.post("/console/webauthn/assertion/options")
def assertion_options(
    body: Annotated[AssertionOptionsBody, Body()],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
) -> Response:
    try:
        options = operations.step_up_options(services, actor, body.request_id, body.decision)
    except FoureyesError as exc:
        return _problem(exc)
    return JSONResponse(options, headers={"Cache-Control": "no-store"})
