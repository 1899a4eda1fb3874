"""Every error is an RFC 9457 problem: one mapping, no internals, bounded bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from foureyes.bootstrap import create_app
from foureyes.errors import Conflict, FoureyesError, Unauthenticated
from foureyes.web.problems import MAX_BODY_BYTES, install_problem_handlers
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem


def test_an_unknown_route_is_a_404_problem(api: Api) -> None:
    body = assert_problem(api.client.get("/v2/requests"), 404, "not-found")
    assert body["detail"] == "no such resource: GET /v2/requests"
    assert_problem(api.get("e-2001", "/v1/requests/x/y/z"), 404, "not-found")


def test_a_wrong_method_is_a_405_problem_with_allow(api: Api) -> None:
    response = api.client.delete("/v1/requests")
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["allow"]


def test_a_body_over_64_kib_is_413_by_its_length(api: Api) -> None:
    body = {"action": "account.lock", "account": "chirp:bob", "params": {"x": "a" * MAX_BODY_BYTES}}
    response = api.post("e-2001", "/v1/requests", body)
    assert "larger than 65536 bytes" in assert_problem(response, 413, "payload-too-large")["detail"]
    assert api.get("e-2001", "/v1/requests").json()["items"] == []


def test_a_chunked_body_over_64_kib_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"action": "account.lock", "account": "chirp:bob", "justification": "'
        for _ in range(70):
            yield b"a" * 1024
        yield b'"}'

    headers = {**api.auth("e-2001"), "Content-Type": "application/json"}
    response = api.client.post("/v1/requests", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, 413, "payload-too-large")
    assert api.get("e-2001", "/v1/requests").json()["items"] == []


def test_a_body_just_under_the_limit_is_read(api: Api) -> None:
    padding = "a" * (MAX_BODY_BYTES - 200)
    body = {"action": "account.lock", "account": "chirp:bob", "params": {"x": padding}}
    response = api.post("e-2001", "/v1/requests", body)
    assert "params do not fit" in assert_problem(response, 422, "bad-input")["detail"]


def test_a_domain_errors_details_become_extension_members(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflicted(*_args: object, **_kwargs: object) -> None:
        raise Conflict("it moved", request_id="r-1", type="not me", status=999)

    monkeypatch.setattr(operations, "show_to", conflicted)
    body = assert_problem(api.get("e-2001", "/v1/requests/r-1"), 409, "conflict")
    assert body == {
        "type": "urn:foureyes:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "it moved",
        "request_id": "r-1",
    }


def test_an_unexpected_error_is_a_500_problem_without_internals(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    monkeypatch.setattr(operations, "show_to", broken)
    app = create_app(api.world.services, api.settings)
    with TestClient(app, raise_server_exceptions=True) as client:
        response = client.get("/v1/requests/x", headers=api.auth("e-2001"))
    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "secret" not in response.text
    assert body["detail"] == "an internal error occurred; it has been logged"
    assert "hunter2" in caplog.text  # the operator sees it in the log


def test_a_deliberate_500_error_keeps_its_slug(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_args: object, **_kwargs: object) -> None:
        raise FoureyesError("something foureyes knows about")

    monkeypatch.setattr(operations, "show_to", failing)
    assert_problem(api.get("e-2001", "/v1/requests/x"), 500, "internal-error")


def test_the_openapi_document_lists_the_v1_routes(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/v1/requests",
        "/v1/requests/{request_id}",
        "/v1/requests/{request_id}/reviews",
        "/v1/requests/{request_id}/cancel",
        "/v1/requests/{request_id}/undo",
        "/v1/requests/{request_id}/execute",
        "/v1/decisions",
        "/v1/accounts/{ref}",
        "/v1/audit/checkpoint",
        "/v1/audit/events",
        "/v1/audit/proofs/inclusion",
        "/v1/audit/proofs/consistency",
        "/v1/alerts",
        "/v1/alerts/{alert_id}/ack",
        "/v1/me",
        "/healthz",
        "/metrics",
    ):
        assert path in paths
    assert "token" in document["components"]["securitySchemes"]
    assert "Problem" in document["components"]["schemas"]


def test_the_bearer_challenge_carries_only_what_rfc_6750_allows() -> None:
    """A 401's message may name what a token claimed (any Unicode, even a newline): the
    `WWW-Authenticate` header keeps printable ASCII only, so it is neither a 500 nor a second
    header."""
    app = FastAPI()
    install_problem_handlers(app)
    handler = app.exception_handlers[FoureyesError]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/x",
        "headers": [(b"authorization", b"Bearer eyJ...")],
    }
    error = Unauthenticated('no staff member "Zo\u00eb"\r\nX-Evil: 1 \\')
    response = asyncio.run(handler(Request(scope), error))
    assert response.headers["www-authenticate"] == (
        'Bearer realm="foureyes", error="invalid_token", '
        "error_description=\"no staff member 'Zo?'??X-Evil: 1 \""
    )
