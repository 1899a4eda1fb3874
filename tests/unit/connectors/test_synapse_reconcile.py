"""The `synapse` connector's reconciliation, against a scripted admin API: Synapse keeps no
record of which call changed a user, so an interrupted write can never be credited from the
user's state (issue #15 item 4). The real homeserver runs in
tests/integration/test_synapse_connector.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from foureyes.connectors.base import ExecutionOrder
from foureyes.connectors.synapse import NO_RECORD, SYNAPSE_ACTIONS, SynapseConnector
from foureyes.model import ActionKind

ALICE = "@alice:example.org"
# A user every toggle already shows as applied: locked, suspended, shadow-banned, deactivated,
# erased, an admin, and no devices left (what `account.logout_all` leaves).
EVERYTHING_SET = {
    "name": ALICE,
    "locked": True,
    "suspended": True,
    "shadow_banned": True,
    "deactivated": True,
    "erased": True,
    "admin": True,
    "creation_ts": 1_700_000_000,
}


class Homeserver:
    """Answers the admin API's reads for one user; any write is a test failure (reconciling
    must change nothing)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET", f"reconcile sent {request.method} {request.url.path}"
        if self.status != 200:
            return httpx.Response(self.status, json={"errcode": "M_UNKNOWN"})
        path = request.url.path
        answer: dict[str, Any]
        if path.endswith("/joined_rooms"):
            answer = {"joined_rooms": [], "total": 0}
        elif path.endswith("/devices"):
            answer = {"devices": [], "total": 0}
        else:
            answer = EVERYTHING_SET
        return httpx.Response(200, content=json.dumps(answer).encode())


def connector(server: Homeserver) -> SynapseConnector:
    return SynapseConnector(
        "https://matrix.example.org",
        "admin-token",
        server_name="example.org",
        transport=httpx.MockTransport(server),
        sleep=lambda _: None,
    )


def order(action: str) -> ExecutionOrder:
    params: dict[str, Any] = {}
    if action == "account.read_room_messages":
        params = {"room_id": "!room:example.org"}
    return ExecutionOrder(action, ALICE, params, idempotency_key="req-1", requester="e-3001")


WRITES = [spec.name for spec in SYNAPSE_ACTIONS if spec.kind is ActionKind.WRITE]
READS = [spec.name for spec in SYNAPSE_ACTIONS if spec.kind is ActionKind.READ]


@pytest.mark.parametrize("action", WRITES)
def test_an_interrupted_write_cannot_be_told_even_when_the_user_shows_it(action: str) -> None:
    server = Homeserver()
    found = connector(server).reconcile(order(action))
    assert found.applied is None
    assert found.why == NO_RECORD
    assert found.state["locked"] is True  # shown for the log, deciding nothing


@pytest.mark.parametrize("action", READS)
def test_an_interrupted_read_runs_again_without_asking(action: str) -> None:
    server = Homeserver()
    assert connector(server).reconcile(order(action)).applied is False
    assert server.requests == []


def test_a_homeserver_that_cannot_answer_leaves_the_state_out_not_the_verdict() -> None:
    found = connector(Homeserver(status=502)).reconcile(order("account.lock"))
    assert found.applied is None
    assert found.state == {}
