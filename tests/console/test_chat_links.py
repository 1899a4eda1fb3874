"""Chat notifications link to the console's review page bound to the request's digest
(`/console/requests/<id>?digest=…`): the page offers the review only when that digest is the
request's, and nothing is ever approved from a chat: a forged chat callback (a POST shaped
like Slack's interaction payload, or Matrix's, to any console or API URL) approves nothing."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from foureyes.store.tables import EventRow, ReviewRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import BASE_URL, Console

ANA, MEI = "e-2001", "e-3002"
REVIEW_FORM = 'action="/console/requests/{}/review"'


def _pending(console: Console) -> tuple[str, str]:
    services = console.world.services
    request_id = operations.submit(
        services,
        console.world.actor(ANA),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    return request_id, str(operations.show(services, request_id)["digest"])


def test_the_link_with_the_requests_digest_offers_the_review(console: Console) -> None:
    request_id, digest = _pending(console)
    page = console.signed_in(MEI).get(f"/console/requests/{request_id}?digest={digest}").text
    assert REVIEW_FORM.format(request_id) in page
    assert "data-digest-mismatch" not in page


@pytest.mark.parametrize(
    "bad", ["0" * 64, "", "{digest_upper}", "{other}", "{digest}x", "{digest}%00"]
)
def test_a_link_with_another_digest_warns_and_offers_no_review(console: Console, bad: str) -> None:
    request_id, digest = _pending(console)
    _, other = _pending(console)
    given = bad.format(digest_upper=digest.upper(), other=other, digest=digest)
    page = console.signed_in(MEI).get(f"/console/requests/{request_id}?digest={given}").text
    assert "data-digest-mismatch" in page
    assert "its digest differs" in page
    assert REVIEW_FORM.format(request_id) not in page


def test_signing_in_from_the_link_keeps_its_digest(console: Console) -> None:
    """An approver who is not signed in when they click comes back to the same bound link."""
    request_id, digest = _pending(console)
    answer = console.browser().get(
        f"/console/requests/{request_id}?digest={digest}", follow_redirects=False
    )
    assert answer.status_code in (302, 303, 307)
    location = httpx.URL(answer.headers["location"])
    assert location.path == "/console/login"
    assert location.params["next"] == f"/console/requests/{request_id}?digest={digest}"


def _slack_interaction(request_id: str, digest: str) -> dict[str, str]:
    """What Slack POSTs to an app's request URL when a button is clicked (form-encoded,
    `payload` a JSON document), made to look like an approval of this request."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "mei"},
        "api_app_id": "A0001",
        "token": "verification-token",
        "trigger_id": "123.456.abc",
        "actions": [
            {
                "type": "button",
                "action_id": "approve",
                "block_id": request_id,
                "value": json.dumps({"request": request_id, "digest": digest, "approve": True}),
            }
        ],
    }
    return {"payload": json.dumps(payload)}


def _approvals(console: Console, request_id: str) -> tuple[int, int, str]:
    services = console.world.services
    with services.database.transaction() as session:
        reviews = session.scalar(
            select(func.count()).select_from(ReviewRow).where(ReviewRow.request_id == request_id)
        )
        events = session.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.request_id == request_id)
        )
    return int(reviews or 0), int(events or 0), str(operations.show(services, request_id)["state"])


def test_a_forged_chat_callback_approves_nothing(console: Console) -> None:
    request_id, digest = _pending(console)
    before = _approvals(console, request_id)
    assert before[0] == 0
    assert before[2] == "pending"
    anonymous = TestClient(console.app, base_url=BASE_URL)
    slack_headers = {"X-Slack-Request-Timestamp": "1765040000", "X-Slack-Signature": "v0=00"}
    targets = [
        "/slack/interactions",
        "/slack/actions",
        "/v1/slack/interactions",
        "/v1/chat/callback",
        "/console/slack",
        "/console/chat/approve",
        f"/console/requests/{request_id}",
        f"/console/requests/{request_id}?digest={digest}",
        f"/console/requests/{request_id}/review",
        f"/v1/requests/{request_id}/reviews",
    ]
    form = _slack_interaction(request_id, digest) | {"decision": "approve", "digest": digest}
    matrix_like = {
        "type": "m.room.message",
        "sender": "@mei:matrix.test",
        "content": {"body": f"!approve {request_id} {digest}", "msgtype": "m.text"},
        "decision": "approve",
        "digest": digest,
    }
    # Even from a reviewer's own signed-in browser, a cross-site post without the form's CSRF
    # token (what a callback would be) approves nothing.
    mei = console.signed_in(MEI)
    for client in (anonymous, mei.client):
        for target in targets:
            for answer in (
                client.post(target, data=form, headers=slack_headers, follow_redirects=False),
                client.post(target, json=matrix_like, follow_redirects=False),
            ):
                refused = answer.status_code in (400, 401, 403, 404, 405, 415, 422)
                to_login = answer.status_code == 303 and answer.headers["location"].startswith(
                    "/console/login"
                )
                assert refused or to_login, (target, answer.status_code, answer.headers)
    assert _approvals(console, request_id) == before
