"""A real OpenID provider for the tests: oidc-provider-mock's Flask server (discovery, JWKS, the
authorization-code flow, RS256 ID tokens) on a free port, in a thread, once per session.

Use it by importing the fixture into a test module (or a conftest):

    from tests.oidc_provider import OidcServer, oidc_server  # noqa: F401 (a fixture)

Its authorization endpoint answers a GET with a form and a POST of the form field `sub` (the
person who "signs in") with the redirect back to the client, carrying the code. Claims come
from `set_user(sub, **claims)`; the ID token carries those its scopes allow (`preferred_username`
with `profile`, `email` with `email`) and `sub`. Any client id and secret are accepted; the ID
token's `aud` is the client id the flow used. `issuer` is `http://localhost:<port>`: the
provider names itself after the host it was asked for, which `id_token(..., host=...)` uses to
obtain a token from a wrong issuer signed with the right key.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from foureyes.config.oidc import OidcSettings

# The provider refuses plain http unless told otherwise; it only ever listens on localhost.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_ID = "foureyes-tests"
CLIENT_SECRET = "client-secret-for-tests"  # the test provider accepts any secret

# The staff directory's people as the provider knows them: subject → claims.
PEOPLE: dict[str, dict[str, Any]] = {
    "sub-mei": {"preferred_username": "mei", "email": "mei@chirp.example"},
    "sub-tomas": {"preferred_username": "tomas", "email": "tomas@chirp.example"},
    "sub-sam": {"preferred_username": "sam", "email": "sam@chirp.example"},
    "sub-ana": {"preferred_username": "ana", "email": "ana@chirp.example"},
    "sub-jo": {"preferred_username": "jo", "email": "jo@chirp.example"},
    "sub-mallory": {"preferred_username": "mallory", "email": "mallory@elsewhere.example"},
}


@dataclass
class OidcServer:
    """The running provider, and how to obtain its tokens as a given person."""

    port: int

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    def settings(self, **overrides: Any) -> OidcSettings:
        """foureyes' `[oidc]` settings for this provider (overrides as keyword arguments)."""
        values: dict[str, Any] = {
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret_env": "FOUREYES_TEST_OIDC_SECRET",
            "provider_name": "Test SSO",
        }
        values.update(overrides)
        os.environ.setdefault("FOUREYES_TEST_OIDC_SECRET", CLIENT_SECRET)
        return OidcSettings.model_validate(values)

    def set_user(self, sub: str, **claims: Any) -> None:
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def authorize(self, authorize_url: str, sub: str, *, client: httpx.Client | None = None) -> str:
        """Sign in as `sub` at the provider's authorization page `authorize_url` (as a client
        redirected there); the URL it sends the browser back to."""
        url = urlsplit(authorize_url)
        assert f"{url.scheme}://{url.netloc}" == self.issuer, authorize_url
        http = client or httpx.Client(timeout=10)
        try:
            response = http.post(authorize_url, data={"sub": sub})
        finally:
            if client is None:
                http.close()
        assert response.status_code == 302, response.text
        location: str = response.headers["location"]
        return location

    def id_token(
        self,
        sub: str,
        *,
        client_id: str = CLIENT_ID,
        scope: str = "openid profile email",
        host: str = "localhost",
    ) -> str:
        """A fresh ID token for `sub`, obtained through the authorization-code flow."""
        base = f"http://{host}:{self.port}"
        redirect_uri = "http://client.test/callback"
        params = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
        }
        with httpx.Client(base_url=base, timeout=10) as http:
            answer = http.post("/oauth2/authorize", params=params, data={"sub": sub})
            assert answer.status_code == 302, answer.text
            code = _query(answer.headers["location"])["code"]
            tokens = http.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                },
                auth=(client_id, CLIENT_SECRET),
            )
        assert tokens.status_code == 200, tokens.text
        token: str = tokens.json()["id_token"]
        return token


def _query(url: str) -> Mapping[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="session")
def oidc_server() -> Iterator[OidcServer]:
    """The provider, with the people of `PEOPLE` known to it."""
    from oidc_provider_mock import run_server_in_thread  # noqa: PLC0415 - Flask, only if used

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with run_server_in_thread() as server:
        provider = OidcServer(port=server.server_port)
        for sub, claims in PEOPLE.items():
            provider.set_user(sub, **claims)
        yield provider
