"""`[notify.<channel>]` tables in foureyes.toml, and the channels built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.errors import BadInput
from foureyes.notify import EmailChannel, SlackChannel, WebhookChannel, channels_from_settings

CONFIG = """
[notify.security]
kind = "webhook"
url = "https://siem.example.org/foureyes"
secret_file = "secrets/hmac"
base_url = "https://foureyes.example.org"

[notify.ops]
kind = "slack"
url_env = "TEST_SLACK_URL"

[notify.mail]
kind = "email"
smtp_host = "smtp.example.org"
smtp_port = 587
smtp_from = "foureyes@example.org"
smtp_to = ["security@example.org"]
starttls = true
username = "foureyes"
password_env = "TEST_SMTP_PASSWORD"
people = true
"""


def settings(tmp_path: Path, text: str) -> Settings:
    (tmp_path / "foureyes.toml").write_text(text)
    return Settings.load(tmp_path, env={})


def test_channels_are_built_with_their_secrets(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hmac").write_text("hmac-key\n")
    loaded = settings(tmp_path, CONFIG)
    assert loaded.notify["security"].secret_file == str(tmp_path / "secrets" / "hmac")
    assert "hook" not in repr(loaded.notify["ops"])
    env = {"TEST_SLACK_URL": "https://hooks.example/T/B/x", "TEST_SMTP_PASSWORD": "pw"}
    channels = channels_from_settings(loaded.notify, env)
    assert channels["security"] == WebhookChannel(
        "security",
        "https://siem.example.org/foureyes",
        "hmac-key",
        base_url="https://foureyes.example.org",
    )
    assert channels["ops"] == SlackChannel("ops", "https://hooks.example/T/B/x")
    mail = channels["mail"]
    assert isinstance(mail, EmailChannel)
    assert (mail.host, mail.port, mail.to, mail.password, mail.people) == (
        "smtp.example.org",
        587,
        ("security@example.org",),
        "pw",
        True,
    )


def test_a_missing_secret_variable_is_named(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hmac").write_text("k")
    loaded = settings(tmp_path, CONFIG)
    with pytest.raises(BadInput, match="TEST_SLACK_URL is not set"):
        channels_from_settings(loaded.notify, {})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "pager"', "notify.x.kind"),
        ('kind = "webhook"\nurl = "https://x"', "needs secret_file or secret_env"),
        ('kind = "slack"', "needs url"),
        ('kind = "email"\nsmtp_host = "h"', "needs smtp_host and smtp_from"),
        ('kind = "slack"\nurl = "https://x"\npeople = true', "only an email channel"),
        ('kind = "slack"\nurl = "https://x"\ncolour = "red"', "unknown key 'notify.x.colour'"),
    ],
)
def test_bad_tables_are_diagnosed(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        settings(tmp_path, f"[notify.x]\n{table}\n")
