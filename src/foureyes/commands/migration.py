"""`foureyes migrate`: bring the database's schema to this foureyes' revision, as its owner.

On PostgreSQL `serve` and `worker` connect as a runtime role that cannot change the schema
(`foureyes.store.roles`), so an upgrade of foureyes is: stop them, run `foureyes migrate` with
the owner's URL in FOUREYES_OWNER_DATABASE_URL (it migrates, grants the runtime role of
FOUREYES_DATABASE_URL what the new schema needs, and checks it), start them again. On SQLite,
or with one URL, it migrates with `database_url` (as `serve` does at start).
"""

from __future__ import annotations

import typer
from rich.console import Console

from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.progress import reporting
from foureyes.config import Settings, safe_url
from foureyes.errors import BadInput
from foureyes.store import migrate, roles
from foureyes.store.database import Database

__all__ = ["migrating", "register"]

out = Console(highlight=False)


def migrate_cmd(data_dir: DataDirOpt = None) -> None:
    """Migrate the database (as the owner: FOUREYES_OWNER_DATABASE_URL) and grant the runtime
    role (FOUREYES_DATABASE_URL) its privileges."""
    settings = Settings.load(data_dir)
    owner = Database(settings.migration_database_url)
    try:
        with reporting() as shown:
            migrate.upgrade(owner, progress=lambda to, n: shown.step(migrating(to, n)))
        revision = migrate.current(owner)
        role = roles.role_in_url(settings.database_url)
        if settings.owner_database_url is not None and role is not None:
            roles.grant_runtime(owner, role)
    finally:
        owner.dispose()
    out.print(f"database {safe_url(settings.migration_database_url)} at revision {revision}")
    if settings.owner_database_url is None or role is None:
        return
    runtime = Database(settings.database_url)
    try:
        problem = roles.check_runtime(runtime)
    finally:
        runtime.dispose()
    if problem is not None:
        raise BadInput(f"the runtime role is not safe to serve with: {problem}")
    out.print(f"runtime role {role}: granted, owns nothing, appends to the audit log only")


def migrating(revision: str, migrations: int) -> str:
    """The line announcing an upgrade (on stderr): the revision and how many migrations."""
    plural = "" if migrations == 1 else "s"
    return f"migrating the database to {revision} ({migrations} migration{plural})…"


def register(app: typer.Typer) -> None:
    """Add `migrate` to the `foureyes` command."""
    app.command("migrate")(diagnosed(migrate_cmd))
