"""`kill -9` of a real `foureyes serve` (API and worker) in the middle of carrying out a batch,
at exact points, then a restart: every item is carried out exactly once (one platform record
of its idempotency key, one `batch.item.executed` event), the batch ends `executed`, and the
audit log verifies.

The kill lands deterministically through `hooked.py` (see there). The points:

1. in-transaction platform (the demo as it runs): just before the COMMIT of the first chunk
   (items, platform changes and events written, nothing committed): all of it rolls back and
   the restarted worker does the chunk again;
   1b. the same, in the middle of the chunk: just after the platform's bulk write of its
   items (`chirp_applied` inserted, the items and their events not yet written);
2. remote platform (`FAULT_REMOTE_DEMO`): in the platform's own write of an item, before it
   commits: the item is left `executing`; once its lease lapses reconciliation finds the key
   not applied and the item runs again, under the same key;
3. remote platform: after the platform committed an item, while foureyes records the outcome:
   reconciliation finds the key applied and marks the item executed without calling again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.core.services import Services
from foureyes.store.tables import BatchItemRow, BatchRow, EventRow
from tests.faults.servers import (
    AUDIT_APPEND,
    Server,
    call,
    child_env,
    server_argv,
    services_of,
    verify_audit,
    wait_until,
)

ITEMS = 40
CASE = "CASE-9"


@dataclass(frozen=True)
class Point:
    moment: str
    pattern: str
    at: str
    remote: bool
    # Arm once this many items are executed (0: before the batch is approved).
    after_items: int


POINTS = {
    "chunk-commit": Point("before a chunk's COMMIT", r"^UPDATE batch_items\b", "commit", False, 0),
    "mid-chunk": Point(
        "in the middle of a chunk", r"^INSERT INTO chirp_applied\b", "after", False, 0
    ),
    "platform-write": Point(
        "in the platform's write", r"^INSERT INTO chirp_applied\b", "after", True, 3
    ),
    "after-platform": Point("recording an applied item", AUDIT_APPEND, "after", True, 3),
}
BACKENDS = [("pg", name) for name in POINTS] + [("sqlite", "chunk-commit")]


def _start(name: str, data: Path, logs: Path, url: str | None, extra: dict[str, str]) -> Server:
    argv = server_argv(data, worker=True, hooked=True)
    env = child_env(url, FOUREYES_EXECUTION_LEASE="1", **extra)
    return Server.start(name, argv, env, logs).wait_ready()


def _executed(services: Services, batch_id: str) -> int:
    with services.database.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.state == "executed")
            )
            or 0
        )


def _state(services: Services, batch_id: str) -> str | None:
    with services.database.read() as session:
        batch = session.get(BatchRow, batch_id)
        return None if batch is None else batch.state


@pytest.mark.parametrize(("backend", "point_name"), BACKENDS)
def test_kill_9_mid_batch_resumes_exactly_once(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, point_name: str
) -> None:
    point = POINTS[point_name]
    url: str | None = request.getfixturevalue("pg_url") if backend == "pg" else None
    data, arm, ready = tmp_path / "demo", tmp_path / "arm", tmp_path / "ready"
    fault = {
        "FAULT_SQL": point.pattern,
        "FAULT_AT": point.at,
        "FAULT_ARM": str(arm),
        "FAULT_READY": str(ready),
        **({"FAULT_REMOTE_DEMO": "1"} if point.remote else {}),
    }
    servers: list[Server] = []
    try:
        server = _start("serve-1", data, tmp_path, url, fault)
        servers.append(server)
        services = services_of(data, url)
        ring = services.connector("chirp").seed(  # type: ignore[attr-defined]
            [{"id": f"ring{n}", "followers": 2, "verified": False} for n in range(ITEMS)]
        )
        body: dict[str, Any] = {
            "action": "account.suspend",
            "accounts": [f"chirp:{i}" for i in ring],
            "justification": CASE,
        }
        made = call(server, "e-3001", "POST", "/v1/batches", json=body)
        assert made.status_code == 201, made.text
        view = made.json()
        batch_id = view["id"]
        review = {"decision": "approve", "digest": view["digest"]}
        call(server, "e-3002", "POST", f"/v1/batches/{batch_id}/reviews", json=review)
        if point.after_items == 0:
            arm.touch()
        approved = call(server, "e-3003", "POST", f"/v1/batches/{batch_id}/reviews", json=review)
        assert approved.json()["state"] == "approved", approved.text
        if point.after_items:
            wait_until(
                lambda: _executed(services, batch_id) >= point.after_items or None,
                "the worker to carry out the first items",
            )
            arm.touch()
        wait_until(ready.exists, f"the server to stop {point.moment}")
        server.kill9()
        assert _state(services, batch_id) == "executing"
        assert _executed(services, batch_id) < ITEMS

        restarted = _start(
            "serve-2",
            data,
            tmp_path,
            url,
            {k: v for k, v in fault.items() if k == "FAULT_REMOTE_DEMO"},
        )
        servers.append(restarted)
        wait_until(lambda: _state(services, batch_id) == "executed", "the batch to be executed")

        with services.database.read() as session:
            items = list(
                session.scalars(select(BatchItemRow).where(BatchItemRow.batch_id == batch_id))
            )
            applied = dict(
                session.execute(
                    select(ChirpAppliedRow.idempotency_key, func.count())
                    .where(ChirpAppliedRow.idempotency_key.in_([i.id for i in items]))
                    .group_by(ChirpAppliedRow.idempotency_key)
                ).all()
            )
            executed_events = session.scalar(
                select(func.count())
                .select_from(EventRow)
                .where(EventRow.request_id == batch_id, EventRow.kind == "batch.item.executed")
            )
        assert {i.state for i in items} == {"executed"}
        assert applied == {i.id: 1 for i in items}  # each key applied once, none twice
        assert executed_events == ITEMS
        for account_id in ring:
            found = services.connector("chirp").lookup(account_id)
            assert found is not None
            assert found.attributes["status"] == "suspended"
        verify_audit(data, services)
        services.database.dispose()
    finally:
        for each in servers:
            each.stop()
