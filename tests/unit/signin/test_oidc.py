"""The verifier against real HTTP servers: its key cache when the provider goes away (keys it
holds keep working for their lifetime, then nothing is accepted: 503), and which keys of a
JWKS it will verify with."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from oidc_provider_mock import run_server_in_thread

from foureyes.auth.oidc import OidcProvider
from foureyes.config.oidc import OidcSettings
from foureyes.errors import Unauthenticated, Unavailable
from tests.oidc_provider import OidcServer
from tests.worlds import Clock


def test_cached_keys_outlive_the_provider_only_for_their_lifetime() -> None:
    clock = Clock(datetime.now(UTC))
    with run_server_in_thread() as server:
        provider = OidcServer(port=server.server_port)
        provider.set_user("sub-mei", preferred_username="mei")
        token = provider.id_token("sub-mei")
        verifier = OidcProvider(provider.settings(cache_seconds=60), clock=clock)
        assert verifier.identity(verifier.verify(token)) == "mei"
    # The provider is gone; the keys fetched a moment ago still verify.
    clock.advance(seconds=59)
    assert verifier.verify(token)["sub"] == "sub-mei"
    clock.advance(seconds=2)  # the keys are stale now, and cannot be re-fetched
    with pytest.raises(Unavailable, match="cannot be reached"):
        verifier.verify(token)
    with pytest.raises(Unavailable, match="just now"):  # and it is not retried at once
        verifier.verify(token)
    verifier.close()


class _Issuer(BaseHTTPRequestHandler):
    """A provider serving only discovery and a JWKS of the test's choosing."""

    documents: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.documents.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_issuer() -> Iterator[tuple[str, type[_Issuer]]]:
    handler = type("Handler", (_Issuer,), {"documents": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    handler.documents["/.well-known/openid-configuration"] = json.dumps(
        {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
    ).encode()
    yield issuer, handler
    server.shutdown()
    server.server_close()


def test_only_published_public_signing_keys_are_used(
    jwks_issuer: tuple[str, type[_Issuer]],
) -> None:
    issuer, handler = jwks_issuer
    signing = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    leaked = RSAKey.generate_key(2048, parameters={"kid": "leaked"})
    encryption = RSAKey.generate_key(2048, parameters={"kid": "enc"})
    handler.documents["/jwks"] = json.dumps(
        {
            "keys": [
                signing.as_dict(private=False),
                leaked.as_dict(private=True),  # private material published: anyone can sign
                {**encryption.as_dict(private=False), "use": "enc"},  # not for signatures
                {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            ]
        }
    ).encode()
    clock = Clock(datetime.now(UTC))
    verifier = OidcProvider(
        OidcSettings(issuer=issuer, client_id="foureyes", algorithms=["ES256", "RS256"]),
        clock=clock,
    )
    now = int(clock.now.timestamp())
    claims = {"iss": issuer, "aud": "foureyes", "sub": "x", "exp": now + 60, "iat": now}

    def token(key: Any, alg: str, **header: str) -> str:
        return jwt.encode({"alg": alg, **header}, claims, key, algorithms=[alg])

    assert verifier.verify(token(signing, "ES256", kid="ec-1"))["sub"] == "x"
    assert verifier.verify(token(signing, "ES256"))["sub"] == "x"  # the only EC key
    unpublished = "the token is signed by a key the identity provider does not publish"
    for refused in (
        token(leaked, "RS256", kid="leaked"),
        token(encryption, "RS256", kid="enc"),
        token(signing, "ES256", kid="leaked"),  # a kid of another key type
    ):
        with pytest.raises(Unauthenticated) as caught:
            verifier.verify(refused)
        assert caught.value.message == unpublished
    with pytest.raises(Unauthenticated, match="names no key"):
        verifier.verify(token(leaked, "RS256"))  # no kid, and no usable RSA key
    verifier.close()


def test_an_email_claim_names_someone_only_once_verified() -> None:
    settings = OidcSettings(
        issuer="https://login.example.org", client_id="foureyes", identity_claim="email"
    )
    verifier = OidcProvider(settings, clock=Clock())
    assert verifier.identity({"email": "mei@chirp.example", "email_verified": True}) == (
        "mei@chirp.example"
    )
    for unverified in (False, "false", "true", 1, None, "yes"):
        with pytest.raises(Unauthenticated, match="not verified this email"):
            verifier.identity({"email": "mei@chirp.example", "email_verified": unverified})
    with pytest.raises(Unauthenticated, match="not verified this email"):
        verifier.identity({"email": "mei@chirp.example"})  # the claim absent
    with pytest.raises(Unauthenticated, match="no 'email' claim"):
        verifier.identity({"preferred_username": "mei"})
    verifier.close()
