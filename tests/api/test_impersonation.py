"""An approved `account.login_as` over HTTP: its answer, a session token on the account, is for
its requester alone (`ActionSpec.for_requester_only`), who carries it out with `POST
/v1/requests/{id}/execute` and gets the token once."""

from __future__ import annotations

import hashlib
from datetime import UTC

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.connectors.demo import DemoConnector
from foureyes.connectors.demo_tables import ChirpSessionRow
from foureyes.store.database import Database
from tests.api.conftest import Api, assert_problem
from tests.worlds import IMPERSONATION_POLICY, World, make_world

LOGIN_AS = {"action": "account.login_as", "account": "chirp:alice", "justification": "CASE-77"}


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, IMPERSONATION_POLICY)


def session_for(api: Api, token: str) -> ChirpSessionRow | None:
    """The demo platform's session this token opens, if any."""
    chirp = api.world.services.connector("chirp")
    assert isinstance(chirp, DemoConnector)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with chirp.database.transaction() as session:
        return session.scalar(select(ChirpSessionRow).where(ChirpSessionRow.token_sha256 == digest))


def test_the_requester_gets_the_approved_session_token_once(api: Api) -> None:
    request_id = api.submitted("e-3001", **LOGIN_AS)["id"]
    assert api.review("e-4001", request_id).json()["state"] == "approved"
    assert request_id not in worker.run_once(api.world.services).executed
    assert api.show("e-3001", request_id)["state"] == "approved"
    # The approver sees it and may not carry it out; nor may oversight.
    for other in ("e-4001", "e-9001"):
        response = api.post(other, f"/v1/requests/{request_id}/execute")
        assert "only for its requester" in assert_problem(response, 403, "forbidden")["detail"]
    assert api.show("e-3001", request_id)["state"] == "approved"

    response = api.post("e-3001", f"/v1/requests/{request_id}/execute")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["state"] == "executed"
    token = view["data"]["session_token"]
    opened = session_for(api, token)
    assert opened is not None  # the token signs in on the demo platform, as Alice
    assert (opened.account_id, opened.impersonated_by, opened.request_key) == (
        "alice",
        "e-3001",
        request_id,
    )
    assert opened.revoked_at is None
    assert opened.expires_at.replace(tzinfo=UTC) > api.world.clock.now
    stored = api.show("e-3001", request_id)
    assert "data" not in stored
    assert token not in str(stored)
    again = api.post("e-3001", f"/v1/requests/{request_id}/execute")
    assert "executed" in assert_problem(again, 409, "conflict")["detail"]


def test_an_approved_login_as_its_requester_never_carries_out_expires(api: Api) -> None:
    request_id = api.submitted("e-3001", **LOGIN_AS)["id"]
    api.review("e-4001", request_id)
    api.world.clock.advance(hours=4, seconds=1)
    assert worker.run_once(api.world.services).expired == [request_id]
    assert api.show("e-3001", request_id)["state"] == "expired"
    assert_problem(api.post("e-3001", f"/v1/requests/{request_id}/execute"), 409, "conflict")
