"""`foureyes alerts list|ack`: what the detectors flagged, as clients of a foureyes server's
`/v1/alerts` acting as the owner of `--token` (like the request commands, they never open the
database)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from foureyes.commands.api_client import DEFAULT_SERVER, InsecureHttpOpt, ServerOpt, connect
from foureyes.commands.options import TokenOpt, diagnosed
from foureyes.commands.safe_text import cell, printable

out = Console(highlight=False)
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts the detectors raised.")


@alerts_app.command("list")
@diagnosed
def list_cmd(
    state: Annotated[str, typer.Option("--state", help="open, acknowledged or all")] = "open",
    detector: Annotated[str | None, typer.Option("--detector")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Alerts, newest first."""
    if state not in ("open", "acknowledged", "all"):
        raise typer.BadParameter("--state is open, acknowledged or all")
    params: dict[str, str | int] = {"state": state, "limit": limit}
    if detector is not None:
        params["detector"] = detector
    with connect(server, token, insecure_http=insecure_http) as client:
        items = client.list_alerts(params)["items"]
    if not items:
        out.print(f"No {state} alerts." if state != "all" else "No alerts.")
        return
    table = Table("id", "at", "severity", "detector", "staff", "account", "summary", "ack")
    for item in items:
        # What alerts quote (names, account ids, summaries) came from outside: escaped.
        table.add_row(
            *(
                cell(value or "")
                for value in (
                    str(item["id"]),
                    item["created_at"][:19],
                    item["severity"],
                    item["detector"],
                    item["staff"],
                    item["account"],
                    item["summary"],
                    # A row the log does not vouch for: flagged, never shown as handled.
                    "! not in the audit log" if item.get("tampered") else item["acknowledged_by"],
                )
            )
        )
    out.print(table)


@alerts_app.command("ack")
@diagnosed
def ack_cmd(
    alert_id: Annotated[int, typer.Argument(min=1)],
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Acknowledge an alert (an audit event)."""
    with connect(server, token, insecure_http=insecure_http) as client:
        view = client.acknowledge_alert(alert_id, comment)
    out.print(
        printable(f"Alert {view['id']} acknowledged by {view['acknowledged_by']}."), markup=False
    )
