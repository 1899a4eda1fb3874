"""Operator commands find their data directory, or name the one that is missing: after
`foureyes serve --demo` (which keeps its data in ./foureyes-demo), `foureyes staff token`
run in the same directory finds the demo's."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.config import Settings

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": None, "FOUREYES_DATABASE_URL": None}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_without_a_data_directory_the_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("staff", "token", "c-1001")
    assert code == 2
    assert err.count("\n") == 1
    assert f"there is no data directory {tmp_path / 'foureyes-data'}" in err
    assert "foureyes-demo" in err  # where `serve --demo` keeps its data
    assert "database is unavailable" not in err
    assert list(tmp_path.iterdir()) == []  # and nothing was made


def test_the_demo_data_directory_is_found_when_there_is_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("init", "--data-dir", "foureyes-demo")  # as `serve --demo` makes it
    assert code == 0, err
    assert Settings.load(env={}).data_dir == tmp_path / "foureyes-demo"
    code, out, err = run("staff", "token", "c-1001")
    assert code == 0, err
    assert out.strip().startswith("fey_")


def test_foureyes_data_wins_over_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "foureyes-demo").mkdir()
    (tmp_path / "foureyes-demo" / "foureyes.toml").write_text("")
    (tmp_path / "foureyes-data").mkdir()
    assert Settings.load(env={}).data_dir == tmp_path / "foureyes-data"
    env = {"FOUREYES_DATA_DIR": str(tmp_path / "elsewhere")}
    assert Settings.load(env=env).data_dir == tmp_path / "elsewhere"


def test_the_demo_is_never_taken_silently_nor_served_for_want_of_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack run: with ./foureyes-data missing (a symlink to a volume not mounted), a plain
    `foureyes serve` served the demo's data, whose people's tokens and keys are on disk."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run("init", "--data-dir", "foureyes-demo")
    assert code == 0, err
    code, _, err = run("staff", "token", "c-1001")
    assert code == 0, err
    assert "using the demo's ./foureyes-demo" in err  # said, not silent
    code, _, err = run("serve", "--port", "0")
    assert code == 2
    assert "./foureyes-demo is the demo's: serve it with --demo" in err
    (tmp_path / "foureyes-data").symlink_to(tmp_path / "not-mounted")
    assert Settings.load(env={}).data_dir == tmp_path / "foureyes-data"
    code, _, err = run("staff", "token", "c-1001")
    assert code == 2
    assert "there is no data directory" in err
