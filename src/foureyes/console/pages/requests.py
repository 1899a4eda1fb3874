"""Requests in the console: asking for an action (with a dry run first), one request's page
(its context, timeline and the review form), my requests (cancel, undo), and the inbox.

The forms that make a request (asking, undoing) carry an idempotency key in a hidden field,
new with each page that shows the form: the same form posted twice (a double click, a reload
that re-posts) answers the request the first post made, never a second one; and after an
outcome-unknown answer, posting it again is safe (docs/idempotency.md)."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console import schemaform
from foureyes.console.csrf import CsrfDep
from foureyes.console.pages.context import action_spec, request_context, safe_account
from foureyes.console.pages.forms import FormDep
from foureyes.console.pages.lists import OPEN_STATES, may_sign_off
from foureyes.console.sessions import ConsoleActorDep, client_address
from foureyes.console.templating import render
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, FoureyesError, IdempotencyKeyReused, OutcomeUnknown
from foureyes.model import Account, ActionSpec, ReviewDecision
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations, views

router = APIRouter()

RequestId = Annotated[str, Path(min_length=1, max_length=100)]
# The hidden field of a form's idempotency key.
KEY_FIELD = "idempotency_key"


def new_key() -> str:
    """A fresh idempotency key for a form that makes a request."""
    return str(uuid.uuid4())


def form_key(form: Mapping[str, str]) -> str | None:
    """The posted form's idempotency key (None for a form without one: posted by hand)."""
    return form.get(KEY_FIELD, "").strip() or None


# --- asking ----------------------------------------------------------------------------------


def _actions(services: Services, account_ref: str) -> list[ActionSpec]:
    """The actions the account's platform offers (all platforms' when it is not known yet)."""
    try:
        platform, _ = Account.split_ref(account_ref)
        specs = services.connector(platform).actions()
    except (ValueError, FoureyesError):
        specs = tuple(services.catalog().actions.values())
    return sorted(specs, key=lambda spec: spec.name)


def _new_page(
    request: Request,
    services: Services,
    *,
    account: str,
    action: str,
    params: Mapping[str, Any] | None = None,
    justification: str = "",
    break_glass: bool = False,
    decision: dict[str, Any] | None = None,
    change: dict[str, list[Any]] | None = None,
    error: str | None = None,
    refused: dict[str, Any] | None = None,
    unknown: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    status_code: int = 200,
) -> Response:
    """The asking page; its form carries `idempotency_key` (a fresh one when None)."""
    spec = action_spec(services, account, action) if account and action else None
    return render(
        request,
        "request_new.html",
        {
            "account": account,
            "action": action,
            "actions": _actions(services, account),
            "spec": spec,
            "fields": schemaform.fields(spec.params_schema, params) if spec else [],
            "justification": justification,
            "break_glass": break_glass,
            "decision": decision,
            "change": change or {},
            "error": error,
            "refused": refused,
            "unknown": unknown,
            "idempotency_key": idempotency_key or new_key(),
            "account_view": safe_account(services, account) if account else None,
        },
        status_code=status_code,
    )


@router.get("/console/requests/new")
def new_request(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    account: Annotated[str, Query(max_length=300)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    del actor
    return _new_page(request, services, account=account.strip(), action=action.strip())


@router.post("/console/requests/new")
def ask(
    request: Request, services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep, form: FormDep
) -> Response:
    """`do=check`: re-render with the dry run's decision (`decide.rule`, as a submit would get
    it: quotas and the payload's check included) and the change it would make;
    `do=submit`: submit with the form's idempotency key, then show the request (or, if the
    policy refuses, why). A page shown again keeps the form's key while it made no request
    (a check, a refusal, an outcome-unknown: posting it again asks for the same request) and
    gets a new one once it did (a policy denial: the next post is a new request)."""
    account = form.get("account", "").strip()
    action = form.get("action", "").strip()
    justification = form.get("justification", "").strip()
    break_glass = form.get("break_glass") == "on"
    key = form_key(form)
    spec = action_spec(services, account, action)
    values: dict[str, Any] = {}
    page: dict[str, Any] = {
        "account": account,
        "action": action,
        "justification": justification,
        "break_glass": break_glass,
        "idempotency_key": key,
    }
    try:
        if spec is None:
            raise BadInput(f"{action!r} is not an action of {account or 'this platform'}")
        values = schemaform.parse(spec.params_schema, form)
        submission = operations.Submission(
            action=action,
            account=account,
            params=values,
            justification=justification or None,
            break_glass=break_glass,
            client=client_address(request),
            idempotency_key=key,
        )
        if form.get("do") == "submit":
            request_id, outcome = operations.submit_and_run(services, actor, submission)
            if outcome is not None and outcome.data is not None:
                # Carried out at once for its requester (a read, a login_as): the answer is
                # shown this once, never stored.
                return _request_page(
                    request,
                    services,
                    actor,
                    request_id,
                    done=f"request {request_id} was recorded",
                    data=outcome.data,
                )
            return RedirectResponse(f"/console/requests/{request_id}", status_code=303)
        decision = operations.dry_run(services, actor, submission).to_dict()
    except operations.Denied as exc:
        page["idempotency_key"] = None  # the key made this request: the next post is another
        return _new_page(
            request, services, params=values, refused=exc.details, status_code=403, **page
        )
    except OutcomeUnknown as exc:
        return _new_page(
            request,
            services,
            params=values,
            unknown=exc.details | {"message": exc.message},
            status_code=exc.status,
            **page,
        )
    except FoureyesError as exc:
        if isinstance(exc, IdempotencyKeyReused):
            page["idempotency_key"] = None

        return _new_page(
            request, services, params=values, error=exc.message, status_code=exc.status, **page
        )
    # What it would change, only for someone the policy lets ask: the platform is not asked
    # (nor the params looked at) for a person it denies.
    change = (
        {}
        if decision["outcome"] == "denied"
        else operations_preview(services, action, account, values)
    )
    return _new_page(request, services, params=values, decision=decision, change=change, **page)


def operations_preview(
    services: Services, action: str, account: str, params: dict[str, Any]
) -> dict[str, list[Any]]:
    try:
        return views.preview(services, action, account, params)
    except FoureyesError:
        return {}


# --- one request -----------------------------------------------------------------------------


def _delay_has_run(services: Services, view: Mapping[str, Any]) -> bool:
    """A scheduled request whose delay is over: the worker carries out a write at its next
    pass; a read (or a login_as) waits for its requester, who may carry it out now."""
    if view["state"] != "scheduled" or not view.get("not_before"):
        return False
    return datetime.fromisoformat(str(view["not_before"])) <= services.clock()


def _request_page(
    request: Request,
    services: Services,
    actor: Actor,
    request_id: str,
    *,
    done: str | None = None,
    linked_digest: str | None = None,
    **extra: Any,
) -> Response:
    """One request's page; `done` says what this call just changed, if anything (then a
    failure to read the request back is OutcomeUnknown: `operations.show_after`).
    `linked_digest`: the digest the link that opened it named (a chat notification's); when it
    is not the request's, the page says so and offers no review."""
    view = (
        operations.show_to(services, actor, request_id)
        if done is None
        else operations.show_after(services, actor, request_id, done)
    )
    context = request_context(services, actor, view)
    context["digest_mismatch"] = linked_digest is not None and not hmac.compare_digest(
        linked_digest.encode(), str(view["digest"]).encode()
    )
    if context["digest_mismatch"]:
        # The link was for another request (or another content): approving here would not be
        # approving what the link showed.
        context["reviewable"] = False
    context["card"] = dict(context)
    context.update(extra)
    # The requester cancels an open request; during a delay anyone eligible may (the
    # operation decides who is).
    context["may_cancel"] = view["state"] == "scheduled" or (
        view["state"] in OPEN_STATES and view["requester"] == actor.id
    )
    context["may_sign_off"] = may_sign_off(view, actor)
    context["may_carry_out"] = view["requester"] == actor.id and (
        view["state"] == "approved" or _delay_has_run(services, view)
    )
    context["mine"] = view["requester"] == actor.id
    # Undo is offered only to someone the policy's rules would not refuse it.
    context["may_undo"] = (
        view["state"] == "executed"
        and bool(context["spec"] is not None and context["spec"].reversible_by)
        and operations.undo_offered(services, actor, request_id)
    )
    # The reverse's inputs only when foureyes cannot fill its params in (an email change
    # executed before it kept the previous address): otherwise nothing to type.
    reverse: ActionSpec | None = None
    if context["may_undo"]:
        try:
            reverse = operations.undo_asks_for(services, actor, request_id)
        except FoureyesError:  # the platform's connector is gone: the undo itself will say
            reverse = None
    context["undo_fields"] = schemaform.fields(reverse.params_schema) if reverse else []
    context["undo_key"] = new_key()
    return render(request, "request.html", context, status_code=extra.pop("status_code", 200))


@router.get("/console/requests/{request_id}")
def show_request(
    request: Request,
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    digest: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """One request; `?digest=` (the link in a chat notification) binds the link to the
    request's content: the review is offered only when it matches."""
    return _request_page(request, services, actor, request_id, linked_digest=digest)


def _step_up(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadInput("the security key's answer could not be read: try again") from None
    if not isinstance(value, dict):
        raise BadInput("the security key's answer could not be read: try again")
    return value


def _decision(form: Mapping[str, str]) -> ReviewDecision:
    try:
        return ReviewDecision(form.get("decision", ""))
    except ValueError:
        raise BadInput("choose approve or deny") from None


# A review's operation: operations.review_and_run (of a pending request; the deciding approval
# carries it out) or operations.post_review (a break-glass sign-off).
Record = Callable[[Services, Actor, str, operations.ReviewInput], object]


def _record(
    request: Request,
    services: Services,
    actor: Actor,
    request_id: str,
    form: Mapping[str, str],
    decision: ReviewDecision,
    record: Record,
    *,
    keep_comment: bool = False,
) -> Response:
    """Record `decision` with the form's digest, comment and security key's answer through
    `record`, then back to the request (`?reviewed=1`). A refusal re-renders the request page
    with why (and, with `keep_comment`, the comment typed, back in the review form); a server
    error (5xx) propagates to the error page."""
    given = operations.ReviewInput(
        decision=decision,
        digest=form.get("digest", ""),
        comment=form.get("comment", "").strip(),
        step_up=_step_up(form.get("step_up", "")),
    )
    try:
        record(services, actor, request_id, given)
    except FoureyesError as exc:
        if exc.status >= 500:
            raise
        kept = {"comment": given.comment} if keep_comment else {}
        return _request_page(
            request,
            services,
            actor,
            request_id,
            review_error=exc.message,
            status_code=exc.status,
            **kept,
        )
    if form.get("next") == "inbox":  # reviewed from the inbox: on to the next card
        return RedirectResponse(f"/console/inbox?reviewed={request_id}", status_code=303)
    return RedirectResponse(f"/console/requests/{request_id}?reviewed=1", status_code=303)


@router.post("/console/requests/{request_id}/review")
def review(
    request: Request,
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    """Approve or deny. A destructive approval needs the account's handle typed (checked here,
    on the server); the operation checks the digest, eligibility and any step-up."""
    decision = _decision(form)
    view = operations.show_to(services, actor, request_id)
    context = request_context(services, actor, view)
    if decision is ReviewDecision.APPROVE and context["destructive"]:
        typed = form.get("confirm_handle", "").strip().removeprefix("@")
        if typed != context["account_id"]:
            return _request_page(
                request,
                services,
                actor,
                request_id,
                review_error="To approve, type the account's handle exactly "
                f"({context['account_id']}).",
                comment=form.get("comment", ""),
                status_code=422,
            )
    return _record(
        request,
        services,
        actor,
        request_id,
        form,
        decision,
        operations.review_and_run,
        keep_comment=True,
    )


@router.post("/console/requests/{request_id}/post-review")
def sign_off(
    request: Request,
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    """Sign off (or object to) a break-glass that ran without approval."""
    return _record(
        request, services, actor, request_id, form, _decision(form), operations.post_review
    )


@router.post("/console/requests/{request_id}/execute")
def carry_out(
    request: Request,
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
) -> Response:
    """The requester carries out their approved request now; an answer for them alone (a
    read's data, a login_as session: `ActionSpec.for_requester_only`) is shown once."""
    outcome = operations.execute(services, request_id, actor=actor)
    if outcome is not None and outcome.data is not None:
        return _request_page(request, services, actor, request_id, data=outcome.data)
    return RedirectResponse(f"/console/requests/{request_id}", status_code=303)


@router.post("/console/requests/{request_id}/cancel")
def cancel(
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    reason = form.get("reason", "").strip() or "cancelled in the console"
    operations.cancel(services, actor, request_id, reason)
    return RedirectResponse(f"/console/requests/{request_id}", status_code=303)


@router.post("/console/requests/{request_id}/undo")
def undo(
    request_id: RequestId,
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    justification = form.get("justification", "").strip() or None
    params: dict[str, Any] | None = None
    if any(key.startswith(schemaform.PREFIX) for key in form):
        reverse = operations.undo_asks_for(services, actor, request_id)
        params = schemaform.parse(reverse.params_schema, form) if reverse else None
    # The form's key: posted twice, it answers the first post's undo (a replay).
    submitted, _ = operations.undo_run_or_replay(
        services, actor, request_id, justification, params, idempotency_key=form_key(form)
    )
    return RedirectResponse(f"/console/requests/{submitted.request_id}", status_code=303)
