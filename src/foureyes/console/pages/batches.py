"""`/console/batches`: ask for one action on many accounts (paste a list or upload a CSV file),
review a batch (its counts, the accounts split out and denied, the manifest's digest), and
follow its progress. Thin: the same operations as `/v1/batches` (`foureyes.workflow.batch_*`).
A manifest with bad lines is shown again with one error per line; nothing is recorded.

A batch whose bar asks for step-up gets the request card's step-up (`webauthn.js`): the review
form asks `POST /console/batches/step-up/options` for WebAuthn options whose challenge is the
reviewer's verdict on this batch's digest (or, on a demo server only, `POST
/console/batches/step-up/demo` for the demo key's signature of it), and sends the answer in its
`step_up` field; `batch_review` verifies it. A refused review re-renders the card with why."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from foureyes.console.csrf import CsrfDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.errors import BadInput, FoureyesError
from foureyes.model import ReviewDecision
from foureyes.web.deps import ServicesDep
from foureyes.web.problems import problem
from foureyes.workflow import batch_cancel, batch_step_up, batch_views
from foureyes.workflow.batch_manifest import ManifestRefused
from foureyes.workflow.batch_review import BatchReviewInput, review_batch
from foureyes.workflow.batch_submit import BatchSubmission, submit_batch

router = APIRouter()

# Actions a batch may carry in the form's list; the policy's batch rules decide the rest.
ACTIONS = ("account.suspend", "account.lock")
MAX_FILE = 4 * 1024 * 1024


@router.get("/console/batches")
def batches_page(request: Request, services: ServicesDep, actor: ConsoleActorDep) -> Response:
    return render(
        request,
        "batches.html",
        {
            "reviewable": batch_views.list_batches(services, actor, reviewable=True),
            "batches": batch_views.list_batches(services, actor),
            "actions": ACTIONS,
            "errors": [],
            "given": {},
        },
    )


async def _manifest(request: Request) -> tuple[dict[str, str], str]:
    """The form's text fields, and the manifest: the pasted list or the uploaded file."""
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_FILE)
    fields: dict[str, str] = {}
    uploaded = ""
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(MAX_FILE + 1)
            if len(data) > MAX_FILE:
                raise BadInput(f"the file is larger than {MAX_FILE} bytes")
            try:
                uploaded = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput("the file is not UTF-8 text (save the CSV as UTF-8)") from None
        else:
            fields[key] = value
    pasted = fields.get("accounts", "")
    if pasted.strip() and uploaded.strip():
        raise BadInput("paste a list or upload a file, not both")
    return fields, uploaded if uploaded.strip() else pasted


@router.post("/console/batches")
async def submit_page(
    request: Request, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep
) -> Response:
    fields, manifest = await _manifest(request)
    given = BatchSubmission(
        action=fields.get("action", ""),
        csv=manifest,
        justification=fields.get("justification", "").strip() or None,
        client=request.client.host if request.client else None,
    )
    try:
        # The operation blocks on the store: off the event loop, as plain routes run.
        batch_id = await run_in_threadpool(submit_batch, services, actor, given)
    except ManifestRefused as refused:
        context: dict[str, Any] = {
            "reviewable": [],
            "batches": [],
            "actions": ACTIONS,
            "errors": refused.details.get("errors", []),
            "message": refused.message,
            "given": fields,
        }
        return render(request, "batches.html", context, status_code=422)
    return RedirectResponse(f"/console/batches/{batch_id}", status_code=303)


class StepUpBody(BaseModel):
    """What `webauthn.js` posts for a review form's step-up (`request_id` is the batch's id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    decision: Annotated[StrictStr, Field(pattern="^(approve|deny)$")]


def _json(compute: Any, *args: Any) -> Response:
    try:
        answer = compute(*args)
    except FoureyesError as exc:
        return problem(exc.status, exc.slug, exc.message, extensions=exc.details)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/console/batches/step-up/options")
def step_up_options(
    body: Annotated[StepUpBody, Body()],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
) -> Response:
    """WebAuthn options whose challenge is the signed-in reviewer's verdict on the batch."""
    return _json(batch_step_up.step_up_options, services, actor, body.request_id, body.decision)


@router.post("/console/batches/step-up/demo")
def demo_step_up(
    body: Annotated[StepUpBody, Body()],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
) -> Response:
    """On a demo server only (404 elsewhere, as an unknown page): the demo key's signature."""
    return _json(batch_step_up.demo_step_up, services, actor, body.request_id, body.decision)


def _page(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    batch_id: str,
    *,
    review_error: str = "",
    status_code: int = 200,
) -> Response:
    view = batch_views.show(services, actor, batch_id)
    options = (view.get("requirement") or {}).get("options") or {}
    context = {"b": view, "step_up": bool(options.get("step_up")), "review_error": review_error}
    return render(request, "batch.html", context, status_code=status_code)


@router.get("/console/batches/{batch_id}")
def batch_page(
    batch_id: str, request: Request, services: ServicesDep, actor: ConsoleActorDep
) -> Response:
    return _page(request, services, actor, batch_id)


def _step_up(raw: object) -> dict[str, Any] | None:
    """The form's `step_up` field: the security key's (or demo key's) answer, as JSON."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadInput("the security key's answer could not be read: try again") from None
    if not isinstance(value, dict):
        raise BadInput("the security key's answer could not be read: try again")
    return value


@router.post("/console/batches/{batch_id}/reviews")
async def review_page(
    batch_id: str, request: Request, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep
) -> Response:
    """Approve or decline the digest shown, with the step-up the form carries; a refusal (a
    4xx: wrong digest, no or wrong step-up, not eligible, …) shows the card again with why."""
    form = await request.form(max_files=0, max_fields=10)
    decision = form.get("decision")
    digest = form.get("digest")
    comment = form.get("comment") or ""
    # `deny` is what the step-up script sends (the verdict its challenge names); `decline`
    # what the plain form's button says: the same decision.
    if decision not in ("approve", "decline", "deny") or not isinstance(digest, str):
        raise BadInput("approve or decline the digest shown")
    given = BatchReviewInput(
        ReviewDecision.APPROVE if decision == "approve" else ReviewDecision.DENY,
        digest,
        str(comment),
        _step_up(form.get("step_up")),
    )
    try:
        await run_in_threadpool(review_batch, services, actor, batch_id, given)
    except FoureyesError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        why, status = exc.message, exc.status
    else:
        return RedirectResponse(f"/console/batches/{batch_id}", status_code=303)
    return await run_in_threadpool(
        lambda: _page(request, services, actor, batch_id, review_error=why, status_code=status)
    )


@router.post("/console/batches/{batch_id}/cancel")
async def cancel_page(
    batch_id: str, request: Request, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep
) -> Response:
    """Cancel the batch (`batch_cancel`); a refusal shows the card again with why."""
    form = await request.form(max_files=0, max_fields=5)
    reason = form.get("reason") or ""
    try:
        await run_in_threadpool(batch_cancel.cancel_batch, services, actor, batch_id, str(reason))
    except FoureyesError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        why, status = exc.message, exc.status
    else:
        return RedirectResponse(f"/console/batches/{batch_id}", status_code=303)
    return await run_in_threadpool(
        lambda: _page(request, services, actor, batch_id, review_error=why, status_code=status)
    )
