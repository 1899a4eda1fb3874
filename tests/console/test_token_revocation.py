"""Revoking a token (`operations.revoke_token`, as `foureyes staff revoke-token` does) ends the
console sessions opened with it at once, in the revocation's transaction, and only those."""

from __future__ import annotations

from sqlalchemy import select

from foureyes.console.sessions import COOKIE
from foureyes.store.tables import ConsoleSessionRow
from foureyes.workflow import operations
from tests.console.conftest import Console


def test_a_revoked_tokens_console_session_ends_at_once(console: Console) -> None:
    services = console.world.services
    phished = operations.issue_token(services, "e-3001", label="phished")
    victim = console.browser()
    signed = victim.post("/console/login", {"token": phished}, csrf_from="/console/login")
    assert signed.status_code == 303, signed.text
    victim_cookie = victim.client.cookies[COOKIE]
    elsewhere = console.signed_in("e-3001")  # the same person, with another token
    assert victim.get("/console/").status_code == 200

    operations.revoke_token(services, phished.split("_")[1])
    with services.database.transaction() as session:  # before any request: gone already
        assert len(list(session.scalars(select(ConsoleSessionRow)))) == 1

    ended = victim.get("/console/inbox", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/login?next=/console/inbox"
    # The session row is gone, so the cookie opens nothing even replayed later.
    with services.database.transaction() as session:
        assert len(list(session.scalars(select(ConsoleSessionRow)))) == 1
    replay = console.browser()
    replay.client.cookies.set(COOKIE, victim_cookie, domain="testserver.local")
    assert replay.get("/console/", follow_redirects=False).status_code == 303
    # And the token cannot open a new one.
    again = console.browser().post("/console/login", {"token": phished}, csrf_from="/console/login")
    assert again.status_code == 401
    assert elsewhere.get("/console/").status_code == 200
