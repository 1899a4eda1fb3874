"""The `[oidc]` table of foureyes.toml: what it accepts, and what it refuses with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.errors import BadInput

GOOD = """
[oidc]
issuer = "https://login.example.org/realms/staff/"
client_id = "foureyes"
client_secret_file = "secrets/oidc"
identity_claim = "email"
"""


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "foureyes.toml").write_text(text)
    return root


def test_a_provider_is_read_with_the_secret_file_relative_to_the_data_dir(tmp_path: Path) -> None:
    root = write(tmp_path / "data", GOOD)
    (root / "secrets").mkdir()
    (root / "secrets" / "oidc").write_text("s3cret\n")
    oidc = Settings.load(root, env={}).oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.example.org/realms/staff"  # trailing slash dropped
    assert oidc.expected_audience == "foureyes"  # the client id, unless audience is set
    assert oidc.identity_claim == "email"
    assert oidc.client_secret() == "s3cret"
    assert "s3cret" not in repr(Settings.load(root, env={}))
    assert oidc.callback_url("http://ignored/") == "http://ignored/console/auth/callback"


def test_no_table_means_no_provider(tmp_path: Path) -> None:
    assert Settings.load(write(tmp_path / "data", ""), env={}).oidc is None


def test_the_secret_may_come_from_the_environment(tmp_path: Path) -> None:
    text = GOOD.replace('client_secret_file = "secrets/oidc"', 'client_secret_env = "OIDC_SECRET"')
    oidc = Settings.load(write(tmp_path / "data", text), env={}).oidc
    assert oidc is not None
    assert oidc.client_secret({"OIDC_SECRET": "from-env"}) == "from-env"
    with pytest.raises(BadInput, match="client_secret_env is not the name of a set") as unset:
        oidc.client_secret({})
    assert "OIDC_SECRET" not in unset.value.message  # it may be the secret, pasted there


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('client_secret_file = "secrets/oidc"', 'client_secret = "inline"'), "client_secret_file"),
        (("https://login", "http://login"), "must use https"),
        (('client_id = "foureyes"', 'client_id = "foureyes"\nalgorithms = ["HS256"]'), "HS256"),
        (('client_id = "foureyes"', 'client_id = "foureyes"\nscopes = ["email"]'), "openid"),
        (('client_id = "foureyes"', 'client_id = "foureyes"\nclient_secret_env = "X"'), "only one"),
        (('client_id = "foureyes"', 'client_id = "foureyes"\nissuers = []'), "issuers"),
        (
            (
                'client_id = "foureyes"',
                'client_id = "foureyes"\ncache_seconds = 60\nrefetch_seconds = 90',
            ),
            "refetch_seconds",
        ),
    ],
)
def test_a_bad_table_is_refused_naming_the_problem(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    root = write(tmp_path / "data", GOOD.replace(*change))
    with pytest.raises(BadInput) as refused:
        Settings.load(root, env={})
    assert complaint in str(refused.value)
    assert "inline" not in str(refused.value)  # an inline secret is not echoed back


def test_http_is_allowed_for_a_provider_on_this_machine(tmp_path: Path) -> None:
    text = GOOD.replace("https://login.example.org", "http://localhost:8080")
    oidc = Settings.load(write(tmp_path / "data", text), env={}).oidc
    assert oidc is not None
    assert oidc.issuer == "http://localhost:8080/realms/staff"
