"""What every command shares: the error-to-diagnosis wrapper and opening a running foureyes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from foureyes import notify
from foureyes.config import Settings
from foureyes.errors import FoureyesError, Unauthenticated
from foureyes.policy.sandbox import Budget
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.services import Actor, Services
from foureyes.workflow.webauthn import RelyingParty

err = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="The data directory (default: $FOUREYES_DATA_DIR or ./foureyes-data)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="FOUREYES_TOKEN",
        help="Your own token (or FOUREYES_TOKEN).",
        show_default=False,
    ),
]


def diagnosed(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a FoureyesError into a one-line diagnosis and exit code 2."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FoureyesError as exc:
            err.print(f"foureyes: {exc.message}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return run


def services_for(settings: Settings) -> Services:
    """Assemble foureyes from its settings (connectors, notification channels, who oversees)."""
    notify.configure(notify.channels_from_settings(settings.notify))
    database = Database(settings.database_url)
    connectors = {
        name: (connector.kind, connector.resolved())
        for name, connector in settings.connectors.items()
    }
    return operations.build_services(
        database,
        connectors=connectors,
        origin=settings.log_origin,
        relying_party=RelyingParty.from_settings(settings.webauthn),
        oversight_groups=frozenset(settings.access.oversight_groups),
        credential_cooldown=settings.step_up.cooldown_delta,
        policy_check=Budget(**settings.policy_check.model_dump()),
        execution_lease=settings.execution_lease_delta,
    )


def open_services(
    data_dir: Path | None, token: str | None, *, authenticate: bool = True
) -> tuple[Services, Actor]:
    """The services for the data directory, and the person the token belongs to."""
    services = services_for(Settings.load(data_dir))
    if not authenticate:
        return services, None  # type: ignore[return-value]
    if not token:
        raise Unauthenticated("give your token with --token or FOUREYES_TOKEN")
    return services, operations.authenticate(services, token)
