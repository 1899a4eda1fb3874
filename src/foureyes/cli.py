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
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_choice
from typer.core import TyperCommand, TyperGroup, _TyperParameter

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
    _plainly([*command.params, command.get_help_option(typer.Context(command))])
    return command


def _plainly(params: list[Any]) -> None:
    """Convert these parameters (typer's; a command's own and its cached `--help`) with
    `_Plain`, which imports no pydantic where typer's own conversion needs none."""
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            param._runtime_param = _Plain(
                parameter_info=param.type_descriptor.parameter_info,
                annotation=param.type_descriptor.annotation,
            )


@dataclass(frozen=True)
class _Plain(RuntimeParam):
    """A parameter's conversion without pydantic where typer's own needs none of it.

    Typer converts every parameter through a pydantic `TypeAdapter` built for it, even one not
    given; importing pydantic and building those cost a staff command a third of its start.
    What argv gives a plain `str` (a `list[str]`) is already that, and an `int` default within
    its bounds is already one; an `Enum` choice goes through typer's own `coerce_cli_choice`
    (what its adapter calls). Anything else (a number typed in, a path, a custom parser) is
    converted by typer's own runtime parameter, built only then. `tests/unit/commands/
    test_cli_imports.py` holds that the staff commands load no pydantic, and that bad values
    are still refused."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        info, kind = self.parameter_info, self.annotation
        if info.parser is None:
            if kind is str and isinstance(value, str):
                return value
            if kind == list[str] and all(isinstance(item, str) for item in value):
                return list(value)
            if kind is int and type(value) is int and _within(value, info.min, info.max):
                return value  # a default: typed in, "3" is a str (typer's own converts it)
            if isinstance(kind, type) and issubclass(kind, Enum):
                try:
                    return coerce_cli_choice(
                        value, choices=list(kind), case_sensitive=info.case_sensitive, ctx=ctx
                    )
                except ValueError as exc:
                    raise BadParameter(str(exc), ctx=ctx, param=param) from None
        return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


def _within(value: int, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


class _Commands(TyperGroup):
    """The root group: lists `COMMANDS` from the table, loads one only to run it."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)  # cached: converted once
        _plainly([option])
        return option

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
