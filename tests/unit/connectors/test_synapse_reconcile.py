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
from foureyes.errors import ConnectorError
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


# The same user before anything was done to them.
NOTHING_SET = {
    "locked": False,
    "suspended": False,
    "shadow_banned": False,
    "deactivated": False,
    "erased": False,
    "admin": False,
}


class GatewayInFront:
    """A proxy in front of Synapse: reads pass, a write reaches Synapse (applied), then the
    proxy answers its own 502 or 504 (the third attack run's case)."""

    def __init__(self, status: int, user: dict[str, Any]) -> None:
        self.status = status
        self.user = user
        self.writes: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the user as `user` says, with one device
            path = request.url.path
            if path.endswith("/joined_rooms"):
                return httpx.Response(200, json={"joined_rooms": [], "total": 0})
            if path.endswith("/devices"):
                return httpx.Response(200, json={"devices": [{"device_id": "D"}], "total": 1})
            return httpx.Response(200, json=self.user)
        self.writes.append(f"{request.method} {request.url.path}")
        return httpx.Response(self.status, text="<html>Gateway Time-out</html>")


@pytest.mark.parametrize("status", [502, 504, 500])
@pytest.mark.parametrize("action", WRITES)
def test_a_5xx_to_a_write_is_an_unknown_outcome_never_not_applied(action: str, status: int) -> None:
    """Before: every write ended `outcome_unknown=False` (retried, then `failed` with no
    alert) though the proxy had passed it on and Synapse had applied it."""
    for user in ({**EVERYTHING_SET, **NOTHING_SET}, EVERYTHING_SET):  # a toggle, or its undo
        proxy = GatewayInFront(status, user)
        failure: ConnectorError | None = None
        try:
            SynapseConnector(
                "https://matrix.example.org",
                "admin-token",
                server_name="example.org",
                transport=httpx.MockTransport(proxy),
                sleep=lambda _: None,
            ).execute(order(action))
        except ConnectorError as failed:
            failure = failed
        if not proxy.writes:
            continue  # nothing to do for this user: try the other
        assert failure is not None, "a write answered 5xx was taken for done"
        assert failure.outcome_unknown, (action, user)  # passed on: it may have been applied
        return
    raise AssertionError(f"{action} wrote nothing for either user")
