"""The `foureyes` command run in-process on a data directory, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from foureyes.cli import app

runner = CliRunner()


def run(data_dir: Path, *args: str, token: str | None = None) -> tuple[int, str, str]:
    """`foureyes ARGS` with FOUREYES_DATA_DIR (and FOUREYES_TOKEN); exit code, stdout, stderr."""
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": str(data_dir)}
    if token:
        env["FOUREYES_TOKEN"] = token
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def initialised(tmp_path: Path) -> Path:
    """A data directory that `foureyes init` made."""
    root = tmp_path / "data"
    code, out, err = run(root, "init")
    assert code == 0, err
    assert "foureyes initialised" in out
    return root
