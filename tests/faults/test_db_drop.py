"""The connection to PostgreSQL drops in the middle of an operation (a TCP proxy between foureyes
and the server cuts it at an exact statement): the API answers a 503 `unavailable` problem (not a
500, not a hang), nothing is half-written (no state change without its event, no event without
its change, `audit verify` passes), and the same call, retried, works.

Cut points: the statement is never sent (the server rolls the transaction back: `unavailable`,
nothing changed), or the COMMIT is sent and its answer lost (it committed; the client cannot
know, and is told so: `outcome-unknown`, naming the request); the execution's result lost after
the platform applied it (`outcome-unknown`: the request stays `executing` until reconciliation
finds it done).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from foureyes import worker
from foureyes.audit.verify import verify_log
from foureyes.bootstrap import create_app
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.store.database import Database
from foureyes.store.tables import AuditHeadRow, EventRow, RequestRow, ReviewRow
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem, make_settings
from tests.faults.tcpproxy import TcpProxy
from tests.worlds import as_remote, make_world

pytestmark = pytest.mark.pg_only

TOMAS, MEI, SAM = "e-3001", "e-3002", "e-3003"
SUSPEND = {"action": "account.suspend", "account": "chirp:president"}  # two T&S approvals


@pytest.fixture
def proxy(database: Database) -> Iterator[TcpProxy]:
    url = make_url(database.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


@pytest.fixture
def api(database: Database, proxy: TcpProxy, tmp_path: Path) -> Iterator[Api]:
    """The API over a foureyes whose every database connection goes through the proxy."""
    proxied = Database(
        make_url(database.url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )

    # The proxy finds its moment by the SQL text on the wire; psycopg sends a statement's text
    # only until it prepares it (after 5 uses on a connection), so no server-side prepares here.
    @event.listens_for(proxied.engine, "connect")
    def _unprepared(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.prepare_threshold = None

    world = make_world(proxied)
    settings = make_settings(tmp_path / "data")
    try:
        with TestClient(create_app(world.services, settings)) as client:
            api = Api(client, world, settings)
            for person in operations.list_staff(world.services):
                api.tokens[person.id] = operations.issue_token(world.services, person.id)
            yield api
    finally:
        proxied.dispose()


def _snapshot(database: Database) -> dict[str, Any]:
    """Row counts of what an operation writes, and the verified log's size."""
    report = verify_log(database, [])
    with database.transaction() as session:
        head = session.scalar(select(AuditHeadRow.size))
        counts = {
            table.__tablename__: session.scalar(select(func.count()).select_from(table))
            for table in (RequestRow, ReviewRow, EventRow)
        }
        states = {row.id: row.state for row in session.scalars(select(RequestRow))}
    assert report.size == head == counts["audit_events"]
    return {"counts": counts, "states": states}


def _dropped(response: Any, slug: str = "unavailable") -> None:
    body = assert_problem(response, 503, slug)
    assert "Traceback" not in body["detail"]


def _pending(api: Api) -> dict[str, Any]:
    view = api.submitted(TOMAS, **SUSPEND)
    assert view["state"] == "pending"
    return view


@pytest.mark.parametrize(
    ("cut", "mode"),
    [(rb"INSERT INTO requests", "before"), (rb"INSERT INTO audit_events", "before")],
)
def test_submit_cut_mid_transaction(
    api: Api, proxy: TcpProxy, database: Database, cut: bytes, mode: str
) -> None:
    before = _snapshot(database)
    proxy.cut(cut, mode)
    _dropped(api.submit(TOMAS, **SUSPEND))
    assert proxy.cuts == 1
    assert _snapshot(database) == before  # nothing of it was written
    retried = api.submit(TOMAS, **SUSPEND)
    assert retried.status_code == 201, retried.text


@pytest.mark.parametrize(
    ("cut", "mode", "after", "slug"),
    [
        (rb"INSERT INTO reviews", "before", None, "unavailable"),
        (rb"INSERT INTO audit_events", "before", None, "unavailable"),
        # The COMMIT never reached the server, but foureyes cannot know that: it lost the
        # connection while committing, so the answer says the outcome is unknown.
        (rb"COMMIT\x00", "before", rb"INSERT INTO reviews", "outcome-unknown"),
    ],
)
def test_review_cut_before_commit_changes_nothing(
    api: Api,
    proxy: TcpProxy,
    database: Database,
    cut: bytes,
    mode: str,
    after: bytes | None,
    slug: str,
) -> None:
    view = _pending(api)
    assert api.review(MEI, view["id"]).status_code == 200
    before = _snapshot(database)
    proxy.cut(cut, mode, after=after)
    _dropped(api.review(SAM, view["id"], digest=view["digest"]), slug)
    assert proxy.cuts == 1
    assert _snapshot(database) == before
    retried = api.review(SAM, view["id"], digest=view["digest"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "executed"  # the deciding approval carries it out


def test_review_whose_commit_answer_is_lost(api: Api, proxy: TcpProxy, database: Database) -> None:
    """The COMMIT reached the server and committed; its answer did not come back. The caller is
    told the outcome is unknown (503 `outcome-unknown`, naming the request); the review, the
    execution it carried out in the same transaction and their events are all there; a retry is
    refused as a second review (409), and the request is approved and carried out once."""
    view = _pending(api)
    assert api.review(MEI, view["id"]).status_code == 200
    before = _snapshot(database)
    proxy.cut(rb"COMMIT\x00", "reply", after=rb"INSERT INTO reviews")
    response = api.review(SAM, view["id"], digest=view["digest"])
    body = assert_problem(response, 503, "outcome-unknown")
    assert "may have" in body["detail"]
    assert body["request_id"] == view["id"]
    after = _snapshot(database)
    assert after["counts"]["reviews"] == before["counts"]["reviews"] + 1
    assert after["states"][view["id"]] == "executed"
    kinds = [e["kind"] for e in operations.show(api.world.services, view["id"])["timeline"]]
    assert kinds[-5:] == [
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
    ]
    assert_problem(api.review(SAM, view["id"], digest=view["digest"]), 409, "conflict")


def test_execution_result_lost_is_reconciled_once(
    api: Api, proxy: TcpProxy, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform applied the change; recording the result loses the connection. The request
    stays `executing` (with its event), a retry is refused, and the worker's reconciliation
    finds it applied: executed, once. (The demo called as a remote platform is: in its own
    local path the three steps are one transaction.)"""
    world = api.world
    as_remote(monkeypatch, world.services.connectors["chirp"])
    view = _pending(api)
    world.review(MEI, view["id"])
    world.review(SAM, view["id"])
    proxy.cut(rb"UPDATE executions", "before")
    lost = api.post(TOMAS, f"/v1/requests/{view['id']}/execute")
    assert assert_problem(lost, 503, "outcome-unknown")["request_id"] == view["id"]
    assert proxy.cuts == 1
    assert operations.show(world.services, view["id"])["state"] == "executing"
    _snapshot(database)
    assert_problem(api.post(TOMAS, f"/v1/requests/{view['id']}/execute"), 409, "conflict")

    world.clock.advance(seconds=world.services.execution_lease.total_seconds() + 5)
    assert worker.run_once(world.services).reconciled == [view["id"]]
    assert operations.show(world.services, view["id"])["state"] == "executed"
    with database.transaction() as session:
        applied = session.scalar(
            select(func.count())
            .select_from(ChirpAppliedRow)
            .where(ChirpAppliedRow.idempotency_key == view["id"])
        )
    assert applied == 1
    _snapshot(database)


def test_worker_pass_cut_is_retried(api: Api, proxy: TcpProxy, database: Database) -> None:
    """The worker's claim of an approved request loses its connection: the pass reports nothing
    done for it (not `failed`), the request is still approved, and the next pass executes it."""
    world = api.world
    view = _pending(api)
    world.review(MEI, view["id"])
    world.review(SAM, view["id"])
    proxy.cut(rb"INSERT INTO executions", "before")
    tick = worker.run_once(world.services)
    assert proxy.cuts == 1
    assert view["id"] not in tick.executed + tick.failed
    assert operations.show(world.services, view["id"])["state"] == "approved"
    assert worker.run_once(world.services).executed == [view["id"]]
    _snapshot(database)
