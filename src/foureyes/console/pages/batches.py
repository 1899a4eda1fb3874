"""`/console/batches`: ask for one action on many accounts (paste a list or upload a CSV file),
review a batch (its counts, the accounts split out and denied, the manifest's digest), and
follow its progress. Thin: the same operations as `/v1/batches` (`foureyes.workflow.batch_*`).
A manifest with bad lines is shown again with one error per line; nothing is recorded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from foureyes.console.csrf import CsrfDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.errors import BadInput
from foureyes.model import ReviewDecision
from foureyes.web.deps import ServicesDep
from foureyes.workflow import batch_views
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


@router.get("/console/batches/{batch_id}")
def batch_page(
    batch_id: str, request: Request, services: ServicesDep, actor: ConsoleActorDep
) -> Response:
    view = batch_views.show(services, actor, batch_id)
    return render(request, "batch.html", {"b": view})


@router.post("/console/batches/{batch_id}/reviews")
async def review_page(
    batch_id: str, request: Request, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep
) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    decision = form.get("decision")
    digest = form.get("digest")
    comment = form.get("comment") or ""
    if decision not in ("approve", "decline") or not isinstance(digest, str):
        raise BadInput("approve or decline the digest shown")
    given = BatchReviewInput(
        ReviewDecision.APPROVE if decision == "approve" else ReviewDecision.DENY,
        digest,
        str(comment),
    )
    await run_in_threadpool(review_batch, services, actor, batch_id, given)
    return RedirectResponse(f"/console/batches/{batch_id}", status_code=303)
