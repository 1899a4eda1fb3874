"""Issue #15 item 4, for real on PostgreSQL: a request interrupted mid-call is never credited
with another request's change.

A real `foureyes serve --demo` (through `hooked.py`) carries out a support lock of a standard
account and is stopped inside the platform's transaction, just after `SELECT … FROM
chirp_accounts … FOR UPDATE` ran (the account row is locked, nothing is applied), and killed
there with SIGKILL. A second server makes the same change for another request: the account is
locked. Then a `foureyes worker` reconciles the interrupted request, whose lease has lapsed
(every process runs with `FOUREYES_EXECUTION_LEASE=1`; the killed one renewed its lease until it
died).

The account is in the target state, but the platform's record (`chirp_applied`) has no row for
the interrupted request's key: it must not end `executed`. It goes back to run again, the
platform refuses it (the account is locked already), and it ends `failed` with that reason and
an `execution_interrupted` alert; `chirp_applied` holds exactly the executed requests, and the
audit log verifies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import select

from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.model import RequestState
from foureyes.store.tables import AlertRow, RequestRow
from foureyes.workflow import operations
from tests.faults.checks import lifecycle_problems
from tests.faults.servers import (
    FOUREYES,
    Process,
    Server,
    call,
    child_env,
    server_argv,
    services_of,
    verify_audit,
    wait_until,
)

SUPPORT = "e-2001"  # Ana (support) locks standard accounts alone (rule support-standard-accounts)
ACCOUNT = "chirp:bob"  # 87 followers: standard
LEASE = "1"  # seconds: FOUREYES_EXECUTION_LEASE of both servers
IN_THE_PLATFORM = r"(?s)FROM chirp_accounts.*FOR UPDATE"


def _start(name: str, data: Path, logs: Path, url: str, fault: dict[str, str] | None) -> Server:
    """`serve --demo --no-worker` (through `hooked.py` with a `fault`)."""
    argv = server_argv(data, worker=False, hooked=fault is not None)
    env = child_env(url, FOUREYES_EXECUTION_LEASE=LEASE, **(fault or {}))
    return Server.start(name, argv, env, logs).wait_ready()


def _lock(server: Server, outcome: dict[str, Any]) -> None:
    try:
        outcome["result"] = call(
            server,
            SUPPORT,
            "POST",
            "/v1/requests",
            json={"action": "account.lock", "account": ACCOUNT},
        )
    except httpx.TransportError as exc:
        outcome["result"] = exc


def test_an_interrupted_request_is_not_credited_with_another_requests_change(
    tmp_path: Path, pg_url: str
) -> None:
    data, arm, ready = tmp_path / "demo", tmp_path / "arm", tmp_path / "ready"
    fault = {
        "FAULT_SQL": IN_THE_PLATFORM,
        "FAULT_AT": "after",
        "FAULT_ARM": str(arm),
        "FAULT_READY": str(ready),
        "FAULT_REMOTE_DEMO": "1",
    }
    servers: list[Process] = []
    try:
        first = _start("serve-hooked", data, tmp_path, pg_url, fault)
        servers.append(first)
        services = services_of(data, pg_url)

        arm.touch()
        outcome: dict[str, Any] = {}
        caller = threading.Thread(target=_lock, args=(first, outcome))
        caller.start()
        wait_until(ready.exists, "the server to stop inside the platform's transaction")
        with services.database.transaction() as session:
            (interrupted,) = session.scalars(
                select(RequestRow.id).where(
                    RequestRow.account_ref == ACCOUNT, RequestRow.action == "account.lock"
                )
            )
        assert operations.show(services, interrupted)["state"] == "executing"
        first.kill9()
        caller.join(60)
        assert isinstance(outcome["result"], httpx.TransportError), outcome

        # The same change, for another request, through another server.
        second = _start("serve-2", data, tmp_path, pg_url, None)
        servers.append(second)
        response = call(
            second,
            SUPPORT,
            "POST",
            "/v1/requests",
            json={"action": "account.lock", "account": ACCOUNT},
        )
        assert response.status_code == 201, response.text
        other = response.json()
        assert other["state"] == "executed"
        bob = services.connector("chirp").lookup("bob")
        assert bob is not None
        assert bob.attributes["status"] == "locked"

        # Then a worker: the interrupted request's lease lapsed long ago (it was 1 s).
        worker = Process.start(
            "worker",
            [str(FOUREYES), "worker", "--interval", "0.2", "--data-dir", str(data)],
            child_env(pg_url, FOUREYES_EXECUTION_LEASE=LEASE),
            tmp_path,
        )
        servers.append(worker)

        def settled() -> dict[str, Any] | None:
            if not worker.alive():
                raise AssertionError(worker.output())
            view = operations.show(services, interrupted)
            return view if RequestState(view["state"]).final else None

        view = wait_until(settled, "the interrupted request to be reconciled and settled")
        assert view["state"] == "failed", view
        assert "cannot lock bob: it is locked" in view["reason"], view["reason"]
        assert "refused by the platform" in view["reason"], view["reason"]
        kinds = [event["kind"] for event in view["timeline"]]
        assert "request.executed" not in kinds
        assert kinds[-3:] == [
            "request.reconciled",  # no record of its key: it runs again ...
            "request.executing",
            "request.failed",  # ... and the platform refuses it
        ]
        reconciled = next(e for e in view["timeline"] if e["kind"] == "request.reconciled")
        assert reconciled["event"]["to"] == "approved", reconciled
        assert reconciled["event"]["verdict"] == "not_applied", reconciled
        assert reconciled["event"]["state"] == {"status": "locked"}  # shown; it decided nothing

        with services.database.transaction() as session:
            keys = set(session.scalars(select(ChirpAppliedRow.idempotency_key)))
            alerts = list(
                session.scalars(
                    select(AlertRow).where(
                        AlertRow.request_id == interrupted,
                        AlertRow.detector == "execution_interrupted",
                    )
                )
            )
            assert lifecycle_problems(session) == []  # incl. platform applied == executed
        assert keys == {other["id"]}
        assert len(alerts) == 1
        assert "was interrupted" in alerts[0].summary
        verify_audit(data, services)
        services.database.dispose()
    finally:
        for each in servers:
            each.stop()
