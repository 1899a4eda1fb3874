"""The `foureyes` command: a table of its commands, each module imported only when it runs.

Staff run `foureyes request|review|show|list` many times a day; importing the server, the
database layer and the policy compiler for each took two seconds. So the root group knows its
commands by name and one line of help (`COMMANDS`), lists them from that table, and imports a
command's module only to run it (or to show its own `--help`). `tests/unit/commands/
test_cli_imports.py` holds that the table's help is each command's own, and that the staff
commands import neither the web framework, nor the database layer, nor the policy compiler.

Any `FoureyesError` becomes a one-line diagnosis on stderr and exit code 2; nothing is changed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer's own copy of click (typer 0.29 vendors it)
    from typer._click.core import Command, Context

__all__ = ["COMMANDS", "app", "load", "main"]


@dataclass(frozen=True)
class Entry:
    """Where a command lives: `attribute` of `module` is a Typer app (a group of commands,
    e.g. `policy`) or a `register(app)` function that mounts it; and its one line of help."""

    module: str
    attribute: str
    help: str


_CLIENT = "foureyes.commands.client"
COMMANDS: dict[str, Entry] = {
    "request": Entry(_CLIENT, "register", "Ask for one action on one account."),
    "review": Entry(
        _CLIENT, "register", "Approve or deny a request, bound to the digest you were shown."
    ),
    "post-review": Entry(
        _CLIENT,
        "register",
        "Sign off (approve) or object to (deny) a break-glass execution after the fact.",
    ),
    "cancel": Entry(_CLIENT, "register", "Cancel a request that has not started."),
    "undo": Entry(_CLIENT, "register", "Ask for the reverse of an executed request."),
    "execute": Entry(
        _CLIENT,
        "register",
        "Carry out your approved request now (reads and login_as return their data here, once).",
    ),
    "show": Entry(
        _CLIENT, "register", "A request, its decision, what it still needs, and its timeline."
    ),
    "list": Entry(_CLIENT, "register", "Requests, newest first."),
    "pin": Entry(
        "foureyes.commands.pins",
        "register",
        "Ask to pin an account (protected, watchlist, …): a request others approve.",
    ),
    "unpin": Entry(
        "foureyes.commands.pins",
        "register",
        "Ask to clear an account's pin: a request others approve.",
    ),
    "pins": Entry(
        "foureyes.commands.pins",
        "register",
        "Pinned accounts and their pins (or one account's pins and tier).",
    ),
    "away": Entry(
        "foureyes.commands.away",
        "away_app",
        "Mark yourself away (not notified, not counted as reachable), or back.",
    ),
    "worker": Entry(
        "foureyes.commands.worker",
        "register",
        "Run due work: expiry, delayed executions, reconciliation, overdue post-reviews, and "
        "the log's checkpoints (signed and handed to the witness on the settings' schedule).",
    ),
    "serve": Entry(
        "foureyes.commands.serve",
        "register",
        "Serve the API and run the background worker (Ctrl-C or SIGTERM stops both).",
    ),
    "migrate": Entry(
        "foureyes.commands.migration",
        "register",
        "Migrate the database (as the owner: FOUREYES_OWNER_DATABASE_URL) and grant the "
        "runtime role (FOUREYES_DATABASE_URL) its privileges.",
    ),
    "init": Entry(
        "foureyes.commands.init",
        "register",
        "Create the data directory, keys and database, set up the platform's connector "
        "(checked to answer), and load the first policy and staff directory (the only time "
        "they load without approval: on an empty database).",
    ),
    "policy": Entry(
        "foureyes.commands.policy", "policy_app", "Check, test, explain and compare policies."
    ),
    "staff": Entry(
        "foureyes.commands.staff", "staff_app", "The staff directory, tokens and step-up keys."
    ),
    "audit": Entry(
        "foureyes.commands.audit",
        "audit_app",
        "Verify, prove, checkpoint, search and export the audit log.",
    ),
    "alerts": Entry("foureyes.commands.alerts", "alerts_app", "Alerts the detectors raised."),
    "batch": Entry(
        "foureyes.commands.batches", "batch_app", "Act on many accounts under one quorum."
    ),
}


def load(name: str) -> Command:
    """The command `name` as its module defines it (importing that module)."""
    entry = COMMANDS[name]
    found = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(found, typer.Typer):
        group = typer.main.get_command(found)
        group.name = name
        return group
    holder = typer.Typer()
    holder.callback()(lambda: None)  # a group, even where `register` mounts one command
    found(holder)
    holding = typer.main.get_command(holder)
    assert isinstance(holding, TyperGroup)
    command = holding.get_command(typer.Context(holding), name)
    assert command is not None, f"{entry.module}.{entry.attribute} mounts no {name!r}"
    return command


class _Commands(TyperGroup):
    """The root group: lists `COMMANDS` from the table, loads one only to run it."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        # For the root's help: the table's line, without importing the command's module.
        entry = COMMANDS.get(cmd_name)
        return None if entry is None else TyperCommand(cmd_name, help=entry.help)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name = args[0] if args else None
        if name in COMMANDS:
            return name, load(name), args[1:]
        return super().resolve_command(ctx, args)  # unknown: click's "No such command"


app = typer.Typer(
    cls=_Commands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """foureyes: four-eyes approval, policy and tamper-evident audit for admin tools."""


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv)
