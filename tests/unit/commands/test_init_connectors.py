"""`foureyes init` for every connector: from flags (or asked, in a terminal), the platform
checked to answer and the policy to compile before anything is written, secrets never in
`foureyes.toml`. (Against a real homeserver: tests/e2e/test_operator_path.py.)"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.commands import init
from foureyes.connectors.setup import ConnectorSetup, installed_kinds, setup_for
from foureyes.errors import BadInput
from tests.conftest import EXAMPLES
from tests.http_server import free_port

runner = CliRunner()
MATRIX_POLICY = str(EXAMPLES / "matrix-policy.yaml")
SECRET = "syt_Zm91cmV5ZXM_not-a-real-admin-token"


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": None, "FOUREYES_DATABASE_URL": None}
    result = runner.invoke(
        app, ["init", "--data-dir", str(tmp_path / "d"), *args], env=env, input=stdin
    )
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("foureyes: ")
    assert "Traceback" not in err
    return err


def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_every_registered_kind_has_a_setup_and_unknown_kinds_are_named() -> None:
    assert {"demo", "synapse", "http"} <= set(installed_kinds())
    for kind in installed_kinds():
        assert isinstance(setup_for(kind), ConnectorSetup)
    with pytest.raises(BadInput, match="unknown connector kind 'nope'"):
        setup_for("nope")


def test_without_a_terminal_what_is_missing_is_one_line_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    code, _, err = run(tmp_path, "--connector", "synapse", "--policy", MATRIX_POLICY)
    assert code == 2
    assert "needs url, token_file or token_env" in one_line(err)
    assert not (tmp_path / "d").exists()


def test_a_secret_on_the_command_line_is_refused(tmp_path: Path) -> None:
    code, _, err = run(
        tmp_path, "--connector", "synapse", "--set", f"url={nowhere()}", "--set", f"token={SECRET}"
    )
    assert code == 2
    assert "token_file" in one_line(err)
    assert SECRET not in err
    assert not (tmp_path / "d").exists()


def test_a_synapse_set_up_needs_its_own_policy(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    code, _, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--set",
        f"url={nowhere()}",
        "--set",
        f"token_file={token}",
    )
    assert code == 2
    assert "--policy FILE (e.g. examples/matrix-policy.yaml)" in one_line(err)


def test_an_unreachable_platform_is_diagnosed_and_nothing_is_written(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    code, _, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--policy",
        MATRIX_POLICY,
        "--set",
        f"url={nowhere()}",
        "--set",
        f"token_file={token}",
    )
    assert code == 2
    line = one_line(err)
    assert "cannot reach matrix" in line
    assert "nothing was written" in line
    assert SECRET not in err
    assert not (tmp_path / "d").exists()


def test_a_policy_that_does_not_fit_the_connector_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    """The demo's policy speaks of followers; a Matrix homeserver has none."""
    token = tmp_path / "token"
    token.write_text(SECRET)
    code, _, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--skip-check",
        "--set",
        f"url={nowhere()}",
        "--set",
        f"token_file={token}",
    )
    assert code == 2
    assert "has no attribute" in one_line(err)
    assert "--policy examples/matrix-policy.yaml" in err
    assert not (tmp_path / "d").exists()


def test_skip_check_sets_up_synapse_naming_the_token_file_not_the_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    url = nowhere()
    code, out, err = run(
        tmp_path,
        "--connector",
        "synapse",
        "--policy",
        MATRIX_POLICY,
        "--skip-check",
        "--set",
        f"url={url}",
        "--set",
        f"token_file={token}",
        "--set",
        "server_name=matrix.test",
    )
    assert code == 0, err
    assert "platform: matrix (synapse, not checked (--skip-check))" in out
    text = (tmp_path / "d" / "foureyes.toml").read_text()
    assert SECRET not in text
    settings = tomllib.loads(text)
    assert settings["connectors"] == {
        "matrix": {
            "kind": "synapse",
            "url": url,
            "token_file": str(token),
            "server_name": "matrix.test",
        }
    }
    assert "chirp" not in settings["connectors"]


def test_in_a_terminal_init_asks_and_keeps_a_typed_secret_in_a_0600_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init, "interactive", lambda: True)
    url = nowhere()
    # kind, platform name, url, token (hidden), server_name
    answers = f"synapse\nmatrix\n{url}\n{SECRET}\nmatrix.test\n"
    code, out, err = run(tmp_path, "--policy", MATRIX_POLICY, "--skip-check", stdin=answers)
    assert code == 0, err
    assert SECRET not in out
    data = tmp_path / "d"
    text = (data / "foureyes.toml").read_text()
    assert SECRET not in text
    assert tomllib.loads(text)["connectors"]["matrix"]["token_file"] == "secrets/matrix-token"
    secret = data / "secrets" / "matrix-token"
    assert secret.read_text().strip() == SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "secrets").stat().st_mode) == 0o700


def test_the_demo_stays_the_default_without_a_terminal(tmp_path: Path) -> None:
    code, out, err = run(tmp_path)
    assert code == 0, err
    assert "platform: chirp (demo, in foureyes' own database)" in out
    settings = tomllib.loads((tmp_path / "d" / "foureyes.toml").read_text())
    assert settings["connectors"] == {"chirp": {"kind": "demo"}}


def test_an_http_set_up_takes_toml_values(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\ntiers:\n  - {name: standard, when: 'true'}\nrules:\n"
        "  - id: small\n    effect: allow\n    actions: [account.suspend]\n"
        "    when: 'account.followers < 10'\n"
    )
    code, _, err = run(
        tmp_path,
        "--connector",
        "http",
        "--policy",
        str(policy),
        "--skip-check",
        "--set",
        f"url={nowhere()}",
        "--set",
        f"secret_file={secret}",
        "--set",
        'actions=["account.suspend", "account.unsuspend"]',
        "--set",
        'attributes={followers = {type = "int", sensitivity = "public"}}',
    )
    assert code == 0, err
    table = tomllib.loads((tmp_path / "d" / "foureyes.toml").read_text())["connectors"]["shop"]
    assert table["actions"] == ["account.suspend", "account.unsuspend"]
    assert table["attributes"] == {"followers": {"type": "int", "sensitivity": "public"}}


def test_a_typed_secret_never_overwrites_a_file_already_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init, "interactive", lambda: True)
    there = tmp_path / "d" / "secrets" / "matrix-token"
    there.parent.mkdir(parents=True)
    there.write_text("the operator's own\n")
    there.chmod(0o600)
    answers = f"synapse\nmatrix\n{nowhere()}\n{SECRET}\nmatrix.test\n"
    code, _, err = run(tmp_path, "--policy", MATRIX_POLICY, "--skip-check", stdin=answers)
    assert code == 2
    assert "exists already" in err.splitlines()[-1]
    assert there.read_text() == "the operator's own\n"
    assert not (tmp_path / "d" / "foureyes.toml").exists()


def test_a_platform_policy_without_its_connector_says_which_connector_it_is_for(
    tmp_path: Path,
) -> None:
    """The issue's first step: `init --policy examples/matrix-policy.yaml` alone set up the
    demo and failed on `account has no attribute 'admin'`, saying nothing of Matrix."""
    code, _, err = run(tmp_path, "--policy", MATRIX_POLICY)
    assert code == 2
    line = one_line(err)
    assert "matrix-policy.yaml is for --connector synapse" in line
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("name", ["foureyes", "Matrix", "a:b", "with space"])
def test_a_platform_name_that_would_clash_or_break_account_names_is_refused(
    tmp_path: Path, name: str
) -> None:
    code, _, err = run(tmp_path, "--platform", name)
    assert code == 2
    assert "platform name" in one_line(err)
    assert not (tmp_path / "d").exists()
