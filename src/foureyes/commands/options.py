"""What every command shares: its options (`--data-dir`, `--token`) and the error-to-diagnosis
wrapper. Nothing heavy: the staff's HTTP commands import it and must start at once."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from foureyes.commands.safe_text import printable
from foureyes.errors import FoureyesError

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
            # Escaped: a message may quote a file name, a login or a value from outside.
            err.print(f"foureyes: {printable(exc.message)}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return run
