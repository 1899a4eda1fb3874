"""`foureyes init`: create a data directory, its keys and database, set up the platform's
connector (`foureyes.commands.connector_setup`: from flags, or asked in a terminal; checked to
answer before anything is written), and load the first policy and staff directory (the only
time they load without approval)."""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from foureyes.bootstrap import services_for
from foureyes.commands.connector_setup import (
    Plan,
    check,
    connector_differences,
    gather,
    remove,
    write_secrets,
)
from foureyes.commands.migration import migrating
from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.private_files import private_contents, private_database, private_dir
from foureyes.commands.progress import reporting
from foureyes.config import CONFIG_FILE, Settings
from foureyes.core.services import Services
from foureyes.datadir import EXAMPLE_POLICY, InitReport, initialize
from foureyes.errors import BadInput
from foureyes.policy.directory import load_directory
from foureyes.policy.ticket_systems import UnconfiguredTicketSystem, unconfigured
from foureyes.store.database import Database
from foureyes.workflow import operations

__all__ = ["register", "seed_from_files"]

out = Console(highlight=False)


def interactive() -> bool:
    """Whether to ask for what the flags leave out: only when a person is at a terminal."""
    return sys.stdin.isatty()


def _ask(question: str, default: str | None, hidden: bool) -> str:
    answer = typer.prompt(question, default=default, hide_input=hidden, show_default=not hidden)
    return str(answer)


def init_cmd(
    data_dir: DataDirOpt = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="The first policy (default: the demo's, for demo only)."),
    ] = None,
    staff: Annotated[
        Path | None,
        typer.Option("--staff", help="The first staff directory (default: the demo's)."),
    ] = None,
    connector: Annotated[
        str | None,
        typer.Option(
            "--connector",
            help="The connector kind: demo, synapse, http, … (default: demo; asked in a terminal).",
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option("--platform", help="The platform's name, its accounts' prefix (e.g. matrix)."),
    ] = None,
    options: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="A connector option, key=value (secrets as token_file=PATH or token_env=VAR).",
        ),
    ] = [],  # noqa: B006 - typer's way of a repeated option
    skip_check: Annotated[
        bool,
        typer.Option("--skip-check", help="Do not check that the platform can be reached."),
    ] = False,
) -> None:
    """Create the data directory, keys and database, set up the platform's connector
    (checked to answer), and load the first policy and staff directory (the only time they
    load without approval: on an empty database).

    The connector comes from --connector, --platform and --set (asked for in a terminal;
    elsewhere, what is missing is an error). Nothing is written unless the platform answers
    (--skip-check to set up anyway) and the policy compiles against its connector."""
    root = (data_dir or Path(os.environ.get("FOUREYES_DATA_DIR", "foureyes-data"))).absolute()
    ask = _ask if interactive() else None
    plan = gather(connector, platform, options, ask)
    if policy is None and plan.setup.policy is not None:
        if ask is None:
            raise BadInput(
                f"a {plan.setup.kind} set-up needs its own policy: --policy FILE "
                f"(e.g. {plan.setup.policy})"
            )
        policy = Path(ask("policy file", plan.setup.policy, False))
    policy_text = _policy_text(policy)
    if (root / CONFIG_FILE).exists():
        # A re-run never keeps other connector settings silently, nor replaces them: it
        # refuses, naming what differs (the file is the operator's; edit it deliberately).
        existing = Settings.load(root)
        differs = connector_differences(existing.connectors, plan, root)
        if differs:
            raise BadInput(
                f"{root / CONFIG_FILE} exists and differs from this init's {plan.setup.kind} "
                f"connector {plan.platform}: {'; '.join(differs)}. Nothing was written: edit "
                "it, or init another --data-dir"
            )
    check(
        plan,
        policy_text,
        staff,
        probe=not skip_check,
        policy_name="" if policy is None else policy.name,
    )

    made_root = not root.exists()
    if made_root:
        root.mkdir(mode=0o700, parents=True)
        root.chmod(0o700)
    else:
        private_dir(root)
        private_contents(root)
    secrets = write_secrets(plan, root)
    gaps: list[UnconfiguredTicketSystem] = []  # the first policy's ticket systems not set up
    # Whatever init makes (the database, its journal, keys) is for foureyes' user alone.
    old_umask = os.umask(0o077)
    try:
        with reporting() as shown:

            def seed(database: Database) -> None:
                shown.step("loading the first policy and staff directory…")
                settings = Settings.load(root)
                services = services_for(settings)
                seed_from_files(services, settings, root)
                with services.database.read() as session:
                    _, first = services.policy_in_force(session)
                gaps.extend(unconfigured(first, settings.tickets))

            report = initialize(
                root,
                policy_file=policy,
                staff_file=staff,
                database_url=os.environ.get("FOUREYES_DATABASE_URL"),
                owner_database_url=os.environ.get("FOUREYES_OWNER_DATABASE_URL") or None,
                seed=seed,
                migrating=lambda to, n: shown.step(migrating(to, n)),
                connectors={plan.platform: plan.table},
            )
    except BaseException:
        remove(secrets)
        if made_root and not any(root.iterdir()):
            root.rmdir()
        raise
    finally:
        os.umask(old_umask)
    private_database(report.database_url)
    _summary(report, plan, gaps)


def _summary(report: InitReport, plan: Plan, gaps: list[UnconfiguredTicketSystem]) -> None:
    out.print(f"foureyes initialised in {report.data_dir}")
    out.print(f"  database: {report.database_url}", markup=False)
    out.print(f"  policy:   {report.policy_file}")
    out.print(f"  staff:    {report.staff_file}")
    out.print(f"  platform: {plan.platform} ({plan.setup.kind}, {plan.checked})", markup=False)
    out.print(f"  log key:  {report.verifier_key}", markup=False)
    if report.roles:
        out.print(f"  roles:    {report.roles}", markup=False, soft_wrap=True)
    for gap in gaps:  # `init` writes no [tickets.*]: the operator adds them (docs/tickets.md)
        out.print(f"warn {gap.describe()}", markup=False, soft_wrap=True)


def _policy_text(policy: Path | None) -> str:
    """The first policy's text: the given file, or the packaged demo policy."""
    if policy is None:
        return (files("foureyes") / "examples" / EXAMPLE_POLICY).read_text(encoding="utf-8")
    try:
        return policy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise BadInput(f"policy file {policy}: cannot read it: {reason}") from None


def seed_from_files(services: Services, settings: Settings, root: Path) -> None:
    """Load the data directory's first policy and staff directory (and the demo accounts the
    staff file carries) into an empty store."""
    directory = load_directory(settings.staff_file or root / "staff.yaml")
    operations.seed(
        services,
        policy_text=Path(settings.policy_file or root / "policy.yaml").read_text(),
        directory=directory,
        demo_accounts=list(directory.accounts),
    )


def register(app: typer.Typer) -> None:
    """Mount `foureyes init` on the main app."""
    app.command("init")(diagnosed(init_cmd))
