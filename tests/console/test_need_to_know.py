"""The console keeps the same need-to-know rules as the API (foureyes.workflow.access): a
request page someone may not see is the page of an unknown id, the audit explorer and alerts
are for oversight staff (and linked only for them), and an account's history tells others only
that something happened."""

from __future__ import annotations

import re
import uuid
from html import unescape

from tests.console.conftest import Browser, Console

DEACTIVATE = {
    "account": "chirp:president",
    "action": "account.deactivate",
    "justification": "CASE-1234",
}
NAV_OVERSIGHT = ('href="/console/audit"', 'href="/console/alerts"')


def _submit(browser: Browser, form: dict[str, str]) -> str:
    response = browser.post("/console/requests/new", {**form, "do": "submit"})
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location.rsplit("/", 1)[1]


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _error(html: str) -> str:
    found = re.search(r'<p class="error" role="alert"[^>]*>([^<]*)</p>', html)
    assert found is not None, html
    return unescape(found.group(1))


def test_a_request_page_a_stranger_may_not_see_is_the_unknown_id_page(console: Console) -> None:
    kim = console.signed_in("c-1001")
    request_id = _submit(kim, DEACTIVATE)
    assert kim.get(f"/console/requests/{request_id}").status_code == 200
    mei = console.signed_in("e-3002")  # may review it
    assert "CASE-1234" in mei.get(f"/console/requests/{request_id}").text
    ana = console.signed_in("e-2001")
    hidden = ana.get(f"/console/requests/{request_id}")
    unknown_id = str(uuid.uuid4())
    unknown = ana.get(f"/console/requests/{unknown_id}")
    assert hidden.status_code == unknown.status_code == 404
    assert _error(hidden.text) == f"no request {request_id!r}"
    assert _error(unknown.text) == f"no request {unknown_id!r}"
    assert "CASE-1234" not in hidden.text
    # Her pages list nothing of it either, and her actions on it are the same 404.
    assert request_id not in ana.get("/console/inbox").text
    assert request_id not in ana.get("/console/accounts/chirp:president").text
    cancel = ana.post(f"/console/requests/{request_id}/cancel", {"reason": "x"})
    assert cancel.status_code == 404
    assert _error(cancel.text) == f"no request {request_id!r}"


def test_the_audit_explorer_and_alerts_are_linked_and_open_only_for_oversight(
    console: Console,
) -> None:
    kim = console.signed_in("c-1001")
    request_id = _submit(kim, DEACTIVATE)
    home = kim.get("/console/").text
    for link in NAV_OVERSIGHT:
        assert link not in home
    explorer = kim.get("/console/audit")
    assert explorer.status_code == 403
    assert _error(explorer.text) == "the audit log's events are for staff in leads or security"
    assert kim.get("/console/alerts").status_code == 403
    # The proof of an event of his own request is his to check, from its timeline.
    page = kim.get(f"/console/requests/{request_id}").text
    seqs = re.findall(r'href="/console/audit/events/(\d+)"', page)
    assert seqs
    assert 'data-verified="1"' in kim.get(f"/console/audit/events/{seqs[0]}").text
    # Another's is not (Ana's lock of bob's account).
    ana = console.signed_in("e-2001")
    anas = _submit(ana, {"account": "chirp:bob", "action": "account.lock", "justification": ""})
    ana_seqs = re.findall(
        r'href="/console/audit/events/(\d+)"', ana.get(f"/console/requests/{anas}").text
    )
    assert kim.get(f"/console/audit/events/{ana_seqs[0]}").status_code == 403
    for overseer in ("e-4001", "e-9001"):
        ines = console.signed_in(overseer)
        home = ines.get("/console/").text
        for link in NAV_OVERSIGHT:
            assert link in home
        assert ines.get("/console/audit").status_code == 200
        assert ines.get(f"/console/audit/events/{ana_seqs[0]}").status_code == 200
        assert ines.get("/console/alerts").status_code == 200


def test_an_accounts_history_tells_others_only_that_something_happened(
    console: Console,
) -> None:
    kim = console.signed_in("c-1001")
    _submit(kim, DEACTIVATE)
    ana = console.signed_in("e-2001")
    page = ana.get("/console/accounts/chirp:president").text
    history = _text(page).split("History (latest first)")[1]
    assert "request submitted" in history
    assert "account.deactivate" in history
    for secret in ("c-1001", "Kim Varga", "CASE-1234"):
        assert secret not in history
    assert 'href="/console/audit' not in page
    ines = console.signed_in("e-4001").get("/console/accounts/chirp:president").text
    assert "request submitted by c-1001 Kim Varga" in _text(ines)
    assert "CASE-1234" in ines
    assert 'href="/console/audit?account=chirp%3Apresident"' in ines
