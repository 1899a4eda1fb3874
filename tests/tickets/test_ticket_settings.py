"""`[tickets.<name>]` in foureyes.toml: read by Settings.load, the token from its file or
variable (never inline in the file's diagnosis), bad tables refused with a one-line reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.connectors.tickets_http import HttpTicketSystem
from foureyes.connectors.tickets_rt import RtTicketSystem
from foureyes.connectors.tickets_setup import create_ticket_system, open_ticket_systems
from foureyes.errors import BadInput

TOKEN = "1-27-abcdef0123456789"


def load(root: Path, tables: str) -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    (root / "foureyes.toml").write_text(tables, encoding="utf-8")
    return Settings.load(root, env={})


def test_rt_and_http_tables_open_their_systems(tmp_path: Path) -> None:
    token_file = tmp_path / "rt.token"
    token_file.write_text(TOKEN + "\n")
    settings = load(
        tmp_path / "data",
        f"""
[tickets.rt]
kind = "rt"
url = "https://rt.example.org"
token_file = "{token_file}"
open_statuses = ["new", "open", "stalled"]

[tickets.desk]
kind = "http"
url = "https://tickets.example/api"
token_env = "DESK_TOKEN"
""",
    )
    systems = open_ticket_systems(settings.tickets, env={"DESK_TOKEN": "desk-secret"})
    assert isinstance(systems["rt"], RtTicketSystem)
    assert isinstance(systems["desk"], HttpTicketSystem)
    assert TOKEN not in repr(settings)
    assert TOKEN not in repr(systems)
    assert "desk-secret" not in repr(systems)


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('kind = "jira"\nurl = "https://x"', "unknown kind 'jira'"),
        ('kind = "rt"\nurl = "https://x"\ntoken_env = "NOT_SET"', "token_env"),
        ('kind = "rt"\nurl = "https://x"', "token"),
        ('kind = "rt"\nurl = "https://x"\ntoken_file = "/nonexistent/t"', "token_file"),
    ],
)
def test_bad_tables_are_refused_with_the_reason(tmp_path: Path, table: str, reason: str) -> None:
    settings = load(tmp_path / "data", f"[tickets.rt]\n{table}\n")
    with pytest.raises(BadInput, match=reason):
        open_ticket_systems(settings.tickets, env={})


def test_a_relative_token_file_is_read_from_the_data_directory_never_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token_file = "rt.token"` is the data directory's file, as every other `*_file`; a file
    of that name in the directory foureyes is started from is never read."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "rt.token").write_text(TOKEN + "\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "rt.token").write_text("1-1-planted-by-someone-else\n")
    monkeypatch.chdir(elsewhere)
    settings = load(
        data, '[tickets.rt]\nkind = "rt"\nurl = "https://rt.example"\ntoken_file = "rt.token"\n'
    )
    system = open_ticket_systems(settings.tickets, env={})["rt"]
    assert isinstance(system, RtTicketSystem)
    assert system._headers["Authorization"] == f"token {TOKEN}"
    (data / "rt.token").unlink()
    with pytest.raises(BadInput) as missing:
        open_ticket_systems(settings.tickets, env={})
    assert str(missing.value).startswith("tickets.rt option token_file: ")
    assert "connector" not in str(missing.value)


@pytest.mark.parametrize("kind", ["rt", "http"])
@pytest.mark.parametrize(
    "url",
    [
        "http://rt.example.org",
        "http://10.1.2.3:8080",
        "HTTP://rt.example.org",
        "http://127.0.0.1.nip.example",
        "http://[2001:db8::1]/rt",
        "https://user:pw@rt.example.org",
        "https://",
    ],
)
def test_a_token_never_goes_over_plain_http_off_this_machine(kind: str, url: str) -> None:
    with pytest.raises(BadInput, match=f"tickets.{kind}: url") as refused:
        create_ticket_system(kind, kind, {"url": url, "token": TOKEN})
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:80"])
def test_plain_http_to_this_machine_is_allowed(url: str) -> None:
    assert create_ticket_system("rt", "rt", {"url": url, "token": TOKEN}).name == "rt"
