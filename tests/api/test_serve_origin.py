"""`foureyes serve` fails closed off loopback (issue #19): without rp_id and origins in a
`[webauthn]` table a server reachable from elsewhere would bind security keys to
http://localhost, an origin nobody chose. It refuses to start, in one line naming the setting;
loopback and the demo still need no setting."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from foureyes import server
from foureyes.auth.webauthn import relying_party
from foureyes.commands import serve

runner = CliRunner()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, list[dict[str, Any]]]:
    """`serve` whose server records how it was called and returns (no port is taken)."""
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, services: Any, **kwargs: Any) -> None:
        calls.append({"services": services, **kwargs})
        services.database.dispose()
        kwargs["sock"].close()

    monkeypatch.setattr(serve, "run", fake_run)
    monkeypatch.setattr(serve, "listen", lambda host, port: socket.socket())
    monkeypatch.setattr(serve, "out", Console(file=io.StringIO(), width=80, highlight=False))
    monkeypatch.delenv("FOUREYES_DATABASE_URL", raising=False)
    typer_app = typer.Typer()
    serve.register(typer_app)

    @typer_app.command("other")
    def other() -> None:
        """Nothing."""

    return typer_app, calls


@pytest.fixture
def root(app: tuple[typer.Typer, list[dict[str, Any]]], tmp_path: Path) -> Path:
    """A data directory (made by the demo), served without --demo from here on."""
    typer_app, calls = app
    made = tmp_path / "data"
    result = runner.invoke(typer_app, ["serve", "--demo", "--data-dir", str(made)])
    assert result.exit_code == 0, result.output
    calls.clear()
    return made


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.0.2.7", "10.1.2.3", "2001:db8::1", "foureyes.example.org"]
)
@pytest.mark.parametrize(
    "table",
    [
        "",  # no [webauthn] table at all
        '\n[webauthn]\nrp_name = "Ops"\n',  # a table that names neither: still the default
        '\n[webauthn]\norigins = ["http://localhost:8400"]\n',  # origins, no rp_id: the default
    ],
)
def test_off_loopback_without_a_named_origin_it_refuses_to_start(
    app: tuple[typer.Typer, list[dict[str, Any]]], root: Path, host: str, table: str
) -> None:
    typer_app, calls = app
    with (root / "foureyes.toml").open("a") as config:
        config.write(table)
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(root), "--host", host])
    assert result.exit_code == 2, result.output
    [diagnosis] = [line for line in result.output.splitlines() if line.strip()]
    assert diagnosis.startswith("foureyes: refusing to listen on ")
    assert "rp_id and origins in a [webauthn] table" in diagnosis
    assert str(root / "foureyes.toml") in diagnosis
    assert calls == []  # nothing served


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "::1"])
def test_loopback_needs_no_setting_and_binds_keys_to_localhost_at_the_port(
    app: tuple[typer.Typer, list[dict[str, Any]]],
    root: Path,
    host: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typer_app, calls = app
    monkeypatch.setattr(serve, "listen", server.listen)  # the real one, on a port it chooses
    result = runner.invoke(
        typer_app, ["serve", "--data-dir", str(root), "--host", host, "--port", "0"]
    )
    assert result.exit_code == 0, result.output
    rp = relying_party(calls[0]["services"])
    assert (rp.id, rp.origins) == ("localhost", (f"http://localhost:{calls[0]['port']}",))


def test_off_loopback_with_a_named_origin_it_serves_that_origin_only(
    app: tuple[typer.Typer, list[dict[str, Any]]], root: Path
) -> None:
    typer_app, calls = app
    with (root / "foureyes.toml").open("a") as config:
        config.write(
            '\n[webauthn]\nrp_id = "example.org"\norigins = ["https://admin.example.org"]\n'
        )
    result = runner.invoke(typer_app, ["serve", "--data-dir", str(root), "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    rp = relying_party(calls[0]["services"])
    assert (rp.id, rp.origins) == ("example.org", ("https://admin.example.org",))


def test_the_demo_still_serves_off_loopback_without_a_setting(
    app: tuple[typer.Typer, list[dict[str, Any]]], root: Path
) -> None:
    """The demo says how its keys work there (its own confirmation); it is never a real server."""
    typer_app, calls = app
    result = runner.invoke(
        typer_app, ["serve", "--demo", "--data-dir", str(root), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
