"""`foureyes init`: create a data directory, its keys and database, and load the first policy
and staff directory (the only time they load without approval)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from foureyes.bootstrap import services_for
from foureyes.commands.migration import migrating
from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.progress import reporting
from foureyes.config import Settings
from foureyes.core.services import Services
from foureyes.datadir import initialize
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.workflow import operations

__all__ = ["register", "seed_from_files"]

out = Console(highlight=False)


def init_cmd(
    data_dir: DataDirOpt = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="The first policy (default: the demo's).")
    ] = None,
    staff: Annotated[
        Path | None,
        typer.Option("--staff", help="The first staff directory (default: the demo's)."),
    ] = None,
) -> None:
    """Create the data directory, keys and database, and load the first policy and staff
    directory (the only time they load without approval: on an empty database)."""
    root = data_dir or Path(os.environ.get("FOUREYES_DATA_DIR", "foureyes-data"))

    with reporting() as shown:

        def seed(database: Database) -> None:
            shown.step("loading the first policy and staff directory…")
            settings = Settings.load(root)
            seed_from_files(services_for(settings), settings, root)

        report = initialize(
            root,
            policy_file=policy,
            staff_file=staff,
            database_url=os.environ.get("FOUREYES_DATABASE_URL"),
            owner_database_url=os.environ.get("FOUREYES_OWNER_DATABASE_URL") or None,
            seed=seed,
            migrating=lambda to, n: shown.step(migrating(to, n)),
        )
    out.print(f"foureyes initialised in {report.data_dir}")
    out.print(f"  database: {report.database_url}", markup=False)
    out.print(f"  policy:   {report.policy_file}")
    out.print(f"  staff:    {report.staff_file}")
    out.print(f"  log key:  {report.verifier_key}", markup=False)
    if report.roles:
        out.print(f"  roles:    {report.roles}", markup=False, soft_wrap=True)


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
