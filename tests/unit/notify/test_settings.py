"""`[notify.<channel>]` tables in foureyes.toml, and the channels built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.errors import BadInput
from foureyes.notify import (
    EmailChannel,
    MatrixChannel,
    SlackChannel,
    WebhookChannel,
    channels_from_settings,
)

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


def test_a_missing_secret_variable_names_the_option_never_the_value(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hmac").write_text("k")
    loaded = settings(tmp_path, CONFIG)
    with pytest.raises(BadInput, match="not the name of a set environment variable") as refused:
        channels_from_settings(loaded.notify, {})
    # The value given may be the secret itself, pasted where a variable's name belongs.
    assert "TEST_SLACK_URL" not in str(refused.value)
    # The error names the notify option it is about, never a "connector option".
    assert "notify.ops option url_env" in str(refused.value)
    assert "connector" not in str(refused.value)


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


CHAT = """
[notify.room]
kind = "matrix"
homeserver = "https://matrix.example.org"
room_id = "!approvals:example.org"
token_file = "secrets/matrix-bot"
base_url = "https://foureyes.example.org"

[notify.slack-bot]
kind = "slack"
token_env = "TEST_SLACK_BOT"
channel_id = "C024BE7LH"
"""


def test_chat_channels_are_built_with_their_tokens(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "matrix-bot").write_text("syt_bot_token\n")
    loaded = settings(tmp_path, CHAT)
    assert "syt_bot_token" not in repr(loaded.notify)
    channels = channels_from_settings(loaded.notify, {"TEST_SLACK_BOT": "xoxb-bot"})
    assert channels["room"] == MatrixChannel(
        "room",
        "https://matrix.example.org",
        "!approvals:example.org",
        "syt_bot_token",
        base_url="https://foureyes.example.org",
    )
    assert channels["slack-bot"] == SlackChannel(
        "slack-bot", token="xoxb-bot", channel_id="C024BE7LH"
    )
    assert "xoxb-bot" not in repr(channels)
    assert "syt_bot_token" not in repr(channels)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'kind = "matrix"\nhomeserver = "https://m"\nroom_id = "!r:m"',
            "needs homeserver, room_id",
        ),
        ('kind = "matrix"\nroom_id = "!r:m"\ntoken_env = "T"', "needs homeserver"),
        (
            'kind = "matrix"\nhomeserver = "https://m"\nroom_id = "#alias:m"\ntoken_env = "T"',
            "room_id",
        ),
        (
            'kind = "matrix"\nhomeserver = "https://m"\nroom_id = "!r:m"\ntoken = "syt_inline"',
            "a bot token is a secret",
        ),
        ('kind = "slack"\ntoken_env = "T"', "needs channel_id"),
        ('kind = "slack"\nurl_env = "U"\ntoken_env = "T"\nchannel_id = "C1"', "not both"),
        ('kind = "webhook"\nurl = "https://x"\nsecret_env = "S"\ntoken_env = "T"', "chat channel"),
        ('kind = "email"\nsmtp_host = "h"\nsmtp_from = "f"\nchannel_id = "C1"', "slack channel"),
    ],
)
def test_bad_chat_tables_are_diagnosed(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        settings(tmp_path, f"[notify.x]\n{table}\n")
    assert "syt_inline" not in str(caught.value)


@pytest.mark.parametrize(
    "table",
    [
        'kind = "matrix"\nhomeserver = "http://matrix.example.org"\nroom_id = "!r:m"\n'
        'token_env = "T"',
        'kind = "matrix"\nhomeserver = "http://10.0.0.5:8008"\nroom_id = "!r:m"\ntoken_env = "T"',
        'kind = "matrix"\nhomeserver = "http://[2001:db8::1]"\nroom_id = "!r:m"\ntoken_env = "T"',
        'kind = "matrix"\nhomeserver = "http://127.0.0.1.evil.example"\nroom_id = "!r:m"\n'
        'token_env = "T"',
        'kind = "slack"\ntoken_env = "T"\nchannel_id = "C1"\napi_url = "http://slack.example"',
        'kind = "slack"\ntoken_env = "T"\nchannel_id = "C1"\napi_url = "http://localhost.evil"',
    ],
)
def test_a_bot_token_never_goes_over_plain_http_off_this_machine(
    tmp_path: Path, table: str
) -> None:
    with pytest.raises(BadInput, match="must be an https URL"):
        settings(tmp_path, f"[notify.x]\n{table}\n")


@pytest.mark.parametrize("host", ["127.0.0.1:8008", "localhost:8008", "[::1]:8008"])
def test_plain_http_to_this_machine_is_allowed_for_chat(tmp_path: Path, host: str) -> None:
    loaded = settings(
        tmp_path,
        f'[notify.x]\nkind = "matrix"\nhomeserver = "http://{host}"\nroom_id = "!r:m"\n'
        'token_env = "T"\n',
    )
    assert channels_from_settings(loaded.notify, {"T": "syt_t"})["x"]


@pytest.mark.parametrize(
    "hook", ["http://hooks.slack.example/services/T/B/secret", "ftp://x/secret", "secret"]
)
def test_a_slack_hook_url_over_plain_http_is_refused_never_quoted(
    tmp_path: Path, hook: str
) -> None:
    loaded = settings(tmp_path, '[notify.x]\nkind = "slack"\nurl_env = "U"\n')
    with pytest.raises(BadInput, match="must be an https URL") as refused:
        channels_from_settings(loaded.notify, {"U": hook})
    assert "secret" not in str(refused.value).replace("its secret", "")
