"""`foureyes serve` in process, with the server itself replaced: set-up, tokens, refusals."""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from foureyes import server
from foureyes.audit.checkpoint import Signer
from foureyes.commands import serve
from foureyes.config import Settings
from foureyes.workflow import operations

runner = CliRunner()
TOKEN = re.compile(r"fey_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, list[dict[str, Any]]]:
    """A `foureyes` with only `serve`, whose server records how it was called and returns."""
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, services: Any, **kwargs: Any) -> None:
        calls.append({"app": app, "services": services, **kwargs})
        services.database.dispose()
        kwargs["sock"].close()

    monkeypatch.setattr(serve, "run", fake_run)
    # No port is taken (tests run side by side, a developer's server may hold 8400).
    monkeypatch.setattr(serve, "listen", lambda host, port: socket.socket())
    monkeypatch.setattr(serve, "out", Console(file=io.StringIO(), width=80, highlight=False))
    typer_app = typer.Typer()
    serve.register(typer_app)

    @typer_app.command("other")
    def other() -> None:  # a second command, so `serve` is a subcommand as in `foureyes`
        """Nothing."""

    return typer_app, calls


def _printed() -> str:
    file = serve.out.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_demo_sets_up_from_nothing_and_prints_a_token_per_person(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typer_app, calls = app
    monkeypatch.delenv("FOUREYES_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(typer_app, ["serve", "--demo", "--port", "8999"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "foureyes-demo"
    assert (root / serve.DEMO_MARKER).is_file()
    assert sorted(p.name for p in (root / "demo-keys").iterdir())[:2] == [
        "c-1001.pem",
        "c-3004.pem",
    ]
    printed = _printed()
    rows = [line for line in printed.splitlines() if TOKEN.search(line)]
    assert len(rows) == 9  # everyone in the example directory, at 80 columns, uncut
    assert any("e-3002" in row and "Mei Chen" in row and "mei" in row for row in rows)
    assert "foureyes is serving at http://127.0.0.1:8999" in printed
    assert calls[0]["port"] == 8999
    assert calls[0]["host"] == "127.0.0.1"
    assert calls[0]["trusted_proxies"] == ()  # forwarded headers believed from nobody

    # Tokens work, and a second start keeps the data and prints fresh ones.
    services = calls[0]["services"]
    token = TOKEN.search(rows[0])
    assert token is not None
    assert operations.authenticate(services, token.group(0)).id == "c-1001"
    again = runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root)])
    assert again.exit_code == 0, again.output
    assert len(calls) == 2
    tokens = TOKEN.findall(_printed())
    assert len(tokens) == 18
    assert len(set(tokens)) == 18
    assert "Initialised" not in _printed().split("foureyes is serving")[1]


def test_demo_refuses_a_data_directory_it_did_not_make(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    typer_app, calls = app
    root = tmp_path / "demo"
    assert runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root)]).exit_code == 0
    (root / serve.DEMO_MARKER).unlink()
    result = runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root)])
    assert result.exit_code == 2
    assert "not made by `foureyes serve --demo`" in result.output
    assert len(calls) == 1
    # Without --demo it serves that directory, printing no tokens.
    before = len(TOKEN.findall(_printed()))
    assert runner.invoke(typer_app, ["serve", "--data-dir", str(root)]).exit_code == 0
    assert len(TOKEN.findall(_printed())) == before
    assert len(calls) == 2


def test_serve_refuses_a_data_directory_that_was_never_initialised(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    typer_app, calls = app
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "foureyes init" in result.output
    assert calls == []


def test_serve_refuses_a_store_without_a_policy(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    typer_app, calls = app
    settings = Settings.load(tmp_path, env={})
    settings.signing_key_file.parent.mkdir(parents=True)
    settings.signing_key_file.write_text(Signer.generate(settings.log_origin).to_skey() + "\n")
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no policy is loaded" in result.output
    assert calls == []


def test_serve_refuses_an_oidc_client_secret_it_cannot_read(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Found at start, not at the first sign-in: the diagnosis names the setting, not a secret."""
    typer_app, calls = app
    root = tmp_path / "demo"
    assert runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root)]).exit_code == 0
    (root / "foureyes.toml").write_text(
        (root / "foureyes.toml").read_text()
        + '\n[oidc]\nissuer = "https://idp.example"\nclient_id = "foureyes"\n'
        'client_secret_file = "missing-secret"\n'
    )
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(root)])
    assert result.exit_code == 2
    assert "the value given for oidc.client_secret_file is not a readable file" in result.output
    assert "missing-secret" not in result.output  # it may be the secret itself, pasted there
    assert len(calls) == 1  # only the first, before the secret went missing


def test_a_busy_port_is_one_line_and_exit_1_before_anything_says_serving(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: a restart printed "serving at" (and fresh demo tokens) before failing on
    the port its predecessor's processes still held. Now the port is bound first."""
    typer_app, calls = app
    monkeypatch.setattr(serve, "listen", server.listen)  # the real one
    root = tmp_path / "demo"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(
            typer_app, ["serve", "--demo", "--data-dir", str(root), "--port", str(port)]
        )
    assert result.exit_code == 1, result.output
    [diagnosis] = [line for line in result.output.splitlines() if line.strip()]
    assert diagnosis == (
        f"foureyes: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another server using it?)"
    )
    assert "serving at" not in _printed()
    assert TOKEN.search(_printed()) is None  # no tokens handed out for a server that never ran
    assert calls == []


def test_port_0_serves_on_the_port_the_system_chose(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typer_app, calls = app
    monkeypatch.setattr(serve, "listen", server.listen)
    root = tmp_path / "demo"
    result = runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root), "--port", "0"])
    assert result.exit_code == 0, result.output
    [call] = calls
    match = re.search(r"serving at http://127\.0\.0\.1:(\d+)", _printed())
    assert match is not None
    assert int(match.group(1)) > 0
    assert call["port"] == int(match.group(1))


def test_serve_refuses_a_metrics_token_it_cannot_read(
    app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    typer_app, calls = app
    root = tmp_path / "demo"
    assert runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(root)]).exit_code == 0
    with (root / "foureyes.toml").open("a") as config:
        config.write('\nmetrics_token_file = "missing-token"\n')
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(root)])
    assert result.exit_code == 2
    assert "metrics_token_file" in result.output
    assert "serving at" not in _printed().split("Console:")[-1]
    assert len(calls) == 1
