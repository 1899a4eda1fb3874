"""`foureyes batch request|approve|decline|cancel|show|list|prove|undo`: staff commands, clients of
`/v1/batches` like `request` (`foureyes.commands.client`), and as light to import.

`batch request ACTION --accounts FILE.csv` (or `-` for stdin) sends the manifest as CSV text;
a manifest with bad lines prints one line per bad line (``line N: entry: why``) and exits 2,
nothing recorded. `batch show ID --wait` draws a progress bar on stderr until the batch is done.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

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
from foureyes.commands.client import (
    CommentOpt,
    IdempotencyKeyOpt,
    StepUpKeyOpt,
    _step_up_key,
    step_up_assertion,
)
from foureyes.commands.options import TokenOpt, diagnosed
from foureyes.commands.safe_text import printable
from foureyes.errors import BadInput

__all__ = ["batch_app"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
batch_app = typer.Typer(no_args_is_help=True, help="Act on many accounts under one quorum.")

DONE = frozenset({"executed", "declined", "expired", "cancelled", "empty", "reverted"})
POLL_SECONDS = 0.5


def _read_manifest(accounts: str) -> str:
    if accounts == "-":
        return sys.stdin.read()
    try:
        return Path(accounts).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {accounts}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{accounts} is not UTF-8 text") from None


def _print_batch(view: dict[str, Any]) -> None:
    counts = view.get("counts") or {}
    out.print(
        printable(
            f"batch {view['id']}: {view['state']}  {view['action']}  "
            f"{view['item_count']} item(s), {counts.get('denied', 0)} denied, "
            f"{counts.get('split_out', 0)} split out"
        ),
        markup=False,
    )
    # What every item runs with, as the server shows it (the manifest's digest covers it).
    for line in params_view.described(view):
        out.print(line, markup=False, emoji=False, soft_wrap=True)
    if view.get("justification"):
        out.print(printable(f"justification: {view['justification']}"), markup=False, emoji=False)
    out.print(printable(f"digest (Merkle root): {view['digest']}"), markup=False)
    requirement = view.get("requirement") or {}
    if requirement:
        out.print(
            printable(
                f"needs {requirement.get('approvals')} approval(s) under batch rule "
                f"{requirement.get('rule')}"
            ),
            markup=False,
        )
    for entry in view.get("denied", []):
        reasons = "; ".join(entry.get("reasons", []))
        out.print(printable(f"  denied    {entry['account']}: {reasons}"), markup=False)
    for entry in view.get("split_requests") or view.get("split_out", []):
        made = entry.get("request_id") or "-"
        out.print(printable(f"  split out {entry['account']} -> request {made}"), markup=False)
    progress = view.get("progress") or {}
    if progress:
        out.print(
            printable(
                f"progress: {progress.get('done', 0)}/{progress.get('total', 0)} "
                f"({view.get('executed', 0)} executed, {view.get('failed', 0)} failed, "
                f"{view.get('cancelled', 0)} cancelled, {view.get('pending', 0)} pending)"
            ),
            markup=False,
        )


def request_cmd(
    action: Annotated[str, typer.Argument(help="e.g. account.suspend")],
    accounts: Annotated[
        str, typer.Option("--accounts", help="CSV file of accounts (one per line), or - for stdin")
    ],
    justification: Annotated[
        str | None, typer.Option("--reason", "--justification", "-j", help="Why (a ticket id).")
    ] = None,
    token: TokenOpt = None,
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask for one action on many accounts (a CSV manifest)."""
    body = {"action": action, "csv": _read_manifest(accounts), "justification": justification}
    with connect(server, token, insecure_http=insecure_http) as client:
        try:
            view = client.submit_batch(body, idempotency_key=idempotency_key)
        except ServerError as exc:
            errors = exc.details.get("errors")
            if not isinstance(errors, list):
                raise
            for entry in errors:
                if isinstance(entry, dict):
                    err.print(
                        printable(
                            f"line {entry.get('line')}: {entry.get('entry')}: {entry.get('error')}"
                        ),
                        markup=False,
                    )
            raise
    _print_batch(view)


def _review(
    client: Client, batch_id: str, decision: str, comment: str, key_path: Path | None
) -> dict[str, Any]:
    view = client.show_batch(batch_id)
    _print_batch(view)
    body: dict[str, Any] = {"decision": decision, "digest": view["digest"], "comment": comment}
    if key_path is not None:
        signed = "approve" if decision == "approve" else "deny"
        body["step_up"] = step_up_assertion(
            client, _step_up_key(key_path), batch_id, view["digest"], signed
        )
    return client.review_batch(batch_id, body)


def approve_cmd(
    batch_id: str,
    token: TokenOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Approve a batch: exactly the manifest whose digest is shown."""
    with connect(server, token, insecure_http=insecure_http) as client:
        if not yes:
            _print_batch(client.show_batch(batch_id))
            typer.confirm("approve exactly this manifest?", abort=True)
        view = _review(client, batch_id, "approve", comment, step_up_key)
    out.print(printable(f"{batch_id}: {view['state']}"), markup=False)


def decline_cmd(
    batch_id: str,
    token: TokenOpt = None,
    comment: CommentOpt = "",
    step_up_key: StepUpKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Decline a batch (an eligible approver's decline vetoes it)."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = _review(client, batch_id, "decline", comment, step_up_key)
    out.print(printable(f"{batch_id}: {view['state']}"), markup=False)


def show_cmd(
    batch_id: str,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show a progress bar until it is done.")
    ] = False,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """A batch: its plan, reviews and progress."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.show_batch(batch_id)
        if wait and view["state"] not in DONE:
            # Imported here: the staff commands stay light unless a bar is drawn.
            from foureyes.commands.progress import reporting  # noqa: PLC0415

            with reporting("carrying out", unit="items") as bar:
                while view["state"] not in DONE:
                    progress = view.get("progress") or {}
                    bar.advance(int(progress.get("done", 0)), int(progress.get("total", 0)))
                    time.sleep(POLL_SECONDS)  # the server's pace, not a test's
                    view = client.show_batch(batch_id)
                progress = view.get("progress") or {}
                bar.advance(int(progress.get("done", 0)), int(progress.get("total", 0)))
    _print_batch(view)


def list_cmd(
    reviewable: Annotated[bool, typer.Option("--reviewable")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Batches, newest first (up to --limit, following the server's pages)."""
    query: dict[str, Any] = {"reviewable": "true"} if reviewable else {}
    with connect(server, token, insecure_http=insecure_http) as client:
        items = every_page(client.list_batches, query, limit)
    for view in items:
        what = params_view.summary(view)
        out.print(
            printable(
                f"{view['id']}  {view['state']:<10} {view['action']}  "
                f"{view['item_count']} item(s)  by {view['requester']}"
            )
            + (printable(f"  {what}") if what else ""),
            markup=False,
            emoji=False,
        )


def prove_cmd(
    batch_id: str,
    position: int,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Fetch and verify (here, with the log's RFC 9162 verifier) the proof that the item at
    POSITION is in the batch's manifest."""
    # Imported here: the verifier is the audit log's, needed by this command alone.
    from foureyes.audit import merkle  # noqa: PLC0415

    with connect(server, token, insecure_http=insecure_http) as client:
        proof = client.batch_proof(batch_id, position)
    leaf = merkle.leaf_hash(bytes.fromhex(proof["item_digest"]))
    merkle.verify_inclusion(
        int(proof["leaf_index"]),
        int(proof["tree_size"]),
        leaf,
        [bytes.fromhex(h) for h in proof["inclusion_path"]],
        bytes.fromhex(proof["batch_digest"]),
    )
    item = proof.get("item") or {}
    out.print(
        printable(
            f"item {position} ({item.get('account')}) is in batch {batch_id} "
            f"(root {proof['batch_digest']}): proof verified"
        ),
        markup=False,
    )


def undo_cmd(
    batch_id: str,
    positions: Annotated[
        list[int] | None, typer.Option("--item", help="Only the item at this position (repeat).")
    ] = None,
    justification: Annotated[str | None, typer.Option("--reason", "-j")] = None,
    token: TokenOpt = None,
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask for one reverse batch over the executed items (all, or those given)."""
    body: dict[str, Any] = {"positions": positions or None, "justification": justification}
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.undo_batch(batch_id, body, idempotency_key=idempotency_key)
    _print_batch(view)


def cancel_cmd(
    batch_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Cancel a batch before it is carried out: the requester while it is pending or
    approved; an eligible approver while its delay runs."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.cancel_batch(batch_id, reason)
    out.print(printable(f"{batch_id}: {view['state']}"), markup=False)


batch_app.command("request")(diagnosed(request_cmd))
batch_app.command("approve")(diagnosed(approve_cmd))
batch_app.command("decline")(diagnosed(decline_cmd))
batch_app.command("show")(diagnosed(show_cmd))
batch_app.command("list")(diagnosed(list_cmd))
batch_app.command("prove")(diagnosed(prove_cmd))
batch_app.command("undo")(diagnosed(undo_cmd))
batch_app.command("cancel")(diagnosed(cancel_cmd))
