"""`foureyes pin|unpin ACCOUNT PIN` and `foureyes pins [ACCOUNT]`: staff commands, clients of
the API like `request` (`foureyes.commands.client`), and as light to import.

A pin (`protected`, `watchlist`, …) is foureyes' own mark on an account, which policies read as
`account.pins`: pinning `protected` keeps an account very important whatever its platform
reports. Setting or clearing one changes who may do what to the account, so it is the governed
action `foureyes.account.pin` (on the account `foureyes:pins`): `pin` and `unpin` submit that
request, which waits for the approvals the policy asks (at least one other person: a floor no
policy lowers) and is reviewed like any other (`foureyes review`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from foureyes.commands.api_client import DEFAULT_SERVER, InsecureHttpOpt, ServerOpt, connect
from foureyes.commands.client import IdempotencyKeyOpt, print_request
from foureyes.commands.options import TokenOpt, diagnosed
from foureyes.commands.safe_text import cell, printable

__all__ = ["PIN_ACCOUNT", "PIN_ACTION", "pin_body", "register"]

PIN_ACTION = "foureyes.account.pin"
PIN_ACCOUNT = "foureyes:pins"  # the pseudo-account foureyes' pin requests are made on

out = Console(highlight=False)

AccountArg = Annotated[str, typer.Argument(help="platform:id, e.g. matrix:@alice:example.org")]
PinArg = Annotated[str, typer.Argument(help="e.g. protected or watchlist")]
JustificationOpt = Annotated[
    str | None, typer.Option("--justification", "-j", help="Why (e.g. a ticket id).")
]


def pin_body(account: str, pin: str, present: bool, justification: str | None) -> dict[str, Any]:
    """The request that sets (`present`) or clears `pin` on `account`."""
    return {
        "action": PIN_ACTION,
        "account": PIN_ACCOUNT,
        "params": {"account": account, "pin": pin, "present": present},
        "justification": justification,
        "break_glass": False,
    }


def _submit(
    body: dict[str, Any], token: str | None, key: str | None, server: str, insecure: bool
) -> None:
    with connect(server, token, insecure_http=insecure) as client:
        view = client.submit(body, idempotency_key=key)
    print_request(view)


def pin_cmd(
    account: AccountArg,
    pin: PinArg,
    token: TokenOpt = None,
    justification: JustificationOpt = None,
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask to pin an account (protected, watchlist, …): a request others approve."""
    body = pin_body(account, pin, True, justification)
    _submit(body, token, idempotency_key, server, insecure_http)


def unpin_cmd(
    account: AccountArg,
    pin: PinArg,
    token: TokenOpt = None,
    justification: JustificationOpt = None,
    idempotency_key: IdempotencyKeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Ask to clear an account's pin: a request others approve."""
    body = pin_body(account, pin, False, justification)
    _submit(body, token, idempotency_key, server, insecure_http)


def pins_cmd(
    account: Annotated[
        str | None, typer.Argument(help="One account (else every pinned account).")
    ] = None,
    pin: Annotated[str | None, typer.Option("--pin", help="Only accounts with this pin.")] = None,
    token: TokenOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Pinned accounts and their pins (or one account's pins and tier)."""
    with connect(server, token, insecure_http=insecure_http) as client:
        if account is not None:
            view = client.account(account)
            pins = ", ".join(view.get("pins", [])) or "none"
            out.print(
                printable(f"{view['ref']}  pins: {pins}  tier: {view.get('tier')}"), markup=False
            )
            return
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"pin": pin} if pin else {}
        while True:  # every page (`next`), each one a bounded answer
            page = client.list_pins(params)
            items.extend(page.get("items", []))
            following = page.get("next")
            if not following or following == params.get("cursor"):  # a server going round
                break
            params = {**params, "cursor": following}
    table = Table("account", "pins")
    for item in items:
        table.add_row(cell(item["account"]), cell(", ".join(item["pins"])))
    out.print(table)


def register(app: typer.Typer) -> None:
    """Mount `pin`, `unpin` and `pins` on the main app."""
    app.command("pin")(diagnosed(pin_cmd))
    app.command("unpin")(diagnosed(unpin_cmd))
    app.command("pins")(diagnosed(pins_cmd))
