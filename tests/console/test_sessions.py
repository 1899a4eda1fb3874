"""Console sessions: sign-in with a token, the cookie, what is stored, sign-out, and the
re-checks that end a session (idle, contract over, token revoked)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import select, update

from foureyes.console.sessions import COOKIE, safe_next
from foureyes.store.tables import ConsoleSessionRow, EventRow, TokenRow
from tests.console.conftest import Console


def test_pages_send_a_stranger_to_the_login_page_and_back(console: Console) -> None:
    browser = console.browser()
    response = browser.get("/console/inbox?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/inbox%3Fx%3D1"
    signed = browser.post(
        "/console/login",
        {"token": console.token("e-3002"), "next": "/console/inbox?x=1"},
        csrf_from="/console/login",
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/console/inbox?x=1")
    assert "<h1>Inbox</h1>" in browser.get("/console/inbox").text


def test_a_form_posted_after_the_session_ended_comes_back_to_its_page(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    token = tomas.csrf("/console/")
    console.world.clock.advance(minutes=31)
    response = tomas.client.post(
        "/console/requests/new",
        data={"csrf": token, "account": "chirp:alice", "action": "account.lock"},
        headers={"Referer": "https://testserver/console/requests/new?account=chirp:alice"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/console/login?next=/console/requests/new%3Faccount%3Dchirp%3Aalice"
    )
    elsewhere = tomas.client.post(
        "/console/requests/new",
        data={"csrf": token},
        headers={"Referer": "https://evil.example/console/x"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/console/login?next=/console/"


def test_the_cookie_is_secure_httponly_lax_and_only_its_hash_is_stored(console: Console) -> None:
    browser = console.browser()
    response = browser.post(
        "/console/login", {"token": console.token("e-3001")}, csrf_from="/console/login"
    )
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path"} <= flags
    assert "samesite=lax" in cookie.lower()
    secret = browser.client.cookies[COOKIE]
    with console.world.services.database.transaction() as session:
        rows = list(session.scalars(select(ConsoleSessionRow)))
    assert [(r.id, r.staff_id, r.method) for r in rows] == [
        (hashlib.sha256(secret.encode()).hexdigest(), "e-3001", "token")
    ]
    assert all(secret not in (r.id, r.identity, r.client) for r in rows)


def test_signing_in_and_out_are_audit_events_and_sign_out_ends_the_session(
    console: Console,
) -> None:
    browser = console.signed_in("e-3001")
    secret = browser.client.cookies[COOKIE]
    out = browser.post("/console/logout", {})
    assert (out.status_code, out.headers["location"]) == (303, "/console/login?signed_out=1")
    # The old cookie, replayed, opens nothing: the row is gone.
    replay = console.browser()
    replay.client.cookies.set(COOKIE, secret, domain="testserver.local")
    assert replay.get("/console/", follow_redirects=False).status_code == 303
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(ConsoleSessionRow.id)) is None
        kinds = list(
            session.scalars(
                select(EventRow.kind).where(EventRow.kind.like("console.%")).order_by(EventRow.seq)
            )
        )
    assert kinds == ["console.signed_in", "console.signed_out"]


def test_a_session_ends_when_idle_when_the_contract_ends_or_the_token_is_revoked(
    console: Console,
) -> None:
    clock = console.world.clock
    kim = console.signed_in("c-1001")
    clock.advance(minutes=31)
    assert kim.get("/console/", follow_redirects=False).status_code == 303

    kim = console.signed_in("c-1001")
    clock.now = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)  # the day after Kim's last
    assert kim.get("/console/", follow_redirects=False).status_code == 303

    clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    tomas = console.signed_in("e-3001")
    assert tomas.get("/console/").status_code == 200
    with console.world.services.database.transaction() as session:
        session.execute(update(TokenRow).values(revoked_at=clock.now))
    assert tomas.get("/console/", follow_redirects=False).status_code == 303


def test_next_is_only_ever_a_console_path() -> None:
    assert safe_next("/console/requests/1?a=b") == "/console/requests/1?a=b"
    for hostile in (
        "https://evil.example/console/",
        "//evil.example/console/",
        "/\\evil.example",
        "/v1/requests",
        "/console\r\nSet-Cookie: x",
        "",
    ):
        assert safe_next(hostile) == "/console/"
