"""The staff's commands: `foureyes request|review|post-review|cancel|undo|execute|show|list`,
clients of a foureyes server's HTTP API (`foureyes.commands.api_client`).

They never open the database: a staff member holds only their own token (`--token` or
FOUREYES_TOKEN) and the server's address (`--server` or FOUREYES_SERVER), never the credentials
behind foureyes. They act as that person only, never by naming them. So that they start at
once, this module imports neither the web framework, nor the database layer, nor the policy
compiler, and cryptography only to sign with a step-up key (`tests/unit/commands/
test_cli_imports.py` holds it).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from foureyes.auth.messages import challenge, key_id_of
from foureyes.commands import params_view
from foureyes.commands.api_client import (
    DEFAULT_SERVER,
    Client,
    InsecureHttpOpt,
    ServerError,
    ServerOpt,
    connect,
    every_page,
)
from foureyes.commands.list_filters import list_query
from foureyes.commands.options import TokenOpt, diagnosed
from foureyes.commands.safe_text import cell, printable
from foureyes.errors import BadInput
from foureyes.model import ReviewDecision

if TYPE_CHECKING:  # cryptography is loaded only to sign (`_step_up_key`): see the docstring
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["IdempotencyKeyOpt", "print_request", "register"]

# The `kind` the API gives a post-review in a request's `reviews` (part of the HTTP contract).
POST_REVIEW = "post_review"

out = Console(highlight=False)
# The API's largest page; `list --limit` above it follows the cursor.


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


def _say(text: str) -> None:
    """One line of what came from the server, escaped (`printable`), so that nothing in it can
    drive the terminal, and printed as it is: no markup, no emoji codes (`:ok:`) replaced."""
    out.print(printable(text), markup=False, emoji=False, soft_wrap=True)


def _print_request(view: dict[str, Any], undone: dict[str, Any] | None = None) -> None:
    """The request as its reader must see it before deciding on it: everything that runs (its
    action, account and every param, as the server shows them to this reader, redacted where
    the API redacts) and, for an undo, the request it undoes (`undone`: that request's view,
    when the reader may see it)."""
    # Everything here came from the server, much of it from people (accounts, params,
    # justifications, reasons quoting them): escaped, so that nothing can drive the terminal.
    decision = view["decision"]
    out.print(
        f"[bold]{cell(view['id'])}[/] {cell(view['state'].upper())}  {cell(view['requester'])} → "
        f"{cell(view['action'])} on {cell(view['account'])}",
        emoji=False,
    )
    for line in params_view.described(view, undone, indent="  "):
        _say(line)
    _say(f"  digest {view['digest']}")
    if view.get("justification"):
        _say(f"  justification: {view['justification']}")
    for reason in decision.get("reasons", []):
        _say(f"  • {reason}")
    for factor in decision.get("factors", []):
        who = ", ".join(factor.get("approved_by", [])) or "nobody yet"
        could = ", ".join(factor.get("candidates", []))
        line = f"  factor {factor['rule']}: approved by {who}; {factor.get('missing', 0)} missing"
        _say(line + (f" (could approve: {could})" if could else ""))
    if view.get("reason"):
        _say(f"  why: {view['reason']}")
    for event in view.get("timeline", []):
        _say(f"  {event['at']}  #{event['seq']} {event['kind']}  {event['actor'] or ''}")


def _undone(client: Client, view: dict[str, Any]) -> dict[str, Any] | None:
    """The view of the request `view` undoes, if it is an undo and this reader may see that
    request (else None: the undo's own view names its id all the same)."""
    reverts = view.get("reverts")
    if not reverts:
        return None
    try:
        return client.show(str(reverts))
    except ServerError:
        return None


print_request = _print_request  # for the other staff commands (`foureyes.commands.pins`)


def _print_data(view: dict[str, Any]) -> None:
    """An answer for the requester alone (a read's data, a login_as session token): the server
    gives it this once and keeps no copy."""
    if view.get("data") is not None:
        out.print_json(json.dumps(view["data"], default=str))


# Every submit and undo sends an Idempotency-Key; a failure whose outcome is unknown prints the
# one it sent, to be given here on the retry (`foureyes.commands.api_client`).
IdempotencyKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help=(
            "Send this Idempotency-Key (to retry a call safely: the one a failed call "
            "printed); else a fresh one."
        ),
    ),
]


def request_cmd(
    action: Annotated[str, typer.Argument(help="e.g. account.deactivate")],
    account: Annotated[str, typer.Argument(help="e.g. chirp:president")],
    token: TokenOpt = None,
    param: Annotated[list[str], typer.Option("--param", help="key=value")] = [],  # noqa: B006
    params_json: Annotated[str | None, typer.Option("--params-json")] = None,
    justification: Annotated[str | None, typer.Option("--justification", "-j")] = None,
    break_glass: Annotated[bool, typer.Option("--break-glass")] = False,
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask for one action on one account."""
    body = {
        "action": action,
        "account": account,
        "params": _params(param, params_json),
        "justification": justification,
        "break_glass": break_glass,
    }
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.submit(body, idempotency_key=idempotency_key)
    _print_request(view)
    _print_data(view)


VerdictArg = Annotated[ReviewDecision, typer.Argument(help="approve or deny")]
DigestOpt = Annotated[
    str | None, typer.Option("--digest", help="The digest you reviewed (else asked).")
]
CommentOpt = Annotated[str, typer.Option("--comment", "-m")]
StepUpKeyOpt = Annotated[
    Path | None, typer.Option("--step-up-key", help="Your enrolled Ed25519 key (PEM).")
]


def _step_up_key(path: Path) -> Ed25519PrivateKey:
    """The reviewer's Ed25519 key from its PEM file (`BadInput` if it is not one)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: PLC0415

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise BadInput(f"cannot read the step-up key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise BadInput(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput("the step-up key must be an Ed25519 private key")
    return key


def _review_body(
    client: Client,
    request_id: str,
    verdict: ReviewDecision,
    digest: str | None,
    comment: str,
    step_up_key: Path | None,
) -> dict[str, Any]:
    """What the reviewer confirms: the digest they were shown (asked for interactively when not
    given), and, with a key, the step-up signature over exactly this review — made here, so the
    key never leaves this machine."""
    key = None if step_up_key is None else _step_up_key(step_up_key)
    if digest is None:
        view = client.show(request_id)
        _print_request(view, _undone(client, view))
        typer.confirm(f"{verdict.value} exactly this request?", abort=True)
        digest = str(view["digest"])
    body: dict[str, Any] = {"decision": verdict.value, "digest": digest, "comment": comment}
    if key is not None:
        body["step_up"] = step_up_assertion(client, key, request_id, digest, verdict.value)
    return body


def step_up_assertion(
    client: Client, key: Ed25519PrivateKey, subject_id: str, digest: str, decision: str
) -> dict[str, str]:
    """The device-key step-up of one review (a request's or a batch's): the signature over its
    challenge, made here so the key never leaves this machine. The challenge names the reviewer
    by staff id: the server says whose token this is."""
    reviewer = str(client.me()["id"])
    signature = key.sign(
        challenge(request_id=subject_id, digest=digest, reviewer_id=reviewer, decision=decision)
    )
    return {"key_id": key_id_of(key), "signature": base64.b64encode(signature).decode()}


def review_cmd(
    request_id: str,
    verdict: VerdictArg,
    token: TokenOpt = None,
    digest: DigestOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Approve or deny a request, bound to the digest you were shown."""
    with connect(server, token, insecure_http=insecure_http) as client:
        body = _review_body(client, request_id, verdict, digest, comment, step_up_key)
        view = client.review(request_id, body)
    _say(f"{request_id}: {view['state']}")


def post_review_cmd(
    request_id: str,
    verdict: VerdictArg,
    token: TokenOpt = None,
    digest: DigestOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Sign off (approve) or object to (deny) a break-glass execution after the fact."""
    with connect(server, token, insecure_http=insecure_http) as client:
        body = _review_body(client, request_id, verdict, digest, comment, step_up_key)
        view = client.post_review(request_id, body)
    count = sum(1 for review in view.get("reviews", []) if review.get("kind") == POST_REVIEW)
    _say(f"{request_id}: {count} post-review(s)")


def cancel_cmd(
    request_id: str,
    token: TokenOpt = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Cancel a request that has not started."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.cancel(request_id, reason)
    _say(f"{request_id}: {view['state']}")


def undo_cmd(
    request_id: str,
    token: TokenOpt = None,
    justification: Annotated[str | None, typer.Option("--justification", "-j")] = None,
    param: Annotated[list[str], typer.Option("--param", help="key=value")] = [],  # noqa: B006
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask for the reverse of an executed request."""
    body = {"justification": justification, "params": _params(param, None)}
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.undo(request_id, body, idempotency_key=idempotency_key)
    _print_request(view)
    _print_data(view)


def execute_cmd(
    request_id: str,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Carry out your approved request now (reads and login_as return their data here, once)."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.execute(request_id)
    reason = view.get("reason")
    _say(f"{request_id}: {view['state']}" + (f" ({reason})" if reason else ""))
    _print_data(view)


def show_cmd(
    request_id: str,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """A request, its decision, what it still needs, and its timeline."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.show(request_id)
        undone = _undone(client, view)
    _print_request(view, undone)


def list_cmd(
    token: TokenOpt = None,
    state: Annotated[str | None, typer.Option("--state")] = None,
    mine: Annotated[bool, typer.Option("--mine")] = False,
    reviewable: Annotated[bool, typer.Option("--reviewable", help="What waits for me.")] = False,
    account: Annotated[
        str | None, typer.Option("--account", help="Only requests on this account.")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only requests for this action.")
    ] = None,
    requester: Annotated[
        str | None, typer.Option("--requester", help="Only requests by this staff id.")
    ] = None,
    tier: Annotated[
        str | None, typer.Option("--tier", help="Only requests on accounts of this tier.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Requests, newest first."""
    query = list_query(
        state=state,
        mine=mine,
        reviewable=reviewable,
        account=account,
        action=action,
        requester=requester,
        tier=tier,
    )
    with connect(server, token, insecure_http=insecure_http) as client:
        items = every_page(client.list_requests, query, limit)
    table = Table("id", "state", "requester", "action", "account", "params", "created")
    for item in items:
        table.add_row(
            *(cell(item[key]) for key in ("id", "state", "requester", "action", "account")),
            cell(params_view.summary(item)),
            cell(item["created_at"]),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Mount the staff's client commands on the main app."""
    app.command("request")(diagnosed(request_cmd))
    app.command("review")(diagnosed(review_cmd))
    app.command("post-review")(diagnosed(post_review_cmd))
    app.command("cancel")(diagnosed(cancel_cmd))
    app.command("undo")(diagnosed(undo_cmd))
    app.command("execute")(diagnosed(execute_cmd))
    app.command("show")(diagnosed(show_cmd))
    app.command("list")(diagnosed(list_cmd))
