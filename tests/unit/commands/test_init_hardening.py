"""Attacks on `foureyes init` from the #18 attack run: a `secrets/` symlink planted to catch the
typed credentials, a data directory and database left readable by every local user, a secret
pasted where a file's path belongs echoed back, and a re-run with other connector settings that
silently kept the old ones."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from foureyes.commands import init
from foureyes.config import ConnectorSettings
from foureyes.errors import BadInput
from tests.unit.commands.test_init_connectors import MATRIX_POLICY, SECRET, nowhere, one_line, run


def _typed_synapse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """`init` in a terminal, the Synapse token typed at the prompt."""
    monkeypatch.setattr(init, "interactive", lambda: True)
    answers = f"synapse\nmatrix\n{nowhere()}\n{SECRET}\nmatrix.test\n"
    return run(tmp_path, "--policy", MATRIX_POLICY, "--skip-check", stdin=answers)


@pytest.mark.parametrize("dangling", [False, True], ids=["to a directory", "dangling"])
def test_a_secrets_symlink_is_refused_and_the_secret_never_lands_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dangling: bool
) -> None:
    elsewhere = tmp_path / "world-readable"
    if not dangling:
        elsewhere.mkdir(mode=0o755)
    data = tmp_path / "d"
    data.mkdir(mode=0o700)
    (data / "secrets").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = _typed_synapse(tmp_path, monkeypatch)
    assert code == 2
    assert "symbolic link" in one_line(err)
    assert SECRET not in err
    if not dangling:
        assert list(elsewhere.iterdir()) == []
    assert not (data / "foureyes.toml").exists()


def test_a_secret_file_symlink_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link where the secret's file goes (pointing at a file someone else reads, or at a
    path that does not exist yet): refused, nothing written through it."""
    target = tmp_path / "catch"
    secrets = tmp_path / "d" / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    (secrets / "matrix-token").symlink_to(target)  # dangling: O_CREAT alone would follow it
    code, _, err = _typed_synapse(tmp_path, monkeypatch)
    assert code == 2
    assert "matrix-token is a symbolic link" in one_line(err)
    assert not target.exists()


def test_an_existing_loose_secrets_dir_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "d" / "secrets"
    secrets.mkdir(parents=True)
    secrets.chmod(0o755)
    code, _, err = _typed_synapse(tmp_path, monkeypatch)
    assert code == 0, err
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets / "matrix-token").stat().st_mode) == 0o600


def test_an_existing_data_dir_and_the_database_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    data.chmod(0o755)
    old = os.umask(0o022)  # an ordinary shell's umask: files would be 0644
    try:
        code, _, err = run(tmp_path)
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    databases = [p for p in data.iterdir() if p.suffix == ".db" or ".db-" in p.name]
    assert databases, list(data.iterdir())
    for path in databases:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.parametrize("option", ["token_file", "token_env"])
def test_a_secret_pasted_where_a_file_or_variable_belongs_is_never_echoed(
    tmp_path: Path, option: str
) -> None:
    code, out, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--policy",
        MATRIX_POLICY,
        "--set",
        f"url={nowhere()}",
        "--set",
        f"{option}={SECRET}",
        "--set",
        "server_name=matrix.test",
    )
    assert code == 2
    line = one_line(err)
    assert f"the value given for connector option {option} is not" in line
    assert SECRET not in err + out
    assert SECRET[:12] not in err + out
    assert not (tmp_path / "d").exists()


def test_the_settings_never_echo_a_pasted_secret_either() -> None:
    for option in ("token_file", "token_env"):
        settings = ConnectorSettings(kind="synapse", options={option: SECRET})
        with pytest.raises(BadInput) as refused:
            settings.resolved(env={})
        assert SECRET not in refused.value.message


def test_a_rerun_with_other_connector_settings_is_refused_naming_what_differs(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    first_url, second_url = nowhere(), nowhere()
    common = ["--connector", "synapse", "--policy", MATRIX_POLICY, "--skip-check"]
    token_set = ["--set", f"token_file={token}", "--set", "server_name=matrix.test"]
    code, _, err = run(tmp_path, *common, "--set", f"url={first_url}", *token_set)
    assert code == 0, err
    config = tmp_path / "d" / "foureyes.toml"
    before = config.read_text()

    code, _, err = run(tmp_path, *common, "--set", f"url={second_url}", *token_set)
    assert code == 2
    line = one_line(err)
    assert "[connectors.matrix] has other url" in line
    assert second_url not in line
    assert SECRET not in line
    assert config.read_text() == before
    assert tomllib.loads(before)["connectors"]["matrix"]["url"] == first_url

    # Another platform altogether: named too.
    code, _, err = run(tmp_path, "--connector", "demo", "--platform", "chirp", "--skip-check")
    assert code == 2
    assert "names no [connectors.chirp]" in one_line(err)
    assert config.read_text() == before


def test_what_an_existing_data_dir_holds_is_checked_before_init_uses_it(tmp_path: Path) -> None:
    # Attack run 2: a data directory open to others can hold a planted `keys` symlink to a
    # directory of the attacker's (with a console key they know in it), or a loose key.
    data = tmp_path / "d"
    data.mkdir()
    data.chmod(0o777)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "console.key").write_text("k" * 64)
    (data / "keys").symlink_to(theirs)
    code, _, err = run(tmp_path)
    assert code != 0
    assert "keys is a symbolic link" in one_line(err)
    assert sorted(p.name for p in theirs.iterdir()) == ["console.key"]  # no log.key written there

    (data / "keys").unlink()
    (data / "keys").mkdir()
    (data / "keys" / "console.key").write_text("k" * 64)
    (data / "keys" / "console.key").chmod(0o644)
    code, _, err = run(tmp_path)
    assert code != 0
    assert "may have been copied" in one_line(err)

    (data / "keys" / "console.key").unlink()
    (data / "keys").chmod(0o777)
    code, _, err = run(tmp_path)
    assert code == 0, err
    assert stat.S_IMODE((data / "keys").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "given",
    [SECRET, f"ca_path={SECRET}"],
    ids=["--set without =", "ca_path"],
)
def test_a_secret_pasted_into_another_setting_is_never_echoed(tmp_path: Path, given: str) -> None:
    """Attack run 2: `--set <secret>` (no `=`) and `--set ca_path=<secret>` printed it."""
    token = tmp_path / "token"
    token.write_text(SECRET)
    code, out, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--policy",
        MATRIX_POLICY,
        "--set",
        f"url={nowhere()}",
        "--set",
        f"token_file={token}",
        "--set",
        "server_name=matrix.test",
        "--set",
        given,
    )
    assert code == 2
    one_line(err)
    assert SECRET not in err + out
    assert SECRET[:12] not in err + out
