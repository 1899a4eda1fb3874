"""`GET /v1/me`: who the token belongs to (the CLI signs device-key step-ups with this id)."""

from __future__ import annotations

from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem


def test_me_is_the_tokens_owner_and_nobody_else(api: Api) -> None:
    response = api.get("e-3002", "/v1/me")
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == "e-3002"
    assert me["identity"] == "e-3002"
    assert "trust-safety" in me["groups"]
    assert set(me) == {"id", "identity", "name", "groups"}

    kim = operations.issue_token(api.world.services, "c-1001", identity="kim.vendor")
    response = api.client.get("/v1/me", headers={"Authorization": f"Bearer {kim}"})
    assert response.json()["id"] == "c-1001"
    assert response.json()["identity"] == "kim.vendor"


def test_me_needs_a_token(api: Api) -> None:
    assert_problem(api.client.get("/v1/me"), 401, "unauthenticated")


def test_no_cache_keeps_an_answer_of_the_api(api: Api) -> None:
    """Attack run 2: the console answered `no-store`, the API nothing, so a browser or proxy
    could keep a request or an account's attributes."""
    for path in ("/v1/me", "/v1/accounts/chirp:president", "/v1/requests?mine=true", "/v1/nope"):
        answer = api.get("e-3002", path)
        assert answer.headers.get("cache-control") == "no-store", (path, answer.status_code)
    assert api.client.get("/v1/me").headers.get("cache-control") == "no-store"  # a 401 too
