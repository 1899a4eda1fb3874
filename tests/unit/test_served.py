"""The WebAuthn relying party follows the port a server serves on (`foureyes.config.served`;
issue #19: `serve --demo --port 8650` refused every key, expecting port 8400's origin), and
never widens what an operator's `[webauthn]` table says."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes import server
from foureyes.config import Settings
from foureyes.config.served import SERVED_PORT_ENV, as_served, is_local


def test_without_a_webauthn_table_the_one_origin_is_the_port_served(tmp_path: Path) -> None:
    settings = as_served(Settings.load(tmp_path, env={}), 8650)
    assert settings.webauthn.rp_id == "localhost"
    assert settings.webauthn.origins == ["http://localhost:8650"]
    # Port 8400's origin, the table's default, is not accepted on another port.
    assert "http://localhost:8400" not in settings.webauthn.origins


def test_an_operators_webauthn_table_stands_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "foureyes.toml").write_text(
        '[webauthn]\nrp_id = "example.org"\norigins = ["https://foureyes.example.org"]\n'
    )
    settings = as_served(Settings.load(tmp_path, env={}), 8650)
    assert settings.webauthn.rp_id == "example.org"
    assert settings.webauthn.origins == ["https://foureyes.example.org"]


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", True),  # every address: localhost among them
        ("::", True),
        ("192.168.1.5", False),
        ("foureyes.example.org", False),
        ("localhost.example.org", False),
    ],
)
def test_which_hosts_answer_at_localhost(host: str, local: bool) -> None:
    assert is_local(host) is local


def test_the_serving_processes_of_workers_follow_the_port_they_are_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --workers N` hands its processes the port it bound (FOUREYES_SERVED_PORT): they
    load the same relying party as the process that bound it."""
    monkeypatch.setenv("FOUREYES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(SERVED_PORT_ENV, "8650")
    assert server._served_settings().webauthn.origins == ["http://localhost:8650"]
    monkeypatch.delenv(SERVED_PORT_ENV)
    assert server._served_settings().webauthn.origins == ["http://localhost:8400"]
