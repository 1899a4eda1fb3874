"""Settings: defaults, foureyes.toml, FOUREYES_* overrides, connectors and their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from foureyes.audit.checkpoint import Signer, signer_from_file
from foureyes.config import ConnectorSettings, Settings, anchor_sqlite, safe_url
from foureyes.errors import BadInput


def write_toml(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "foureyes.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- where settings come from ----------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={})
    assert settings.data_dir == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path}/foureyes.db"
    assert settings.log_origin == "foureyes.local/log"
    assert settings.signing_key_file == tmp_path / "keys" / "log.key"
    assert settings.witness_dir == tmp_path / "witness"
    assert settings.connectors == {}
    assert settings.policy_file is None
    assert settings.staff_file is None
    assert settings.config_file == tmp_path / "foureyes.toml"


def test_the_data_dir_defaults_to_foureyes_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.load(env={}).data_dir == tmp_path / "foureyes-data"


def test_the_data_dir_comes_from_the_argument_then_the_environment(tmp_path: Path) -> None:
    env = {"FOUREYES_DATA_DIR": str(tmp_path / "from-env")}
    assert Settings.load(env=env).data_dir == tmp_path / "from-env"
    assert Settings.load(tmp_path / "from-arg", env=env).data_dir == tmp_path / "from-arg"


def test_the_process_environment_is_read_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOUREYES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FOUREYES_LOG_ORIGIN", "example.org/log")
    settings = Settings.load()
    assert settings.data_dir == tmp_path
    assert settings.log_origin == "example.org/log"


def test_the_file_sets_values_with_paths_relative_to_the_data_dir(tmp_path: Path) -> None:
    write_toml(
        tmp_path,
        """
database_url = "postgresql://foureyes@db.example/foureyes"
log_origin = "example.org/log"
signing_key_file = "secret/log.key"
witness_dir = "/srv/witness"
policy_file = "policy.yaml"
staff_file = "../hr/staff.csv"
""",
    )
    settings = Settings.load(tmp_path, env={})
    assert settings.database_url == "postgresql://foureyes@db.example/foureyes"
    assert settings.log_origin == "example.org/log"
    assert settings.signing_key_file == tmp_path / "secret" / "log.key"
    assert settings.witness_dir == Path("/srv/witness")
    assert settings.policy_file == tmp_path / "policy.yaml"
    assert settings.staff_file == tmp_path / "../hr/staff.csv"


def test_a_relative_sqlite_path_in_the_file_is_in_the_data_dir(tmp_path: Path) -> None:
    write_toml(tmp_path, 'database_url = "sqlite:///state/foureyes.db"\n')
    settings = Settings.load(tmp_path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path}/state/foureyes.db"


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(
        tmp_path,
        'database_url = "sqlite:///file.db"\nlog_origin = "file.example/log"\n'
        'signing_key_file = "file.key"\n',
    )
    monkeypatch.chdir(tmp_path)
    env = {
        "FOUREYES_DATABASE_URL": "postgresql://env@db/foureyes",
        "FOUREYES_SIGNING_KEY_FILE": "relative/env.key",
        "FOUREYES_WITNESS_DIR": "/var/witness",
    }
    settings = Settings.load(tmp_path / ".", env=env)
    assert settings.database_url == "postgresql://env@db/foureyes"
    assert settings.log_origin == "file.example/log"  # not overridden
    assert settings.signing_key_file == tmp_path / "relative" / "env.key"  # from the cwd
    assert settings.witness_dir == Path("/var/witness")


def test_empty_environment_variables_are_ignored(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={"FOUREYES_DATABASE_URL": ""})
    assert settings.database_url.startswith("sqlite:///")


# --- what is refused -------------------------------------------------------------------------


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'log_origin = "a.example/log"\ndatabase = "sqlite://"\n')
    with pytest.raises(BadInput, match=r"unknown key 'database'") as caught:
        Settings.load(tmp_path, env={})
    assert str(path) in caught.value.message
    assert caught.value.details["key"] == "database"


def test_an_unknown_table_in_the_file_is_named(tmp_path: Path) -> None:
    write_toml(tmp_path, "[server]\nport = 8000\n")
    with pytest.raises(BadInput, match=r"unknown key 'server'"):
        Settings.load(tmp_path, env={})


def test_the_data_dir_cannot_be_set_in_the_file(tmp_path: Path) -> None:
    write_toml(tmp_path, 'data_dir = "/elsewhere"\n')
    with pytest.raises(BadInput, match="data_dir cannot be set"):
        Settings.load(tmp_path, env={})


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path, "log_origin = \n")
    with pytest.raises(BadInput, match="not valid TOML"):
        Settings.load(tmp_path, env={})


def test_a_wrongly_typed_value_names_its_key(tmp_path: Path) -> None:
    write_toml(tmp_path, "log_origin = 42\n")
    with pytest.raises(BadInput, match=r"foureyes.toml: log_origin: "):
        Settings.load(tmp_path, env={})


@pytest.mark.parametrize("origin", ["", "has space/log", "a+b/log"])
def test_the_log_origin_must_be_a_valid_key_name(tmp_path: Path, origin: str) -> None:
    with pytest.raises(BadInput, match=r"^FOUREYES_LOG_ORIGIN: log_origin: "):
        Settings.load(tmp_path, env={"FOUREYES_LOG_ORIGIN": origin or " "})


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://db/foureyes", "supports sqlite and postgresql"), ("::", "not a database URL")],
)
def test_only_sqlite_and_postgresql_urls_are_accepted(
    tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        Settings.load(tmp_path, env={"FOUREYES_DATABASE_URL": url})
    assert caught.value.message.startswith("FOUREYES_DATABASE_URL: database_url: ")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={})
    with pytest.raises(ValidationError):
        settings.log_origin = "other.example/log"


def test_the_database_password_stays_out_of_repr(tmp_path: Path) -> None:
    url = "postgresql://foureyes:hunter2@db.example/foureyes"
    settings = Settings.load(tmp_path, env={"FOUREYES_DATABASE_URL": url})
    assert settings.database_url == url
    assert "hunter2" not in repr(settings)
    assert settings.safe_database_url == "postgresql://foureyes:***@db.example/foureyes"
    assert safe_url("::") == "<invalid URL>"


def test_the_owner_url_is_for_migrations_only_and_names_the_same_database(
    tmp_path: Path,
) -> None:
    runtime = "postgresql://foureyes_app:s3cret@db.example/foureyes"
    owner = "postgresql://foureyes_owner:hunter2@db.example/foureyes"
    env = {"FOUREYES_DATABASE_URL": runtime, "FOUREYES_OWNER_DATABASE_URL": owner}
    settings = Settings.load(tmp_path, env=env)
    assert (settings.database_url, settings.migration_database_url) == (runtime, owner)
    assert "hunter2" not in repr(settings)
    assert Settings.load(
        tmp_path, env={"FOUREYES_DATABASE_URL": runtime}
    ).migration_database_url == (runtime)
    elsewhere = {**env, "FOUREYES_OWNER_DATABASE_URL": "postgresql://o@db.example/other"}
    with pytest.raises(BadInput, match="must name the same server and database"):
        Settings.load(tmp_path, env=elsewhere)
    with pytest.raises(BadInput, match="SQLite has no roles"):
        Settings.load(tmp_path, env={"FOUREYES_OWNER_DATABASE_URL": owner})


def test_anchor_sqlite_leaves_other_urls_alone(tmp_path: Path) -> None:
    assert anchor_sqlite("sqlite://", tmp_path) == "sqlite://"
    assert anchor_sqlite("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert anchor_sqlite("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert anchor_sqlite("postgresql://h/db", tmp_path) == "postgresql://h/db"
    assert anchor_sqlite("sqlite:///x.db", tmp_path) == f"sqlite:///{tmp_path}/x.db"


# --- connectors ------------------------------------------------------------------------------


def test_connectors_are_named_tables_with_a_kind_and_options(tmp_path: Path) -> None:
    write_toml(
        tmp_path,
        """
[connectors.chirp]
kind = "demo"

[connectors.matrix]
kind = "synapse"
url = "https://matrix.example.org"
timeout_s = 5
""",
    )
    connectors = Settings.load(tmp_path, env={}).connectors
    assert set(connectors) == {"chirp", "matrix"}
    assert connectors["chirp"] == ConnectorSettings(kind="demo")
    assert connectors["matrix"].kind == "synapse"
    assert connectors["matrix"].options == {"url": "https://matrix.example.org", "timeout_s": 5}
    assert connectors["matrix"].resolved() == {"url": "https://matrix.example.org", "timeout_s": 5}


def test_a_connector_without_a_kind_is_refused_by_name(tmp_path: Path) -> None:
    write_toml(tmp_path, '[connectors.matrix]\nurl = "https://matrix.example.org"\n')
    with pytest.raises(BadInput, match=r"connectors\.matrix\.kind: Field required"):
        Settings.load(tmp_path, env={})


def test_a_connector_name_cannot_hold_a_colon(tmp_path: Path) -> None:
    write_toml(tmp_path, '[connectors."a:b"]\nkind = "demo"\n')
    with pytest.raises(BadInput, match="connector name 'a:b'"):
        Settings.load(tmp_path, env={})


def test_a_secret_can_come_from_a_file_relative_to_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("s3cret-token\n", encoding="utf-8")
    write_toml(
        tmp_path,
        '[connectors.matrix]\nkind = "synapse"\nurl = "https://m.example"\n'
        'token_file = "secrets/token"\n',
    )
    connector = Settings.load(tmp_path, env={}).connectors["matrix"]
    assert connector.options["token_file"] == str(tmp_path / "secrets" / "token")
    assert connector.secret("token") == "s3cret-token"
    assert connector.resolved() == {"url": "https://m.example", "token": "s3cret-token"}
    assert "s3cret-token" not in repr(connector)


def test_a_secret_can_come_from_an_environment_variable(tmp_path: Path) -> None:
    write_toml(tmp_path, '[connectors.matrix]\nkind = "synapse"\ntoken_env = "SYNAPSE_TOKEN"\n')
    connector = Settings.load(tmp_path, env={}).connectors["matrix"]
    assert connector.secret("token", env={"SYNAPSE_TOKEN": "from-env"}) == "from-env"
    assert connector.resolved(env={"SYNAPSE_TOKEN": "from-env"}) == {"token": "from-env"}


def test_a_secret_inline_is_allowed_but_not_required() -> None:
    assert ConnectorSettings(kind="x", options={"token": "inline"}).secret("token") == "inline"
    assert ConnectorSettings(kind="x").secret("token") is None


def test_a_secret_given_two_ways_is_refused() -> None:
    connector = ConnectorSettings(kind="x", options={"token": "a", "token_env": "B"})
    with pytest.raises(BadInput, match="set only one of token, token_env"):
        connector.secret("token", env={"B": "b"})


def test_a_missing_secret_is_refused_without_revealing_anything(tmp_path: Path) -> None:
    by_env = ConnectorSettings(kind="x", options={"token_env": "NOT_SET"})
    # The value given is never echoed: it may be the secret itself, pasted there (#18).
    with pytest.raises(BadInput, match="token_env is not the name of a set environment") as no:
        by_env.resolved(env={})
    assert "NOT_SET" not in no.value.message
    by_file = ConnectorSettings(kind="x", options={"token_file": str(tmp_path / "none")})
    with pytest.raises(BadInput, match="token_file is not a readable file") as unread:
        by_file.resolved()
    assert str(tmp_path) not in unread.value.message
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    empty = ConnectorSettings(kind="x", options={"token_file": str(tmp_path / "empty")})
    with pytest.raises(BadInput, match="is empty"):
        empty.resolved()


# --- the signing key -------------------------------------------------------------------------


def test_the_signer_is_read_from_the_key_file(tmp_path: Path) -> None:
    signer = Signer.generate("foureyes.local/log")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "log.key").write_text(signer.to_skey() + "\n", encoding="ascii")
    loaded = signer_from_file(Settings.load(tmp_path, env={}).signing_key_file)
    assert loaded.to_skey() == signer.to_skey()


def test_a_missing_key_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="run `foureyes init`"):
        signer_from_file(Settings.load(tmp_path, env={}).signing_key_file)


# --- who oversees ----------------------------------------------------------------------------


def test_oversight_groups_default_to_security_and_leads(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={})
    assert settings.access.oversight_groups == ["leads", "security"]


def test_oversight_groups_come_from_the_access_table(tmp_path: Path) -> None:
    write_toml(tmp_path, '[access]\noversight_groups = ["internal-audit", "security"]\n')
    settings = Settings.load(tmp_path, env={})
    assert settings.access.oversight_groups == ["internal-audit", "security"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("[]", "at least 1"), ('["a b"]', "has spaces"), ('[""]', "is empty")],
)
def test_oversight_groups_must_name_at_least_one_group(
    tmp_path: Path, value: str, message: str
) -> None:
    write_toml(tmp_path, f"[access]\noversight_groups = {value}\n")
    with pytest.raises(BadInput, match=rf"access.oversight_groups: .*{message}"):
        Settings.load(tmp_path, env={})


def test_the_step_up_cooldown_is_a_positive_duration(tmp_path: Path) -> None:
    """`[step_up] cooldown`: 24 hours by default, any positive duration, never zero (a new
    step-up credential always waits before it counts)."""
    assert Settings.load(tmp_path, env={}).step_up.cooldown_delta.total_seconds() == 86_400
    write_toml(tmp_path, '[step_up]\ncooldown = "2d"\n')
    assert Settings.load(tmp_path, env={}).step_up.cooldown_delta.days == 2
    for refused in ('"0s"', '"soon"'):
        write_toml(tmp_path, f"[step_up]\ncooldown = {refused}\n")
        with pytest.raises(BadInput, match="step_up"):
            Settings.load(tmp_path, env={})


# --- the metrics token -------------------------------------------------------------------------

METRICS_TOKEN = "0123456789abcdef" * 2


def test_the_metrics_token_comes_from_a_file_relative_to_the_data_dir(tmp_path: Path) -> None:
    write_toml(tmp_path, 'metrics_token_file = "secrets/metrics"\n')
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "metrics").write_text(METRICS_TOKEN + "\n")
    settings = Settings.load(tmp_path, env={})
    assert settings.metrics_token_file == tmp_path / "secrets" / "metrics"
    assert settings.metrics_token() == METRICS_TOKEN
    assert METRICS_TOKEN not in repr(settings)


def test_the_metrics_token_file_can_be_named_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(METRICS_TOKEN)
    env = {"FOUREYES_METRICS_TOKEN_FILE": str(tmp_path / "token")}
    assert Settings.load(tmp_path / "data", env=env).metrics_token() == METRICS_TOKEN
    assert Settings.load(tmp_path / "data", env={}).metrics_token() is None


def test_the_metrics_token_is_set_one_way_and_long_enough(tmp_path: Path) -> None:
    write_toml(tmp_path, 'metrics_token_file = "t"\nmetrics_token_env = "T"\n')
    with pytest.raises(BadInput, match="only one of metrics_token_file and metrics_token_env"):
        Settings.load(tmp_path, env={})
    write_toml(tmp_path, 'metrics_token_file = "t"\n')
    (tmp_path / "t").write_text("short-secret\n")
    with pytest.raises(BadInput, match="at least 32 characters") as refused:
        Settings.load(tmp_path, env={}).metrics_token()
    assert "short-secret" not in refused.value.message
