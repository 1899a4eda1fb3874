"""CSRF: every state-changing console form needs the session's token; without it, 403 and
nothing changes."""

from __future__ import annotations

from sqlalchemy import func, select

from foureyes.store.tables import ConsoleSessionRow, RequestRow
from tests.console.conftest import Console

ASK = {
    "account": "chirp:alice",
    "action": "account.lock",
    "justification": "CASE-1",
    "do": "submit",
}


def _requests(console: Console) -> int:
    with console.world.services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


def test_a_form_without_the_token_or_with_another_is_refused_and_changes_nothing(
    console: Console,
) -> None:
    ana = console.signed_in("e-2001")
    other = console.signed_in("e-3001")
    for token in (None, "", "forged", other.csrf("/console/")):
        data = dict(ASK) if token is None else {**ASK, "csrf": token}
        response = ana.client.post("/console/requests/new", data=data, follow_redirects=False)
        assert response.status_code == 403, token
        assert "text/html" in response.headers["content-type"]
        assert 'data-problem="csrf-failed"' in response.text
    assert _requests(console) == 0
    # With its own token the same form works.
    assert ana.post("/console/requests/new", ASK).status_code == 303
    assert _requests(console) == 1


def test_the_header_carries_the_token_for_scripts(console: Console) -> None:
    ana = console.signed_in("e-2001")
    token = ana.csrf("/console/")
    refused = ana.client.post("/console/logout", headers={"X-CSRF-Token": "nope"})
    assert refused.status_code == 403
    signed_out = ana.client.post(
        "/console/logout", headers={"X-CSRF-Token": token}, follow_redirects=False
    )
    assert signed_out.status_code == 303
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(ConsoleSessionRow.id)) is None


def test_the_login_form_needs_its_token_too(console: Console) -> None:
    browser = console.browser()
    browser.get("/console/login")
    response = browser.client.post(
        "/console/login", data={"token": console.token("e-2001")}, follow_redirects=False
    )
    assert response.status_code == 403
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(ConsoleSessionRow.id)) is None
