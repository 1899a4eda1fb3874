"""`foureyes alerts list|ack`: what the detectors flagged (a client of the same operations as
`/v1/alerts`, acting as the owner of `--token`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from foureyes import detect
from foureyes.commands.common import DataDirOpt, TokenOpt, diagnosed, open_services

out = Console(highlight=False)
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts the detectors raised.")


@alerts_app.command("list")
@diagnosed
def list_cmd(
    state: Annotated[str, typer.Option("--state", help="open, acknowledged or all")] = "open",
    detector: Annotated[str | None, typer.Option("--detector")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Alerts, newest first."""
    if state not in ("open", "acknowledged", "all"):
        raise typer.BadParameter("--state is open, acknowledged or all")
    services, actor = open_services(data_dir, token)
    items, _ = detect.list_alerts(
        services,
        actor,
        state=state,  # type: ignore[arg-type]  # checked above
        detector=detector,
        limit=limit,
    )
    if not items:
        out.print(f"No {state} alerts." if state != "all" else "No alerts.")
        return
    table = Table("id", "at", "severity", "detector", "staff", "account", "summary", "ack")
    for item in items:
        table.add_row(
            str(item["id"]),
            item["created_at"][:19],
            item["severity"],
            item["detector"],
            item["staff"] or "",
            item["account"] or "",
            item["summary"],
            item["acknowledged_by"] or "",
        )
    out.print(table)


@alerts_app.command("ack")
@diagnosed
def ack_cmd(
    alert_id: Annotated[int, typer.Argument(min=1)],
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Acknowledge an alert (an audit event)."""
    services, actor = open_services(data_dir, token)
    view = detect.acknowledge(services, actor, alert_id, comment)
    out.print(f"Alert {view['id']} acknowledged by {view['acknowledged_by']}.")
