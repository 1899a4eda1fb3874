"""`[tickets.<name>]` in foureyes.toml: read by Settings.load, the token from its file or
variable (never inline in the file's diagnosis), bad tables refused with a one-line reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.connectors.tickets_http import HttpTicketSystem
from foureyes.connectors.tickets_rt import RtTicketSystem
from foureyes.connectors.tickets_setup import open_ticket_systems
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
