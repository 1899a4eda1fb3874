"""What oversight and everyone else need (issue 19): the all-requests view with its filters in
the URL and paging, which never shows a reader a request they may not see; the account search
by prefix and its typeahead, which matches handles only; the audit log one line per event with
its filters kept across pages; alerts most severe first, acknowledged with a note that is an
audit event of the same transaction."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store.tables import EventRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Console

KIM, ANA, TOMAS, MEI, INES = "c-1001", "e-2001", "e-3001", "e-3002", "e-4001"
DEACTIVATE = Submission("account.deactivate", "chirp:president", justification="CASE-1234")
SUSPEND = Submission("account.suspend", "chirp:president", justification="CASE-7")


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _submit(console: Console, staff_id: str, submission: Submission) -> str:
    request_id, _ = operations.submit_and_run(
        console.world.services, console.world.actor(staff_id), submission
    )
    return request_id


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-request-id="([^"]+)">', html)


def test_oversight_filters_every_request_by_state_action_tier_requester_and_account(
    console: Console,
) -> None:
    deactivation = _submit(console, KIM, DEACTIVATE)
    suspension = _submit(console, TOMAS, SUSPEND)
    lock = _submit(console, ANA, Submission("account.lock", "chirp:alice"))
    ines = console.signed_in(INES)
    everyone = ines.get("/console/requests?mine=0").text
    assert set(_rows(everyone)) == {deactivation, suspension, lock}
    assert "Kim Varga" in _text(everyone)  # requesters by name
    by = {
        "action=account.suspend": {suspension},
        "tier=vit": {deactivation, suspension},
        "tier=standard": {lock},
        f"requester={KIM}": {deactivation},
        "account=chirp:alice": {lock},
        "state=executed": {lock},
        "state=pending&tier=vit&action=account.deactivate": {deactivation},
    }
    for query, expected in by.items():
        page = ines.get(f"/console/requests?mine=0&{query}").text
        assert set(_rows(page)) == expected, query
    # The filters stay in the form (and so in the URL of the next page).
    page = ines.get("/console/requests?mine=0&tier=vit&requester=c-1001").text
    assert 'name="tier" type="text" value="vit"' in page
    assert 'name="requester" type="text" value="c-1001"' in page


def test_a_filter_never_shows_a_request_its_reader_may_not_see(console: Console) -> None:
    deactivation = _submit(console, KIM, DEACTIVATE)
    ana = console.signed_in(ANA)  # support: may not see Kim's vit deactivation
    for query in (
        "mine=0",
        "mine=0&tier=vit",
        f"mine=0&requester={KIM}",
        "mine=0&account=chirp:president",
        "mine=0&state=pending&action=account.deactivate",
    ):
        page = ana.get(f"/console/requests?{query}").text
        assert deactivation not in page, query
        assert "CASE-1234" not in page
    # Mei may review it: she sees it.
    assert deactivation in console.signed_in(MEI).get("/console/requests?mine=0&tier=vit").text


def test_the_requests_list_pages_with_its_filters(console: Console) -> None:
    made = [_submit(console, ANA, Submission("account.view", "chirp:alice")) for _ in range(27)]
    ana = console.signed_in(ANA)
    first = ana.get("/console/requests?action=account.view").text
    assert len(_rows(first)) == 25
    older = re.search(r'href="(/console/requests\?[^"]+)" rel="next"', first)
    assert older is not None
    link = unescape(older.group(1))
    assert "action=account.view" in link
    assert "before=" in link
    second = ana.get(link).text
    assert len(_rows(second)) == 2
    assert set(_rows(first)) | set(_rows(second)) == set(made)


def test_accounts_are_found_by_the_first_letters_of_their_handle(console: Console) -> None:
    tomas = console.signed_in(TOMAS)
    page = tomas.get("/console/accounts?q=pre", follow_redirects=False)
    assert page.status_code == 200
    assert 'href="/console/accounts/chirp:president"' in page.text
    exact = tomas.get("/console/accounts?q=@president", follow_redirects=False)
    assert exact.headers["location"] == "/console/accounts/chirp:president"
    assert tomas.get("/console/account-suggestions?q=ne").json() == {"items": ["chirp:newsdesk"]}
    assert tomas.get("/console/account-suggestions?q=chirp:b").json() == {"items": []}
    assert tomas.get("/console/account-suggestions?q=chirp:bo").json() == {"items": ["chirp:bob"]}


def test_the_account_search_matches_handles_only_and_no_pattern(console: Console) -> None:
    """A search answers refs whose handle starts with what was typed: never a match on a
    private attribute (the email), on LIKE's pattern characters, or on foureyes' own
    governance platform."""
    president_email = console.world.chirp("president")["email"]
    assert president_email
    ana = console.signed_in(ANA)
    for probe in (
        president_email,
        president_email.split("@")[1],
        "%",
        "%%",
        "_r",
        "__",
        "p%",
        "foureyes:pol",
        "foureyes:",
        "a",  # one letter: too short to list
    ):
        answer = ana.get("/console/account-suggestions", params={"q": probe}).json()
        assert answer == {"items": []}, probe
        page = ana.get("/console/accounts", params={"q": probe}, follow_redirects=False)
        assert page.status_code == 200, probe
        assert "data-results" not in page.text, probe


def test_the_audit_log_is_one_line_per_event_with_its_filters_across_pages(
    console: Console,
) -> None:
    for _ in range(30):
        _submit(console, ANA, Submission("account.view", "chirp:alice"))
    ines = console.signed_in(INES)
    page = ines.get("/console/audit?kind=request.submitted").text
    rows = re.findall(r'<tr data-seq="(\d+)">(.*?)</tr>', page, re.S)
    assert len(rows) == 30
    for _, row in rows:
        assert row.count("<details>") == 1  # the details folded
    assert "Ana Lima" in _text(page)
    everything = ines.get("/console/audit").text
    later = re.search(r'href="(/console/audit\?[^"]+)" rel="next"', everything)
    assert later is not None
    filtered = ines.get("/console/audit?action=account.view").text
    nxt = re.search(r'href="(/console/audit\?[^"]+)" rel="next"', filtered)
    assert nxt is not None
    assert "action=account.view" in unescape(nxt.group(1))
    assert "before=" in unescape(nxt.group(1))  # newest first: the next page is older
    # Still for oversight only.
    assert console.signed_in(ANA).get("/console/audit").status_code == 403


def test_alerts_are_most_severe_first_and_acknowledged_with_a_note(console: Console) -> None:
    services = console.world.services
    ids = {}
    with services.database.transaction() as session:
        for detector, severity in (
            ("first_low", "low"),
            ("critical_one", "critical"),
            ("medium_one", "medium"),
            ("high_old", "high"),
            ("high_new", "high"),
        ):
            row = raise_alert(
                services,
                session,
                NewAlert(detector, severity, f"{detector} happened", TOMAS),
                now=services.clock(),
            )
            assert row is not None
            ids[detector] = row.id
    ines = console.signed_in(INES)
    page = ines.get("/console/alerts").text
    order = re.findall(r'data-alert-id="\d+" data-severity="(\w+)"', page)
    assert order == ["critical", "high", "high", "medium", "low"]
    assert page.index("high_new happened") < page.index("high_old happened")
    assert 'title="2026-11-25 15:00 UTC"' in page
    acked = ines.post(
        f"/console/alerts/{ids['high_new']}/ack", {"comment": "checked with Tomas: a drill"}
    )
    assert acked.status_code == 303
    shown = ines.get("/console/alerts?state=acknowledged").text
    assert "checked with Tomas: a drill" in shown
    assert "by e-4001 Ines Duarte" in _text(shown)
    with services.database.transaction() as session:
        event = session.scalars(select(EventRow).where(EventRow.kind == "alert.acknowledged")).one()
        assert "checked with Tomas: a drill" in bytes(event.body).decode()
    # A cursor that is not one is refused, not guessed.
    assert ines.get("/console/alerts?after=x.1").status_code == 422
