"""The `[oidc]` table of foureyes.toml: which OpenID Connect provider vouches for staff.

    [oidc]
    issuer = "https://login.example.org/realms/staff"   # exactly as its discovery document says
    client_id = "foureyes"
    client_secret_file = "secrets/oidc-client-secret"    # or client_secret_env = "OIDC_SECRET"
    audience = "foureyes"              # the `aud` API bearer tokens must carry (default client_id)
    identity_claim = "preferred_username"                # or "email", "sub", …
    scopes = ["openid", "profile", "email"]
    redirect_base = "https://foureyes.example.org"       # callback: <base>/console/auth/callback
    provider_name = "Example SSO"                        # shown on the console's sign-in page

The client secret is never written in the file itself: only where it is (a file or an
environment variable). The claim's value must be one of a person's `identities` in the staff
directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foureyes.config.secret_files import read_secret_file, unset_variable

__all__ = ["ASYMMETRIC_ALGORITHMS", "CALLBACK_PATH", "OidcSettings"]

# Signature algorithms a token may use. Only public-key ones: with an HMAC (HS*) the verifier
# holds the signing secret, and `none` is no signature at all.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
CALLBACK_PATH = "/console/auth/callback"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _https_url(value: str, what: str) -> str:
    """`value` if it is an https URL without query or fragment (http only on loopback, for a
    provider running on the same machine); trailing slashes removed."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{what} must use https (http only for localhost)")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment")
    return value.rstrip("/")


class OidcSettings(BaseModel):
    """The company's OpenID provider, and how its tokens name a staff member."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str
    client_id: str = Field(min_length=1)
    client_secret_file: str | None = None
    client_secret_env: str | None = None
    audience: str | None = Field(default=None, min_length=1)
    identity_claim: str = Field(default="preferred_username", min_length=1)
    # Whether the claim may name a person by their staff id (always one of their logins for
    # foureyes' own tokens). Off: only the `identities` the directory lists sign in.
    staff_ids_are_logins: bool = False
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    redirect_base: str | None = None
    provider_name: str = Field(default="your identity provider", min_length=1, max_length=80)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    cache_seconds: int = Field(default=3600, ge=60, le=86400)
    refetch_seconds: int = Field(default=60, ge=1, le=3600)
    timeout: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "client_secret" in data:
            raise ValueError(
                "client_secret cannot be written in the file: name where it is with "
                "client_secret_file or client_secret_env"
            )
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _https_url(value, "issuer")

    @field_validator("redirect_base")
    @classmethod
    def _redirect_base(cls, value: str | None) -> str | None:
        return None if value is None else _https_url(value, "redirect_base")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        if any(not scope or any(ch.isspace() for ch in scope) for scope in value):
            raise ValueError("each scope is one word")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        refused = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"only public-key algorithms are accepted ({', '.join(ASYMMETRIC_ALGORITHMS)}); "
                f"refused: {', '.join(refused) or 'an empty list'}"
            )
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> OidcSettings:
        if self.client_secret_file is not None and self.client_secret_env is not None:
            raise ValueError("set only one of client_secret_file and client_secret_env")
        if self.refetch_seconds > self.cache_seconds:
            # Stale keys could then not be replaced until the re-fetch pause ends.
            raise ValueError("refetch_seconds must not be longer than cache_seconds")
        return self

    @property
    def expected_audience(self) -> str:
        """The `aud` an API bearer token must carry."""
        return self.audience or self.client_id

    def callback_url(self, fallback_base: str) -> str:
        """Where the provider sends the browser back: `redirect_base` (or, when unset, the
        base URL the console was reached at) + the callback path."""
        return f"{(self.redirect_base or fallback_base).rstrip('/')}{CALLBACK_PATH}"

    def client_secret(self, env: Mapping[str, str] | None = None) -> str | None:
        """The client secret from its file or environment variable; None for a public client
        (PKCE only). BadInput, never echoing the secret, if it cannot be read."""
        env = os.environ if env is None else env
        if self.client_secret_env is not None:
            secret = env.get(self.client_secret_env)
            if not secret:
                raise unset_variable("oidc.client_secret_env")
            return secret
        if self.client_secret_file is not None:
            # Never echo the path given: it may be the secret itself, pasted there.
            return read_secret_file("oidc.client_secret_file", self.client_secret_file)
        return None
