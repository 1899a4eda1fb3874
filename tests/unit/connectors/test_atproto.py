"""The `atproto` connector's mapping, without a PDS: its settings, the DID rule, how the PDS's
answers translate into foureyes' errors, and that the admin password goes nowhere but its
header. Against a real PDS: tests/atproto/."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from foureyes.connectors.atproto import AtprotoConnector, create
from foureyes.connectors.atproto_catalog import atproto_catalog
from foureyes.connectors.atproto_xrpc import is_did
from foureyes.connectors.base import ExecutionOrder, available_kinds
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import BadInput, ConnectorError, NotFound

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
SECRET = "s3cret-admin-password"


class Context:
    database: Any = None
    call_deadline = 5.0


def _connector(answer: Callable[[httpx.Request], httpx.Response]) -> AtprotoConnector:
    async def handle(request: httpx.Request) -> httpx.Response:
        return answer(request)

    return AtprotoConnector(
        "http://127.0.0.1:1",
        SECRET,
        transport=httpx.MockTransport(handle),
        sleep=lambda _seconds: None,
    )


def _xrpc_error(status: int, error: str, message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"error": error, "message": message})


def test_it_is_registered_and_its_catalog_agrees_with_the_demo() -> None:
    assert available_kinds()["atproto"] is create
    atproto_catalog().merged(demo_catalog())  # shared names, the same declarations


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"admin_password": SECRET}, "url is required"),
        ({"url": "http://pds.example.org", "admin_password": SECRET}, "must be an https URL"),
        ({"url": "https://pds.example.org"}, "admin_password is required"),
        ({"url": "https://pds.example.org", "admin_password": SECRET, "token": "x"}, "token"),
        ({"url": "https://admin:pw@pds.example.org", "admin_password": SECRET}, "credentials"),
    ],
)
def test_bad_settings_are_refused_saying_why(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadInput, match=problem) as refused:
        create("bsky", settings, Context())
    assert SECRET not in refused.value.message


def test_plain_http_is_allowed_to_loopback_only() -> None:
    for url in ("http://127.0.0.1:2583", "http://localhost:2583", "https://pds.example.org"):
        connector = create("bsky", {"url": url, "admin_password": SECRET}, Context())
        assert SECRET not in repr(connector)
        connector.close()


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (DID, True),
        ("did:web:pds.example.org", True),
        ("alice.bsky.social", False),
        ("did:plc:", False),
        ("did:PLC:abc", False),
        ("did:plc:abc/../x", False),
        ("did:plc:a b", False),
    ],
)
def test_accounts_are_named_by_did(text: str, ok: bool) -> None:
    assert is_did(text) is ok


def test_a_handle_is_refused_naming_its_did() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/xrpc/com.atproto.identity.resolveHandle"
        return httpx.Response(200, json={"did": DID})

    connector = _connector(answer)
    with pytest.raises(BadInput, match=f"alice.test is bsky:{DID}"):
        connector.lookup("alice.test")


def test_the_password_goes_in_the_basic_authorization_header_alone() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _xrpc_error(401, "AuthRequired", "Invalid admin password")

    connector = _connector(answer)
    with pytest.raises(ConnectorError) as refused:
        connector.lookup(DID)
    assert not refused.value.transient
    assert "admin_password_file" in refused.value.message
    assert SECRET not in refused.value.message
    assert SECRET not in repr(connector)
    header = seen[0].headers["Authorization"]
    assert header == "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert SECRET not in str(seen[0].url)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_xrpc_error(400, "NotFound", "Account not found"), NotFound),
        (_xrpc_error(400, "InvalidRequest", "Account not found"), NotFound),
        (_xrpc_error(400, "InvalidRequest", "bad"), ConnectorError),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), ConnectorError),
        (httpx.Response(429), ConnectorError),
    ],
)
def test_the_pds_answers_translate_in_one_place(
    response: httpx.Response, expected: type[Exception]
) -> None:
    connector = _connector(lambda _request: response)
    if expected is NotFound:
        assert connector.lookup(DID) is None
        return
    with pytest.raises(ConnectorError) as failed:
        connector.lookup(DID)
    assert failed.value.transient is (response.status_code >= 429)


def _account(request: httpx.Request, takedown: dict[str, Any] | None = None) -> httpx.Response:
    if request.url.path.endswith("getAccountInfo"):
        return httpx.Response(
            200,
            json={
                "did": DID,
                "handle": "alice.test",
                "email": "alice@example.org",
                "indexedAt": "2026-01-02T03:04:05.000Z",
                "invitesDisabled": False,
                "invites": [],
            },
        )
    if request.url.path.endswith("getSubjectStatus"):
        return httpx.Response(200, json={"takedown": takedown or {"applied": False}})
    raise AssertionError(f"unexpected {request.method} {request.url.path}")


def test_a_takedown_carries_the_request_id_as_its_ref() -> None:
    writes: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            writes.append(json.loads(request.content))
            return httpx.Response(200, json={})
        return _account(request)

    result = _connector(answer).execute(ExecutionOrder("account.suspend", DID, {}, "req-42"))
    assert writes == [
        {
            "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": DID},
            "takedown": {"applied": True, "ref": "req-42"},
        }
    ]
    assert result.summary["changes"] == {"taken_down": [False, True]}


def test_reconciliation_reads_the_ref_and_never_guesses() -> None:
    order = ExecutionOrder("account.suspend", DID, {}, "req-42")
    ours = _connector(lambda r: _account(r, {"applied": True, "ref": "req-42"}))
    assert ours.reconcile(order).applied is True
    # Taken down, but under another ref: someone else's takedown, or ours replaced.
    theirs = _connector(lambda r: _account(r, {"applied": True, "ref": "other"}))
    assert theirs.reconcile(order).applied is None
    # Not taken down: never applied, or applied and lifted since. Cannot tell.
    none = _connector(_account)
    assert none.reconcile(order).applied is None
    # Every other write leaves no record of who made it.
    email = ExecutionOrder("account.change_email", DID, {"email": "x@example.org"}, "req-43")
    assert none.reconcile(email).applied is None
    assert none.reconcile(ExecutionOrder("account.view", DID, {}, "req-44")).applied is False


def test_an_email_change_shows_addresses_masked_and_keeps_the_old_one_for_the_undo() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200)
        return _account(request)

    order = ExecutionOrder("account.change_email", DID, {"email": "new@example.net"}, "req-7")
    result = _connector(answer).execute(order)
    assert "alice@example.org" not in str(result.summary)
    assert "new@example.net" not in str(result.summary)
    assert result.undo_params == {"email": "alice@example.org"}


def test_a_500_to_an_email_change_is_an_unknown_outcome_never_done() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _xrpc_error(500, "InternalServerError", "Internal Server Error")
        return _account(request)

    order = ExecutionOrder("account.change_email", DID, {"email": "taken@example.org"}, "req-8")
    with pytest.raises(ConnectorError) as failed:
        _connector(answer).execute(order)
    assert failed.value.outcome_unknown
