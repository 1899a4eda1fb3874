"""PostgreSQL goes away after a submit's request row is committed (a TCP proxy between foureyes
and the server cuts the connection, or refuses every connection, as a stopped server does): the
answer is 503 `outcome-unknown` with the `request_id`, never a 503 saying nothing changed; a
retry with the same Idempotency-Key answers that request (200, `Idempotent-Replayed`) and
records nothing; and the action is carried out once — by the worker, or by reconciliation when
the platform had applied it before the database went.

The incident this reproduces: during a PostgreSQL stop, `POST /v1/requests` answered "reload and
try again" without a request id for requests already recorded and claimed, and the worker
carried them out minutes later; a client that believed the answer and asked again made a second
request."""

# The proxied `api` and its `proxy` are test_db_drop's fixtures, imported here and passed to the
# tests by name: ruff would call that a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.connectors.base import ExecutionOrder, ExecutionResult
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.store.database import Database
from foureyes.store.tables import ExecutionRow, RequestRow
from tests.api.conftest import Api, assert_problem
from tests.faults.tcpproxy import TcpProxy
from tests.faults.test_db_drop import api, proxy  # noqa: F401
from tests.worlds import as_remote

pytestmark = pytest.mark.pg_only

SUPPORT = "e-2001"
LOCK = {"action": "account.lock", "account": "chirp:bob"}  # allowed at once: carried out inline


def submit_keyed(api: Api, key: str) -> Any:
    headers = {**api.auth(SUPPORT), "Idempotency-Key": key}
    return api.client.post("/v1/requests", headers=headers, json=LOCK)


def stored(database: Database, request_id: str) -> tuple[int, int, int]:
    """Requests in all; execution attempts and platform applications of `request_id`."""
    with database.read() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow)) or 0
        attempts = session.scalar(select(func.count()).where(ExecutionRow.request_id == request_id))
        applied = session.scalar(
            select(func.count())
            .select_from(ChirpAppliedRow)
            .where(ChirpAppliedRow.idempotency_key == request_id)
        )
    return requests, attempts or 0, applied or 0


def state(database: Database, request_id: str) -> str | None:
    with database.read() as session:
        return session.scalar(select(RequestRow.state).where(RequestRow.id == request_id))


def unknown(response: Any) -> str:
    """The answer says the outcome is unknown and names the request; its id."""
    problem = assert_problem(response, 503, "outcome-unknown")
    assert problem["outcome"] == "unknown"
    assert problem["request_id"] in problem["detail"]
    assert "reload and try again" not in problem["detail"]
    request_id: str = problem["request_id"]
    return request_id


def test_the_connection_drops_right_after_the_request_is_committed(
    api: Api, proxy: TcpProxy, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A platform outside foureyes' database: the submit commits the request, then carries it
    # out in transactions of its own (the demo's is carried out in the submit's transaction).
    # The first statement after the submit's COMMIT is the look at the new request's state.
    as_remote(monkeypatch, api.world.services.connectors["chirp"])
    proxy.cut(rb"SELECT requests.state", "before")

    request_id = unknown(submit_keyed(api, "lock-1"))

    assert proxy.cuts == 1
    assert state(database, request_id) == "approved"  # recorded, not carried out
    retried = submit_keyed(api, "lock-1")
    assert retried.status_code == 200, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert (retried.json()["id"], retried.json()["state"]) == (request_id, "approved")
    assert stored(database, request_id) == (1, 0, 0)  # the retry made and ran nothing
    assert worker.run_once(api.world.services).executed == [request_id]
    assert submit_keyed(api, "lock-1").json()["state"] == "executed"
    assert stored(database, request_id) == (1, 1, 1)


def test_postgresql_stops_during_the_platform_call(
    api: Api, proxy: TcpProxy, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is recorded and claimed, the platform applies it, and then PostgreSQL is
    gone: the result cannot be recorded. The answer names the request; once PostgreSQL is back,
    a retry with the key answers it (still `executing`), and reconciliation finds it applied:
    executed, once."""
    chirp = api.world.services.connectors["chirp"]
    real_execute = chirp.execute

    def applied_then_stopped(order: ExecutionOrder) -> ExecutionResult:
        result = real_execute(order)
        proxy.down()
        return result

    monkeypatch.setattr(chirp, "execute", applied_then_stopped)
    as_remote(monkeypatch, chirp)

    request_id = unknown(submit_keyed(api, "lock-2"))

    monkeypatch.setattr(chirp, "execute", real_execute)
    assert state(database, request_id) == "executing"
    assert stored(database, request_id) == (1, 1, 1)  # claimed, and applied on the platform
    proxy.up()
    retried = submit_keyed(api, "lock-2")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["state"]) == (request_id, "executing")
    api.world.clock.advance(hours=1)  # well past any execution lease
    assert request_id in worker.run_once(api.world.services).reconciled
    assert state(database, request_id) == "executed"
    assert submit_keyed(api, "lock-2").json()["state"] == "executed"
    assert stored(database, request_id) == (1, 1, 1)  # one request, carried out once
    assert api.world.chirp("bob")["status"] == "locked"
