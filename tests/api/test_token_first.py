"""`POST /v1/requests` checks the caller's token inside its own work (`api.auth.TokenFirst`),
and answers as a route whose token check is a dependency: the token comes before the input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, assert_problem

GOOD = {"action": "account.view", "account": "chirp:alice", "params": {}}
# Input FastAPI refuses before the route runs: the body's schema, or the idempotency key's.
BAD_INPUT: list[tuple[dict[str, Any] | None, dict[str, str]]] = [
    ({"action": "account.view", "account": "chirp:alice", "surprise": 1}, {}),
    ({"account": "chirp:alice"}, {}),
    (None, {}),
    (GOOD, {"Idempotency-Key": "x" * 201}),
]
NOT_A_TOKEN = {"Authorization": "Bearer fey_0123456789abcdef_notthesecret"}


@pytest.mark.parametrize(("body", "headers"), BAD_INPUT)
def test_a_token_that_does_not_verify_is_401_whatever_the_input(
    api: Api, body: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    response = api.client.post("/v1/requests", json=body, headers={**NOT_A_TOKEN, **headers})
    assert assert_problem(response, 401, "unauthenticated")["detail"] == "unknown token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(("body", "headers"), BAD_INPUT)
def test_no_token_is_401_whatever_the_input(
    api: Api, body: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    response = api.client.post("/v1/requests", json=body, headers=headers)
    assert "Bearer" in assert_problem(response, 401, "unauthenticated")["detail"]
    assert response.headers["www-authenticate"] == 'Bearer realm="foureyes"'


@pytest.mark.parametrize(("body", "headers"), BAD_INPUT)
def test_a_verified_token_with_bad_input_is_422(
    api: Api, body: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    response = api.client.post("/v1/requests", json=body, headers={**api.auth("e-2001"), **headers})
    assert_problem(response, 422, "bad-input")
    assert api.client.get("/v1/requests", headers=api.auth("e-2001")).json()["items"] == []


@pytest.mark.parametrize("headers", [{}, NOT_A_TOKEN])
def test_a_body_that_is_not_json_is_422_before_any_token_is_looked_at(
    api: Api, headers: dict[str, str]
) -> None:
    # FastAPI reads the body before it runs any dependency: as it always answered.
    response = api.client.post(
        "/v1/requests",
        content=b'{"action": ',
        headers={"Content-Type": "application/json", **headers},
    )
    problem = assert_problem(response, 422, "bad-input")
    assert [error["type"] for error in problem["errors"]] == ["json_invalid"]


def test_a_submit_answers_its_request_once_encoded(api: Api) -> None:
    response = api.submit("e-2001", **GOOD)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert "idempotent-replayed" not in response.headers
    view = response.json()
    assert view["state"] == "executed"
    assert view["data"] is not None  # a read's data, this once
    assert api.show("e-2001", view["id"])["state"] == "executed"
