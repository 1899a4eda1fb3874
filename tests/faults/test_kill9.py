"""`kill -9` of a real `foureyes serve` process in the middle of a deciding review (which carries
the request out in its own transaction: the demo platform is kept in foureyes' database), at
three exact points, then a restart: the killed review left nothing behind (no review, no
approval, no claim, no platform change), retrying it works, every approved request is carried
out exactly once, and the audit log verifies with one event per change.

The kill lands deterministically: the server runs through `hooked.py`, which blocks the database
connection that reaches the chosen point (see there) and says so; the test then sends SIGKILL.
The points, one per server in a chain of restarts:

1. the review's row is written in the open transaction (`INSERT INTO reviews` ran);
2. in the middle of the audit append: the event's rows are inserted, the log head not yet moved;
3. everything is written (the platform's change too) and COMMIT is about to be sent.

After each restart the reviewer retries, and the retried review carries the request out; a
worker pass finds nothing left to do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.core.services import Services
from foureyes.workflow import operations
from tests.faults.servers import (
    AUDIT_APPEND,
    Server,
    call,
    services_of,
    start_server,
    verify_audit,
    wait_until,
)

REQUESTER = "e-3001"  # Tomas (trust & safety); Mei and Sam (trust & safety) approve
MEI, SAM = "e-3002", "e-3003"


@dataclass(frozen=True)
class KillPoint:
    moment: str
    pattern: str  # FAULT_SQL
    at: str  # FAULT_AT
    action: str
    account: str
    approvers: tuple[str, ...]  # the last one's review is the one killed


KILL_POINTS = [
    # Suspending a VIT account: two trust & safety approvals (rule vit-suspension).
    KillPoint(
        "review row written",
        r"^INSERT INTO reviews\b",
        "after",
        "account.suspend",
        "chirp:president",
        (MEI, SAM),
    ),
    KillPoint(
        "mid audit append",
        AUDIT_APPEND,
        "after",
        "account.suspend",
        "chirp:chirp",
        (SAM, MEI),
    ),
    # Restoring it: one other trust & safety employee (rule vit-restore).
    KillPoint(
        "before COMMIT",
        r"^INSERT INTO reviews\b",
        "commit",
        "account.unsuspend",
        "chirp:president",
        (MEI,),
    ),
]


def _submit(server: Server, point: KillPoint) -> dict[str, Any]:
    body = {"action": point.action, "account": point.account}
    response = call(server, REQUESTER, "POST", "/v1/requests", json=body)
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    assert view["state"] == "pending"
    return view


def _approve(server: Server, staff_id: str, view: dict[str, Any]) -> httpx.Response:
    body = {"decision": "approve", "digest": view["digest"]}
    return call(server, staff_id, "POST", f"/v1/requests/{view['id']}/reviews", json=body)


def _kinds(services: Services, request_id: str) -> list[str]:
    return [event["kind"] for event in operations.show(services, request_id)["timeline"]]


def _applied(services: Services, request_id: str) -> int:
    with services.database.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(ChirpAppliedRow)
            .where(ChirpAppliedRow.idempotency_key == request_id)
        )
    return int(count or 0)


def _fault(tmp_path: Path, point: KillPoint) -> dict[str, str]:
    return {
        "FAULT_SQL": point.pattern,
        "FAULT_AT": point.at,
        "FAULT_ARM": str(tmp_path / "arm"),
        "FAULT_READY": str(tmp_path / "ready"),
    }


# On SQLite (a process start costs seconds) the one point that differs most: WAL rollback of an
# append that wrote the event rows but not the head.
POINTS = {"pg": KILL_POINTS, "sqlite": KILL_POINTS[1:2]}
EXPECTED = {
    "pg": {"chirp:president": "active", "chirp:chirp": "suspended"},
    "sqlite": {"chirp:chirp": "suspended"},
}


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_kill_9_mid_review_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    url: str | None = request.getfixturevalue("pg_url") if backend == "pg" else None
    points = POINTS[backend]
    data, arm, ready = tmp_path / "demo", tmp_path / "arm", tmp_path / "ready"
    servers: list[Server] = []
    try:
        server = start_server(
            "serve-1", data, tmp_path, database_url=url, fault=_fault(tmp_path, points[0])
        )
        servers.append(server)
        services = services_of(data, url)
        for n, point in enumerate(points):
            *before, killed = point.approvers
            view = _submit(server, point)
            for staff_id in before:
                assert _approve(server, staff_id, view).json()["state"] == "pending"
            size_before = verify_audit(data, services).size
            kinds_before = _kinds(services, view["id"])

            arm.touch()
            outcome: dict[str, Any] = {}
            review = threading.Thread(target=_catch, args=(outcome, server, killed, view))
            review.start()
            wait_until(ready.exists, f"the server to stop at {point.moment!r}")
            server.kill9()
            review.join(60)
            assert isinstance(outcome["result"], httpx.TransportError), (point, outcome)
            ready.unlink()

            # Nothing of the killed review is left: no review row, no event, no state change,
            # no platform change.
            assert _applied(services, view["id"]) == 0, point
            shown = operations.show(services, view["id"])
            assert shown["state"] == "pending", point
            assert [r["reviewer"] for r in shown["reviews"]] == before, point
            assert _kinds(services, view["id"]) == kinds_before, point
            assert verify_audit(data, services).size == size_before, point

            following = points[n + 1] if n + 1 < len(points) else None
            server = start_server(
                f"serve-{n + 2}",
                data,
                tmp_path,
                database_url=url,
                fault=_fault(tmp_path, following) if following else None,
            )
            servers.append(server)
            # The reviewer tries again: it counts, and carries the request out.
            retried = _approve(server, killed, view)
            assert retried.status_code == 200, retried.text
            assert retried.json()["state"] == "executed", point
            assert worker.run_once(services, worker="after-restart").executed == []
            assert _applied(services, view["id"]) == 1, point
            reviewed = ["review.recorded"] * len(point.approvers)
            assert _kinds(services, view["id"]) == [
                "request.submitted",
                *reviewed,
                "request.approved",
                "request.executing",
                "request.executed",
            ], point
        assert worker.run_once(services).executed == []  # nothing left to run again
        statuses = {
            account: services.connector("chirp").lookup(account.partition(":")[2])
            for account in {point.account for point in points}
        }
        assert {a: s.attributes["status"] for a, s in statuses.items() if s} == EXPECTED[backend]
        verify_audit(data, services)
        services.database.dispose()
    finally:
        for each in servers:
            each.stop()


def _catch(outcome: dict[str, Any], server: Server, staff_id: str, view: dict[str, Any]) -> None:
    """The review, sent from a thread: its response, or the transport error of the kill."""
    try:
        outcome["result"] = _approve(server, staff_id, view)
    except httpx.TransportError as exc:
        outcome["result"] = exc
