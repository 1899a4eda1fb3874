"""What every command shares: its options (`--data-dir`, `--token`), the error-to-diagnosis
wrapper, and opening the data directory an operator command names."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError, Unauthenticated
from foureyes.workflow import operations

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
