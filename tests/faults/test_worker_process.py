"""`foureyes worker` as a process outlives its database: while PostgreSQL is unreachable (a TCP
proxy between them cuts every connection and refuses new ones) each pass fails with a one-line
diagnosis and the worker keeps running; once the database is back, it carries out what was
approved meanwhile, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from foureyes.audit.export import note_checkpoint
from foureyes.cli import app
from foureyes.config import Settings
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.core.services import Services
from foureyes.model import ReviewDecision
from foureyes.store.tables import AlertRow
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
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
from tests.faults.tcpproxy import TcpProxy
from tests.pg_roles import PgRoles, pg_roles


@pytest.fixture
def roles(_pg_admin_url: str, pg_url: str) -> Iterator[PgRoles]:
    """An owner and a runtime role: the worker runs as one that owns nothing, as it must."""
    with pg_roles(_pg_admin_url, pg_url) as made:
        yield made


def test_the_worker_survives_the_database_going_away(
    tmp_path: Path, pg_url: str, roles: PgRoles
) -> None:
    data = tmp_path / "data"
    done = CliRunner().invoke(
        app,
        ["init", "--data-dir", str(data)],
        env={
            "FOUREYES_DATABASE_URL": roles.runtime_url,
            "FOUREYES_OWNER_DATABASE_URL": roles.owner_url,
        },
    )
    assert done.exit_code == 0, done.output
    url = make_url(roles.runtime_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    worker = Process.start(
        "worker",
        [str(FOUREYES), "worker", "--interval", "0.2", "--data-dir", str(data)],
        child_env(through_proxy),
        tmp_path,
    )
    services = services_of(data, pg_url)  # the test's own handle: not through the proxy
    try:
        wait_until(lambda: any("executed 0" in line for line in worker.lines), "a first pass")
        proxy.down()
        wait_until(lambda: "database is unavailable" in worker.stderr.read_text(), "a failed pass")
        assert worker.alive(), worker.output()
        diagnosis = [
            line for line in worker.stderr.read_text().splitlines() if "foureyes worker" in line
        ]
        assert diagnosis[0].startswith("foureyes worker: this pass failed (the database is")
        assert "Traceback" not in worker.output()

        # Approved while the worker cannot reach the database.
        with services.database.transaction() as session:
            people = {p: services.staff(session, p) for p in ("e-3001", "e-3002", "e-3003")}
        requester = operations.Actor(people["e-3001"], "tomas")
        request_id = operations.submit(
            services, requester, Submission("account.suspend", "chirp:president")
        )
        digest = operations.show(services, request_id)["digest"]
        for reviewer, identity in (("e-3002", "mei"), ("e-3003", "sam")):
            operations.review(
                services,
                operations.Actor(people[reviewer], identity),
                request_id,
                ReviewInput(ReviewDecision.APPROVE, digest),
            )
        assert operations.show(services, request_id)["state"] == "approved"

        proxy.up()
        wait_until(
            lambda: operations.show(services, request_id)["state"] == "executed",
            "the worker to carry it out once the database is back",
        )
        assert worker.alive(), worker.output()
        with services.database.transaction() as session:
            applied = session.scalar(
                select(func.count())
                .select_from(ChirpAppliedRow)
                .where(ChirpAppliedRow.idempotency_key == request_id)
            )
        assert applied == 1
    finally:
        worker.stop()
        proxy.close()
        services.database.dispose()


def _witnessed(witness: Path) -> int | None:
    try:
        return note_checkpoint((witness / "latest").read_bytes()).size
    except FileNotFoundError:
        return None


def _head(services: Services) -> int:
    with services.database.transaction() as session:
        return services.audit.size(session)


def _stale_alerts(services: Services) -> int:
    with services.database.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(AlertRow)
            .where(AlertRow.detector == "checkpoint_stale")
        )
    return int(count or 0)


def test_a_worker_beside_api_only_servers_signs_checkpoints(tmp_path: Path, pg_url: str) -> None:
    """The several-servers setup: `serve --no-worker` and a standalone `foureyes worker`. The
    worker signs checkpoints on its schedule and writes them to the witness directory, so the
    log's growth is witnessed; once it stops, the servers' /healthz reports the checkpoints
    stale and raises `checkpoint_stale`."""
    data = tmp_path / "data"
    server_env = child_env(pg_url, FOUREYES_CHECKPOINT_STALE_AFTER="1")
    argv = server_argv(data, worker=False)
    server = Server.start("server", argv, server_env, tmp_path).wait_ready()
    worker: Process | None = None
    services = services_of(data, pg_url)
    witness = Settings.load(data, env={}).witness_dir
    try:
        worker = Process.start(
            "worker",
            [str(FOUREYES), "worker", "--interval", "0.2", "--data-dir", str(data)],
            child_env(pg_url, FOUREYES_CHECKPOINT_INTERVAL="0.2"),
            tmp_path,
        )

        running = worker

        def witnessed_head() -> bool:
            assert running.alive(), running.output()
            return _witnessed(witness) == _head(services)

        wait_until(witnessed_head, "the worker to witness the log")
        body = {"action": "account.suspend", "account": "chirp:president"}
        response = call(server, "e-3001", "POST", "/v1/requests", json=body)
        assert response.status_code == 201, response.text
        grown = _head(services)
        wait_until(lambda: (_witnessed(witness) or 0) >= grown, "a checkpoint of the new events")
        wait_until(witnessed_head, "the worker to witness the log")
        assert any(", checkpoint " in line for line in worker.lines), worker.output()
        assert verify_audit(data, services).witnessed > 0

        before = _stale_alerts(services)  # the servers' probes may have seen the start
        worker.stop()  # nothing signs from now on
        response = call(server, "e-3001", "POST", "/v1/requests", json=body)
        assert response.status_code == 201, response.text

        def stale() -> bool:
            health = httpx.get(f"{server.base_url}/healthz", timeout=30)
            return bool(health.json()["checkpoints"] == "stale")

        wait_until(stale, "/healthz to report the checkpoints stale")
        assert stale()
        assert _stale_alerts(services) == before + 1  # once for this stretch
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        services.database.dispose()


def test_a_detector_pass_cut_off_from_the_database_is_one_line(
    tmp_path: Path, pg_url: str, roles: PgRoles
) -> None:
    """The detector pass loses its connection (the proxy cuts it as it claims the pipeline's
    state): one line says so, with no chained traceback, and the next pass runs as usual."""
    data = tmp_path / "data"
    owner_env = {
        "FOUREYES_DATABASE_URL": roles.runtime_url,
        "FOUREYES_OWNER_DATABASE_URL": roles.owner_url,
    }
    done = CliRunner().invoke(app, ["init", "--data-dir", str(data)], env=owner_env)
    assert done.exit_code == 0, done.output
    url = make_url(roles.runtime_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    worker = Process.start(
        "worker",
        [str(FOUREYES), "worker", "--interval", "0.2", "--data-dir", str(data)],
        child_env(through_proxy),
        tmp_path,
    )
    try:
        wait_until(lambda: any("executed 0" in line for line in worker.lines), "a first pass")
        proxy.cut(rb"INSERT INTO detector_state")
        wait_until(lambda: "the detector pass failed" in worker.stderr.read_text(), "the cut")
        passes = len(worker.lines)
        wait_until(lambda: len(worker.lines) > passes, "a pass after it")
        assert worker.alive(), worker.output()
        failed = [
            line
            for line in worker.stderr.read_text().splitlines()
            if "the detector pass failed" in line
        ]
        assert failed == [
            "the detector pass failed: the database is unavailable; reload and try again"
        ]
        assert "Traceback" not in worker.output()
        # Without [notify] tables: said once, at the start, whatever the passes since.
        assert worker.stderr.read_text().count("no channel is configured") == 1
    finally:
        worker.stop()
        proxy.close()
