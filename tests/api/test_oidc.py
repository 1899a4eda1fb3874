"""OIDC bearer tokens: JWTs of the company's identity provider (a real one: oidc-provider-mock,
see tests/oidc_provider.py) act as the person their identity claim names, and only then."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from foureyes.auth.oidc import OidcProvider
from foureyes.bootstrap import create_app
from foureyes.policy.directory import load_directory
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem, make_settings
from tests.conftest import EXAMPLES
from tests.oidc_provider import CLIENT_ID, OidcServer, oidc_server  # noqa: F401 (a fixture)
from tests.worlds import World

# Tests whose token is refused before any database access run once (on PostgreSQL): running
# them on SQLite too would test the same code twice.
NO_DATABASE_IN_PLAY = pytest.mark.pg_only
SUSPEND = {"action": "account.suspend", "account": "chirp:president", "justification": "CASE-9"}
SUBJECTS = {"e-2001": "sub-ana", "e-3002": "sub-mei", "e-3001": "sub-tomas"}


class CountingTransport(httpx.HTTPTransport):
    """Real HTTP to the provider, counting the JWKS fetches."""

    def __init__(self) -> None:
        super().__init__()
        self.jwks_fetches = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            self.jwks_fetches += 1
        return super().handle_request(request)


@dataclasses.dataclass
class OidcApi(Api):
    server: OidcServer | None = None
    transport: CountingTransport | None = None

    def auth(self, staff_id: str) -> dict[str, str]:
        """The person's ID token from the provider (fetched when first needed)."""
        if staff_id not in self.tokens:
            assert self.server is not None
            self.tokens[staff_id] = self.server.id_token(SUBJECTS[staff_id])
        return super().auth(staff_id)

    def token(self, staff_id: str) -> str:
        return self.auth(staff_id)["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def oidc_api(world: World, tmp_path: Path, oidc_server: OidcServer) -> Iterator[OidcApi]:  # noqa: F811
    """The API with `[oidc]` pointing at the test provider; `tokens` are its ID tokens."""
    # The provider stamps its tokens with the real time; foureyes' clock starts there.
    world.clock.now = datetime.now(UTC).replace(microsecond=0)
    settings = make_settings(tmp_path / "data").model_copy(
        update={"oidc": oidc_server.settings(refetch_seconds=60)}
    )
    app = create_app(world.services, settings)
    transport = CountingTransport()
    assert settings.oidc is not None
    app.state.oidc_provider = OidcProvider(
        settings.oidc, clock=world.services.clock, transport=transport
    )
    with TestClient(app) as client:
        yield OidcApi(client, world, settings, server=oidc_server, transport=transport)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(api: Api, token: str, *, status: int = 401, slug: str = "unauthenticated") -> str:
    """GET /v1/requests with `token` is a problem; its detail. Nothing of the token leaks."""
    response = api.client.get("/v1/requests", headers=bearer(token))
    body = assert_problem(response, status, slug)
    if status == 401:
        assert response.headers["www-authenticate"].startswith(
            'Bearer realm="foureyes", error="invalid_token"'
        )
    assert token not in response.text
    detail: str = body["detail"]
    return detail


def forged(claims: dict[str, Any], key: Any, alg: str = "RS256", **header: Any) -> str:
    return jwt.encode({"alg": alg, **header}, claims, key, algorithms=[alg])


def good_claims(api: OidcApi, **changes: Any) -> dict[str, Any]:
    assert api.server is not None
    now = int(api.world.clock.now.timestamp())
    claims = {
        "iss": api.server.issuer,
        "aud": CLIENT_ID,
        "sub": "sub-mei",
        "preferred_username": "mei",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return claims


def test_a_provider_token_acts_as_the_person_it_names(oidc_api: OidcApi) -> None:
    view = oidc_api.submitted("e-2001", action="account.lock", account="chirp:bob")
    assert view["requester"] == "e-2001"
    assert view["state"] == "executed"
    listed = oidc_api.get("e-2001", "/v1/requests", params={"mine": "true"}).json()
    assert [item["id"] for item in listed["items"]] == [view["id"]]


@NO_DATABASE_IN_PLAY
def test_no_token_is_401_with_the_challenge(oidc_api: OidcApi) -> None:
    response = oidc_api.client.get("/v1/requests")
    assert "Bearer" in assert_problem(response, 401, "unauthenticated")["detail"]
    assert response.headers["www-authenticate"] == 'Bearer realm="foureyes"'


def test_local_tokens_still_work_next_to_oidc(oidc_api: OidcApi) -> None:
    token = operations.issue_token(oidc_api.world.services, "e-2001")
    response = oidc_api.client.get("/v1/requests", headers=bearer(token))
    assert response.status_code == 200, response.text


def test_an_expired_token_is_refused_by_foureyes_clock(oidc_api: OidcApi) -> None:
    token = oidc_api.token("e-3002")
    assert oidc_api.client.get("/v1/requests", headers=bearer(token)).status_code == 200
    oidc_api.world.clock.advance(hours=2)  # past exp (1 h after issue) and the leeway
    assert refused(oidc_api, token) == "the token has expired"


@NO_DATABASE_IN_PLAY
def test_a_token_from_the_future_is_refused(oidc_api: OidcApi) -> None:
    token = oidc_api.token("e-3002")
    oidc_api.world.clock.advance(minutes=-5)  # foureyes is behind the provider's iat
    assert "issued in the future" in refused(oidc_api, token)


@NO_DATABASE_IN_PLAY
def test_a_token_for_another_audience_is_refused(
    oidc_api: OidcApi,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    token = oidc_server.id_token("sub-mei", client_id="another-app")
    assert refused(oidc_api, token) == (
        f"the token is meant for ['another-app'], not for '{CLIENT_ID}'"
    )


@NO_DATABASE_IN_PLAY
def test_a_token_from_another_issuer_is_refused(oidc_api: OidcApi, oidc_server: OidcServer) -> None:  # noqa: F811
    # Same provider, same key, but it names itself after the host it was asked for.
    token = oidc_server.id_token("sub-mei", host="127.0.0.1")
    detail = refused(oidc_api, token)
    assert detail.startswith(f"the token was issued by 'http://127.0.0.1:{oidc_server.port}'")


@NO_DATABASE_IN_PLAY
def test_a_signature_by_a_key_the_provider_does_not_publish_is_refused(
    oidc_api: OidcApi,
) -> None:
    rogue = RSAKey.generate_key(2048)
    assert refused(oidc_api, forged(good_claims(oidc_api), rogue)) == (
        "the token's signature does not verify"
    )
    with_kid = forged(good_claims(oidc_api), rogue, kid="rogue-key")
    assert refused(oidc_api, with_kid) == (
        "the token is signed by a key the identity provider does not publish"
    )


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@NO_DATABASE_IN_PLAY
def test_alg_none_and_hmac_tokens_are_refused(oidc_api: OidcApi) -> None:
    claims = good_claims(oidc_api)
    assert refused(oidc_api, _unsigned(claims)).startswith("tokens signed with 'none' are refused")
    hmac_token = forged(claims, OctKey.import_key(b"k" * 32), alg="HS256")
    assert refused(oidc_api, hmac_token).startswith("tokens signed with 'HS256' are refused")


@NO_DATABASE_IN_PLAY
def test_garbage_is_a_malformed_token(oidc_api: OidcApi) -> None:
    assert refused(oidc_api, "not-a-jwt") == "malformed token: not a signed JWT"
    assert refused(oidc_api, "a.b.c") == "malformed token: not a signed JWT"


def test_an_identity_no_one_on_the_staff_has_is_refused(
    oidc_api: OidcApi,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    token = oidc_server.id_token("sub-mallory")
    assert refused(oidc_api, token) == "'mallory' is not the identity of anyone on the staff"
    without_claim = oidc_server.id_token("sub-mei", scope="openid email")
    assert refused(oidc_api, without_claim) == (
        "the token has no 'preferred_username' claim to name you by"
    )


def test_a_name_outside_ascii_is_refused_cleanly(
    oidc_api: OidcApi,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    """The reason also goes into the WWW-Authenticate header, which is Latin-1: no 500."""
    oidc_server.set_user("sub-zoe", preferred_username="zo\u00eb\u2603")
    detail = refused(oidc_api, oidc_server.id_token("sub-zoe"))
    assert detail == "'zo\\xeb\\u2603' is not the identity of anyone on the staff"


def test_a_terminated_persons_valid_token_is_refused(oidc_api: OidcApi) -> None:
    assert oidc_api.get("e-3002", "/v1/requests").status_code == 200
    directory = load_directory(EXAMPLES / "staff.yaml")
    without_mei = {k: v for k, v in directory.staff.items() if k != "e-3002"}
    operations.import_directory(
        oidc_api.world.services, dataclasses.replace(directory, staff=without_mei)
    )
    detail = refused(oidc_api, oidc_api.token("e-3002"))
    assert detail == "this credential no longer works: staff e-3002 is terminated"


def test_a_token_acts_as_its_owner_only_on_someone_elses_request(oidc_api: OidcApi) -> None:
    """Mei's request: her own token cannot approve it, Tomas's token cannot cancel it."""
    view = oidc_api.submitted("e-3002", **SUSPEND)
    assert view["state"] == "pending"
    own = assert_problem(oidc_api.review("e-3002", view["id"], step_up=True), 403, "forbidden")
    assert "own request" in own["detail"]
    cancel = oidc_api.post("e-3001", f"/v1/requests/{view['id']}/cancel")
    assert "only the requester" in assert_problem(cancel, 403, "forbidden")["detail"]
    assert oidc_api.show("e-3001", view["id"])["state"] == "pending"


@NO_DATABASE_IN_PLAY
def test_unknown_kids_refetch_the_keys_at_most_once_a_minute(oidc_api: OidcApi) -> None:
    assert oidc_api.transport is not None
    assert oidc_api.get("e-3002", "/v1/requests").status_code == 200
    assert oidc_api.transport.jwks_fetches == 1
    rogue = RSAKey.generate_key(2048)
    for n in range(5):
        refused(oidc_api, forged(good_claims(oidc_api), rogue, kid=f"made-up-{n}"))
    assert oidc_api.transport.jwks_fetches == 1  # fetched a moment ago: no re-fetch yet
    oidc_api.world.clock.advance(seconds=61)
    refused(oidc_api, forged(good_claims(oidc_api), rogue, kid="made-up-again"))
    refused(oidc_api, forged(good_claims(oidc_api), rogue, kid="and-again"))
    assert oidc_api.transport.jwks_fetches == 2
    assert oidc_api.get("e-3002", "/v1/requests").status_code == 200


@NO_DATABASE_IN_PLAY
def test_an_unreachable_provider_without_keys_is_503_never_accepted(
    world: World,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    world.clock.now = datetime.now(UTC)
    token = oidc_server.id_token("sub-mei")
    settings = make_settings(tmp_path / "data")
    # Where the provider was said to be, nothing listens (port 9 is discard, closed here).
    oidc = oidc_server.settings(issuer="http://localhost:9")
    app = create_app(world.services, settings.model_copy(update={"oidc": oidc}))
    with TestClient(app) as client:
        response = client.get("/v1/requests", headers=bearer(token))
        body = assert_problem(response, 503, "unavailable")
        assert "identity provider cannot be reached" in body["detail"]
        response = client.get("/v1/requests", headers=bearer(token))
        again = assert_problem(response, 503, "unavailable")
        assert "just now" in again["detail"]  # not retried at once


@NO_DATABASE_IN_PLAY
def test_a_jwt_without_oidc_configured_says_so(api: Api, oidc_server: OidcServer) -> None:  # noqa: F811
    token = oidc_server.id_token("sub-mei")
    response = api.client.get("/v1/requests", headers=bearer(token))
    detail = assert_problem(response, 401, "unauthenticated")["detail"]
    assert "no [oidc] is configured" in detail
