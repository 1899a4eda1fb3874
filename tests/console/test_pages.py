"""The console's pages over the demo world: asking (dry run first), the inbox and reviews,
my requests, accounts, the audit explorer, alerts, the policy, and errors as HTML pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

from sqlalchemy import func, select

from foureyes import worker
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, RequestRow, ReviewRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Browser, Console, console_for
from tests.worlds import IMPERSONATION_POLICY, make_world

DEACTIVATE = {
    "account": "chirp:president",
    "action": "account.deactivate",
    "justification": "CASE-1234",
}
SUSPEND = {"account": "chirp:president", "action": "account.suspend", "justification": "CASE-7"}


def _submit(browser: Browser, form: dict[str, str]) -> str:
    response = browser.post("/console/requests/new", {**form, "do": "submit"})
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert location.startswith("/console/requests/")
    return location.rsplit("/", 1)[1]


def _count(console: Console, table: type[RequestRow] | type[ReviewRow]) -> int:
    with console.world.services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _digest(html: str) -> str:
    """The request digest in the page's (first) review or sign-off form."""
    found = re.search(r'name="digest" value="([0-9a-f]+)"', html)
    assert found is not None, "no digest on the page"
    return found.group(1)


def _text(html: str) -> str:
    """The page's text, tags dropped and spaces collapsed, to assert on what a person reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_asking_shows_the_decision_and_the_change_before_anything_is_submitted(
    console: Console,
) -> None:
    tomas = console.signed_in("e-3001")
    page = tomas.get("/console/requests/new?account=chirp:president&action=account.deactivate")
    assert page.status_code == 200
    assert 'name="justification"' in page.text
    checked = tomas.post("/console/requests/new", {**DEACTIVATE, "do": "check"})
    assert checked.status_code == 200
    assert 'data-outcome="pending"' in checked.text
    text = _text(checked.text)
    assert "it takes at least 4 people in all, counting whoever asks" in text
    assert (
        "2 approvals from people who are employees, in trust-safety and not the requester's "
        "manager (rule vit-significant-changes)" in text
    )
    assert "Condition (CEL)" in text  # the rule's CEL, behind a disclosure
    assert "Approvals need a security key." in text
    assert "status active deactivated" in text  # the before/after table
    assert _count(console, RequestRow) == 0
    request_id = _submit(tomas, DEACTIVATE)
    shown = _text(tomas.get(f"/console/requests/{request_id}").text)
    assert "account.deactivate on chirp:president pending" in shown
    assert "request submitted by e-3001 Tomas Berg" in shown


def test_a_refusal_shows_the_policy_s_reasons_and_links_the_recorded_request(
    console: Console,
) -> None:
    console.world.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    kim = console.signed_in("c-1001")
    refused = kim.post("/console/requests/new", {**DEACTIVATE, "do": "submit"})
    assert refused.status_code == 403
    assert 'data-refused="1"' in refused.text
    assert "departing-contractors-read-only" in refused.text
    link = re.search(r'href="/console/requests/([0-9a-f-]{36})"', refused.text)
    assert link is not None
    recorded = kim.get(f"/console/requests/{link.group(1)}")
    assert "denied" in _text(recorded.text)


def test_parameters_are_inputs_built_from_the_action_s_schema(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    page = tomas.get("/console/requests/new?account=chirp:alice&action=account.change_email")
    assert re.search(
        r'<input id="param.email" name="param.email" type="email"[^>]* required', page.text
    )
    suspend = tomas.get("/console/requests/new?account=chirp:alice&action=account.suspend")
    assert 'name="param.reason" type="text" value="" maxlength="500"' in suspend.text
    unknown = tomas.post(
        "/console/requests/new",
        {"account": "chirp:alice", "action": "account.lock", "param.evil": "1", "do": "check"},
    )
    assert unknown.status_code == 422
    assert "&#39;evil&#39; is not a parameter of this action" in unknown.text


def test_the_inbox_shows_who_asks_the_account_the_change_and_the_step_up_form(
    console: Console,
) -> None:
    kim = console.signed_in("c-1001")
    request_id = _submit(kim, DEACTIVATE)
    mei = console.signed_in("e-3002")
    inbox = mei.get("/console/inbox")
    text = _text(inbox.text)
    assert "c-1001 Kim Varga contractor via Outsourcing Co" in text
    assert "217 days left on contract (ends 2027-06-30)" in text
    assert "Tier vit" in text
    assert "CASE-1234" in text
    assert "status active deactivated" in text
    # Who must approve, by name: Tomas, Kim's manager, is not among them.
    assert (
        "Nobody has approved yet; still needs 2 from: e-3002 Mei Chen , e-3003 Sam Okafor , "
        "e-9001 Jo Hart ." in text
    )
    assert "still needs 1 from: e-4001 Ines Duarte ." in text
    assert "expires in 4 h" in text
    form = re.search(r"<form [^>]*review-form[^>]*>", inbox.text)
    assert form is not None
    assert f'data-step-up="1" data-request-id="{request_id}"' in form.group(0)
    assert '<script src="/console/static/webauthn.js"></script>' in inbox.text
    for field in ("csrf", "digest", "step_up", "comment", "confirm_handle", "decision"):
        assert f'name="{field}"' in inbox.text
    assert 'data-decision="approve"' in inbox.text
    assert 'data-decision="deny"' in inbox.text
    # Without the security key's answer the review is refused, and nothing is recorded.
    digest = _digest(inbox.text)
    refused = mei.post(
        f"/console/requests/{request_id}/review",
        {"decision": "approve", "digest": digest, "confirm_handle": "president"},
    )
    assert refused.status_code == 403
    assert "needs step-up" in refused.text
    assert _count(console, ReviewRow) == 0
    # Kim's own inbox is empty: nobody reviews their own request; her home lists it as open.
    assert 'data-empty="1"' in kim.get("/console/inbox").text
    assert "account.deactivate on chirp:president pending" in _text(kim.get("/console/").text)
    assert "1 request waits for your review." in _text(mei.get("/console/").text)


def test_a_destructive_approval_needs_the_account_handle_typed(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    request_id = _submit(tomas, SUSPEND)
    mei = console.signed_in("e-3002")
    page = mei.get(f"/console/requests/{request_id}").text
    digest = _digest(page)
    base = {"decision": "approve", "digest": digest, "comment": "seen the case"}
    for typed in ("", "presidnt", "chirp:president"):
        refused = mei.post(
            f"/console/requests/{request_id}/review", {**base, "confirm_handle": typed}
        )
        assert refused.status_code == 422
        assert "type the account&#39;s handle exactly (president)" in refused.text
    assert _count(console, ReviewRow) == 0
    approved = mei.post(
        f"/console/requests/{request_id}/review", {**base, "confirm_handle": "@president"}
    )
    assert approved.status_code == 303
    shown = _text(mei.get(approved.headers["location"]).text)
    assert "Your review is recorded." in shown
    assert "e-3002 Mei Chen approve seen the case" in shown
    # A denial needs no handle.
    sam = console.signed_in("e-3003")
    denied = sam.post(
        f"/console/requests/{request_id}/review", {**base, "decision": "deny", "comment": "no"}
    )
    assert denied.status_code == 303
    assert operations.show(console.world.services, request_id)["state"] == "denied"


def test_my_requests_cancel_and_undo(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    pending = _submit(tomas, SUSPEND)
    mine = _text(tomas.get("/console/requests").text)
    assert "account.suspend chirp:president vit pending 2 approval(s)" in mine
    assert (
        tomas.post(f"/console/requests/{pending}/cancel", {"reason": "wrong account"}).status_code
        == 303
    )
    assert operations.show(console.world.services, pending)["state"] == "cancelled"

    ana = console.signed_in("e-2001")
    locked = _submit(ana, {"account": "chirp:alice", "action": "account.lock", "justification": ""})
    assert console.world.chirp("alice")["status"] == "locked"
    assert "Undo (account.unlock)" in ana.get(f"/console/requests/{locked}").text
    undone = ana.post(f"/console/requests/{locked}/undo", {"justification": "mistake"})
    assert undone.status_code == 303
    assert console.world.chirp("alice")["status"] == "active"


def test_a_read_shows_its_answer_once(console: Console) -> None:
    ana = console.signed_in("e-2001")
    view = {"account": "chirp:alice", "action": "account.view", "justification": "", "do": "submit"}
    shown = ana.post("/console/requests/new", view)
    assert shown.status_code == 200
    text = _text(shown.text)
    assert "What the platform answered Shown this once" in text
    assert "followers 1200" in text
    link = re.search(r"<code[^>]*>([0-9a-f-]{36})</code>", shown.text)
    assert link is not None
    again = _text(ana.get(f"/console/requests/{link.group(1)}").text)
    assert "executed" in again
    assert "What the platform answered" not in again


def test_an_approved_read_is_carried_out_when_its_requester_asks(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    dms = {"account": "chirp:alice", "action": "account.read_dms", "justification": "LEGAL-7"}
    request_id = _submit(tomas, dms)
    ravi = console.signed_in("e-5001")
    page = ravi.get(f"/console/requests/{request_id}").text
    digest = _digest(page)
    reviewed = ravi.post(
        f"/console/requests/{request_id}/review",
        {"decision": "approve", "digest": digest, "comment": "court order"},
    )
    assert reviewed.status_code == 303
    assert "Carry it out now" not in ravi.get(f"/console/requests/{request_id}").text
    assert "Carry it out now" in tomas.get(f"/console/requests/{request_id}").text
    shown = tomas.post(f"/console/requests/{request_id}/execute", {})
    assert shown.status_code == 200
    assert "What the platform answered Shown this once" in _text(shown.text)
    assert operations.show(console.world.services, request_id)["state"] == "executed"


def test_an_approved_login_as_is_carried_out_from_its_page_by_its_requester_alone(
    database: Database, tmp_path: Path
) -> None:
    # Its answer, a session token on the account, is for the requester alone.
    console = console_for(make_world(database, IMPERSONATION_POLICY), tmp_path / "data")
    world = console.world
    request_id = operations.submit(
        world.services,
        world.actor("e-3001"),
        Submission("account.login_as", "chirp:alice", justification="CASE-77"),
    )
    ines = console.signed_in("e-4001")
    digest = _digest(ines.get(f"/console/requests/{request_id}").text)
    approved = ines.post(  # irreversible: the account's handle is typed
        f"/console/requests/{request_id}/review",
        {"decision": "approve", "digest": digest, "confirm_handle": "alice"},
    )
    assert approved.status_code == 303
    assert worker.run_once(world.services).executed == []
    seen_by_ines = _text(ines.get(f"/console/requests/{request_id}").text)
    assert "Carried out only when its requester asks" in seen_by_ines
    assert "Carry it out now" not in seen_by_ines
    tomas = console.signed_in("e-3001")
    page = _text(tomas.get(f"/console/requests/{request_id}").text)
    assert "Its answer is for you alone: it is carried out only when you ask" in page
    assert "Carry it out now" in page
    shown = tomas.post(f"/console/requests/{request_id}/execute", {})
    assert shown.status_code == 200
    text = _text(shown.text)
    assert "What the platform answered Shown this once" in text
    assert "session token" in text
    assert operations.show(world.services, request_id)["state"] == "executed"
    assert "What the platform answered" not in tomas.get(f"/console/requests/{request_id}").text


def test_a_login_as_scheduled_by_a_delay_is_offered_to_its_requester_once_the_delay_ran(
    database: Database, tmp_path: Path
) -> None:
    delayed = IMPERSONATION_POLICY.replace("    expires: 4h\n", "    expires: 4h\n    delay: 1h\n")
    console = console_for(make_world(database, delayed), tmp_path / "data")
    world = console.world
    request_id = operations.submit(
        world.services,
        world.actor("e-3001"),
        Submission("account.login_as", "chirp:alice", justification="CASE-78"),
    )
    world.review("e-4001", request_id, step_up=False)
    assert operations.show(world.services, request_id)["state"] == "scheduled"
    during = console.signed_in("e-3001")
    assert "Carry it out now" not in during.get(f"/console/requests/{request_id}").text
    world.clock.advance(hours=1, seconds=1)  # the delay has run: it waits for Tomas
    assert worker.run_once(world.services).executed == []
    tomas = console.signed_in("e-3001")  # (an hour idle ended the first session)
    assert "Carry it out now" in tomas.get(f"/console/requests/{request_id}").text
    ines = console.signed_in("e-4001")
    assert "Carry it out now" not in ines.get(f"/console/requests/{request_id}").text
    shown = tomas.post(f"/console/requests/{request_id}/execute", {})
    assert shown.status_code == 200
    assert "session token" in _text(shown.text)
    assert operations.show(world.services, request_id)["state"] == "executed"


def test_a_break_glass_is_signed_off_from_the_inbox(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    request_id = _submit(tomas, {**SUSPEND, "break_glass": "on"})
    assert console.world.chirp("president")["status"] == "suspended"
    mei = console.signed_in("e-3002")
    inbox = mei.get("/console/inbox").text
    assert "Break-glass sign-offs" in inbox
    assert f'href="/console/requests/{request_id}"' in inbox
    page = mei.get(f"/console/requests/{request_id}").text
    assert "Sign off this break-glass" in page
    digest = _digest(page)
    signed = mei.post(
        f"/console/requests/{request_id}/post-review",
        {"decision": "approve", "digest": digest, "comment": "right call"},
    )
    assert signed.status_code == 303
    assert "Sign off this break-glass" not in mei.get(f"/console/requests/{request_id}").text
    kinds = [r["kind"] for r in operations.show(console.world.services, request_id)["reviews"]]
    assert kinds == ["post_review"]


def test_finding_an_account_by_handle_shows_its_tier_pins_and_history(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    found = tomas.get("/console/accounts?q=@president", follow_redirects=False)
    assert found.headers["location"] == "/console/accounts/chirp:president"
    request_id = _submit(tomas, SUSPEND)
    page = tomas.get("/console/accounts/chirp:president").text
    text = _text(page)
    assert "Tier vit" in text
    assert "followers 41.7M" in text
    assert 'title="41,700,000"' in page
    assert f'href="/console/requests/{request_id}"' in page
    # Tomas does not oversee: he reads that the account was acted on, not who did it or why.
    history = text.split("History (latest first)")[1]
    assert "request submitted · now Details action account.suspend" in history
    assert 'title="2026-11-25 15:00 UTC"' in page
    assert "by e-3001" not in history
    assert "CASE-7" not in history
    assert "History (latest first)" in text
    ines = _text(console.signed_in("e-4001").get("/console/accounts/chirp:president").text)
    assert "request submitted by e-3001 Tomas Berg" in ines
    assert "CASE-7" in ines
    missing = tomas.get("/console/accounts?q=nobody-at-all")
    assert "No account nobody-at-all on any connected platform." in _text(missing.text)


def test_the_audit_explorer_filters_and_proves_each_event(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    _submit(tomas, SUSPEND)
    ines = console.signed_in("e-4001")  # the audit explorer is for oversight staff
    listed = ines.get("/console/audit?account=chirp:president&staff=e-3001").text
    seqs = re.findall(r'<a href="/console/audit/events/(\d+)"', listed)
    assert len(seqs) == 1
    proof = ines.get(f"/console/audit/events/{seqs[0]}").text
    assert 'data-verified="1"' in proof
    assert "request submitted" in _text(proof)
    bad = ines.get("/console/audit?since=yesterday")
    assert bad.status_code == 422
    assert "since: &#39;yesterday&#39; is not a date or time" in bad.text


def test_alerts_are_listed_and_acknowledged_by_security_only(console: Console) -> None:
    services = console.world.services
    with services.database.transaction() as session:
        row = raise_alert(
            services,
            session,
            NewAlert("burst", "high", "e-3001 asked for 9 deactivations in an hour", "e-3001"),
            now=services.clock(),
        )
        assert row is not None
        alert_id = row.id
    tomas = console.signed_in("e-3001")
    assert tomas.get("/console/alerts").status_code == 403
    ines = console.signed_in("e-4001")
    page = ines.get("/console/alerts").text
    assert "e-3001 asked for 9 deactivations in an hour" in page
    done = ines.post(f"/console/alerts/{alert_id}/ack", {"comment": "spoke to Tomas"})
    assert done.status_code == 303
    with services.database.transaction() as session:
        acked = session.get(AlertRow, alert_id)
        assert acked is not None
        assert acked.acknowledged_by == "e-4001"


def test_the_policy_page_shows_rules_and_answers_a_dry_run(console: Console) -> None:
    ana = console.signed_in("e-2001")
    page = ana.get(
        "/console/policy?action=account.read_dms&account=chirp:alice&justification="
    ).text
    text = _text(page)
    assert "vit-significant-changes require" in text
    assert 'data-outcome="denied"' in page
    assert "no-dms-or-impersonation-for-support" in text


def test_errors_are_pages_on_the_console_and_problems_on_the_api(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    missing = tomas.get("/console/requests/no-such-request")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "no request &#39;no-such-request&#39;" in missing.text
    api = tomas.client.get(
        "/v1/requests/no-such-request",
        headers={"Authorization": f"Bearer {console.token('e-3001')}"},
    )
    assert (api.status_code, api.headers["content-type"]) == (404, "application/problem+json")
    assert tomas.get("/console/nowhere").status_code == 404
    # The console is for browsers: none of it is in the API's OpenAPI document.
    paths = tomas.client.get("/openapi.json").json()["paths"]
    assert paths
    assert not [path for path in paths if path.startswith("/console")]
