"""Clients of the lifecycle: `foureyes request|review|post-review|cancel|undo|execute|show|list|
worker`.

Until the HTTP API serves them, these act on the local database named by the settings. They act
as a staff member only with that member's own token (`--token` or FOUREYES_TOKEN), never by
naming them.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from rich.console import Console
from rich.table import Table

from foureyes.commands.common import DataDirOpt, TokenOpt, diagnosed, err, open_services
from foureyes.errors import BadInput, Unavailable
from foureyes.model import ReviewDecision
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.services import Actor, Services
from foureyes.workflow.stepup import challenge, key_id_of
from foureyes.workflow.submit import Submission

out = Console(highlight=False)


def _params(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise BadInput(f"--params-json is not JSON: {exc.msg}") from exc
        if not isinstance(loaded, dict):
            raise BadInput("--params-json must be a JSON object")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"--param takes key=value, not {pair!r}")
        params[key] = value
    return params


def _print_request(view: dict[str, Any]) -> None:
    decision = view["decision"]
    out.print(
        f"[bold]{view['id']}[/] {view['state'].upper()}  {view['requester']} → "
        f"{view['action']} on {view['account']}"
    )
    out.print(f"  digest {view['digest']}", markup=False)
    if view.get("justification"):
        out.print(f"  justification: {view['justification']}", markup=False)
    for reason in decision.get("reasons", []):
        out.print(f"  • {reason}", markup=False)
    for factor in decision.get("factors", []):
        who = ", ".join(factor.get("approved_by", [])) or "nobody yet"
        could = ", ".join(factor.get("candidates", []))
        line = f"  factor {factor['rule']}: approved by {who}; {factor.get('missing', 0)} missing"
        out.print(line + (f" (could approve: {could})" if could else ""), markup=False)
    if view.get("reason"):
        out.print(f"  why: {view['reason']}", markup=False)
    for event in view.get("timeline", []):
        out.print(
            f"  {event['at']}  #{event['seq']} {event['kind']}  {event['actor'] or ''}",
            markup=False,
        )


def request_cmd(
    action: Annotated[str, typer.Argument(help="e.g. account.deactivate")],
    account: Annotated[str, typer.Argument(help="e.g. chirp:president")],
    token: TokenOpt = None,
    param: Annotated[list[str], typer.Option("--param", help="key=value")] = [],  # noqa: B006
    params_json: Annotated[str | None, typer.Option("--params-json")] = None,
    justification: Annotated[str | None, typer.Option("--justification", "-j")] = None,
    break_glass: Annotated[bool, typer.Option("--break-glass")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Ask for one action on one account."""
    services, actor = open_services(data_dir, token)
    submission = Submission(
        action, account, _params(param, params_json), justification, break_glass
    )
    request_id, outcome = operations.submit_and_run(services, actor, submission)
    data = outcome.data if outcome is not None else None
    _print_request(operations.show_to(services, actor, request_id))
    if data is not None:
        out.print_json(json.dumps(data, default=str))


VerdictArg = Annotated[ReviewDecision, typer.Argument(help="approve or deny")]
DigestOpt = Annotated[
    str | None, typer.Option("--digest", help="The digest you reviewed (else asked).")
]
CommentOpt = Annotated[str, typer.Option("--comment", "-m")]
StepUpKeyOpt = Annotated[
    Path | None, typer.Option("--step-up-key", help="Your enrolled Ed25519 key (PEM).")
]


def _review_input(
    services: Services,
    actor: Actor,
    request_id: str,
    verdict: ReviewDecision,
    digest: str | None,
    comment: str,
    step_up_key: Path | None,
) -> ReviewInput:
    """What the reviewer confirms: the digest they were shown (asked for interactively when not
    given), and, with a key, the step-up signature over exactly this review."""
    if digest is None:
        view = operations.show_to(services, actor, request_id)
        _print_request(view)
        typer.confirm(f"{verdict.value} exactly this request?", abort=True)
        digest = str(view["digest"])
    assertion = None
    if step_up_key is not None:
        key = load_pem_private_key(step_up_key.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise BadInput("the step-up key must be an Ed25519 private key")
        signature = key.sign(
            challenge(
                request_id=request_id, digest=digest, reviewer_id=actor.id, decision=verdict.value
            )
        )
        assertion = {
            "key_id": key_id_of(key),
            "signature": base64.b64encode(signature).decode(),
        }
    return ReviewInput(verdict, digest, comment, assertion)


def review_cmd(
    request_id: str,
    verdict: VerdictArg,
    token: TokenOpt = None,
    digest: DigestOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Approve or deny a request, bound to the digest you were shown."""
    services, actor = open_services(data_dir, token)
    given = _review_input(services, actor, request_id, verdict, digest, comment, step_up_key)
    state = operations.review(services, actor, request_id, given)
    out.print(f"{request_id}: {state}")


def post_review_cmd(
    request_id: str,
    verdict: VerdictArg,
    token: TokenOpt = None,
    digest: DigestOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Sign off (approve) or object to (deny) a break-glass execution after the fact."""
    services, actor = open_services(data_dir, token)
    given = _review_input(services, actor, request_id, verdict, digest, comment, step_up_key)
    count = operations.post_review(services, actor, request_id, given)
    out.print(f"{request_id}: {count} post-review(s)")


def cancel_cmd(
    request_id: str,
    token: TokenOpt = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    data_dir: DataDirOpt = None,
) -> None:
    """Cancel a request that has not started."""
    services, actor = open_services(data_dir, token)
    out.print(f"{request_id}: {operations.cancel(services, actor, request_id, reason)}")


def undo_cmd(
    request_id: str,
    token: TokenOpt = None,
    justification: Annotated[str | None, typer.Option("--justification", "-j")] = None,
    param: Annotated[list[str], typer.Option("--param", help="key=value")] = [],  # noqa: B006
    data_dir: DataDirOpt = None,
) -> None:
    """Ask for the reverse of an executed request."""
    services, actor = open_services(data_dir, token)
    new_id = operations.undo(services, actor, request_id, justification, _params(param, None))
    operations.run_if_allowed(services, actor, new_id)
    _print_request(operations.show_to(services, actor, new_id))


def execute_cmd(request_id: str, token: TokenOpt = None, data_dir: DataDirOpt = None) -> None:
    """Carry out your approved request now (reads return their data here, once)."""
    services, actor = open_services(data_dir, token)
    outcome = operations.execute(services, request_id, actor=actor)
    assert outcome is not None
    out.print(
        f"{request_id}: {outcome.state.value}" + (f" ({outcome.reason})" if outcome.reason else "")
    )
    if outcome.data is not None:
        out.print_json(json.dumps(outcome.data, default=str))


def show_cmd(request_id: str, token: TokenOpt = None, data_dir: DataDirOpt = None) -> None:
    """A request, its decision, what it still needs, and its timeline."""
    services, actor = open_services(data_dir, token)
    _print_request(operations.show_to(services, actor, request_id))


def list_cmd(
    token: TokenOpt = None,
    state: Annotated[str | None, typer.Option("--state")] = None,
    mine: Annotated[bool, typer.Option("--mine")] = False,
    reviewable: Annotated[bool, typer.Option("--reviewable", help="What waits for me.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    data_dir: DataDirOpt = None,
) -> None:
    """Requests, newest first."""
    services, actor = open_services(data_dir, token)
    items, _ = operations.list_requests(
        services, actor, operations.ListFilter(state, mine, reviewable, None, limit)
    )
    table = Table("id", "state", "requester", "action", "account", "created")
    for item in items:
        table.add_row(
            item["id"],
            item["state"],
            item["requester"],
            item["action"],
            item["account"],
            item["created_at"],
        )
    out.print(table)


def worker_cmd(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval")] = 5.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Run due work: expiry, delayed executions, reconciliation, overdue post-reviews."""
    services, _ = open_services(data_dir, None, authenticate=False)
    while True:
        try:
            tick = operations.run_once(services, worker="cli-worker")
        except Unavailable as exc:
            if once:
                raise
            # The database or a platform is down: nothing was changed; the next pass retries.
            err.print(
                f"foureyes worker: this pass failed ({exc.message}); next pass in {interval:g} s",
                markup=False,
                soft_wrap=True,
            )
            time.sleep(interval)
            continue
        out.print(
            f"executed {len(tick.executed)}, cancelled {len(tick.cancelled)}, "
            f"failed {len(tick.failed)}, expired {len(tick.expired)}, "
            f"reconciled {len(tick.reconciled)}, overdue {len(tick.overdue)}"
        )
        if once:
            return
        time.sleep(interval)


def register(app: typer.Typer) -> None:
    """Mount the lifecycle commands on the main app."""
    app.command("request")(diagnosed(request_cmd))
    app.command("review")(diagnosed(review_cmd))
    app.command("post-review")(diagnosed(post_review_cmd))
    app.command("cancel")(diagnosed(cancel_cmd))
    app.command("undo")(diagnosed(undo_cmd))
    app.command("execute")(diagnosed(execute_cmd))
    app.command("show")(diagnosed(show_cmd))
    app.command("list")(diagnosed(list_cmd))
    app.command("worker")(diagnosed(worker_cmd))
