"""`foureyes away set --from DATE --until DATE [--delegate NAME]` and `foureyes away clear`:
staff commands, clients of `PUT`/`DELETE /v1/me/away` (only your own away: nobody marks
someone else away).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from foureyes.commands.api_client import DEFAULT_SERVER, InsecureHttpOpt, ServerOpt, connect
from foureyes.commands.options import TokenOpt, diagnosed
from foureyes.commands.safe_text import printable

__all__ = ["away_app"]

out = Console(highlight=False)
away_app = typer.Typer(
    no_args_is_help=True,
    help="Mark yourself away (not notified, not counted as reachable), or back.",
)


def _shown(answer: dict[str, Any]) -> str:
    away = answer.get("away")
    if not away:
        return "not away"
    delegate = away.get("delegate")
    also = f"; notifications to {delegate} where they may approve anyway" if delegate else ""
    return f"away from {away['from']} until {away['until']}{also}"


def set_cmd(
    starts: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    ends: Annotated[datetime, typer.Option("--until", formats=["%Y-%m-%d"], help="Last day.")],
    delegate: Annotated[
        str | None,
        typer.Option(
            "--delegate", help="Staff id of a colleague for your notifications (gives no power)."
        ),
    ] = None,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Mark yourself away from --from to --until (inclusive)."""
    body = {"from": starts.date().isoformat(), "until": ends.date().isoformat()}
    if delegate is not None:
        body["delegate"] = delegate
    with connect(server, token, insecure_http=insecure_http) as client:
        answer = client.away(body)
    out.print(printable(_shown(answer)), markup=False)


def clear_cmd(
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """You are back: notified and counted as reachable again."""
    with connect(server, token, insecure_http=insecure_http) as client:
        answer = client.away(None)
    out.print("back" if answer.get("cleared") else "you were not marked away")


away_app.command("set")(diagnosed(set_cmd))
away_app.command("clear")(diagnosed(clear_cmd))
