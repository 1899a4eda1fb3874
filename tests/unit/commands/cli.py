"""The `foureyes` command run in-process on a data directory, for the CLI tests; and the staff
commands run as clients of a foureyes server, with no database setting at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from foureyes.bootstrap import create_app, services_for
from foureyes.cli import app
from foureyes.config import Settings
from tests.http_server import serving_app

runner = CliRunner()


def run(data_dir: Path, *args: str, token: str | None = None) -> tuple[int, str, str]:
    """`foureyes ARGS` with FOUREYES_DATA_DIR (and FOUREYES_TOKEN); exit code, stdout, stderr."""
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": str(data_dir)}
    if token:
        env["FOUREYES_TOKEN"] = token
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def run_client(
    server: str | None,
    nowhere: Path,
    *args: str,
    token: str | None = None,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    """`foureyes ARGS` against FOUREYES_SERVER=`server` (unset when None) with FOUREYES_TOKEN,
    and no database: FOUREYES_DATABASE_URL unset, FOUREYES_DATA_DIR the empty `nowhere`."""
    env: dict[str, str | None] = {
        "COLUMNS": "250",
        "FOUREYES_DATA_DIR": str(nowhere),
        "FOUREYES_DATABASE_URL": None,
        "FOUREYES_SERVER": server,
        "FOUREYES_TOKEN": token,
    }
    result = runner.invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


@contextmanager
def serving_data_dir(data_dir: Path) -> Iterator[str]:
    """The foureyes of `data_dir` served over HTTP (as `foureyes serve` would, without the
    worker) until the block ends; yields its base URL."""
    settings = Settings.load(data_dir)
    services = services_for(settings)
    try:
        with serving_app(create_app(services, settings)) as base:
            yield base
    finally:
        services.database.dispose()


def initialised(tmp_path: Path) -> Path:
    """A data directory that `foureyes init` made."""
    root = tmp_path / "data"
    code, out, err = run(root, "init")
    assert code == 0, err
    assert "foureyes initialised" in out
    return root
