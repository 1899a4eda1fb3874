"""`foureyes worker` as a process outlives its database: while PostgreSQL is unreachable (a TCP
proxy between them cuts every connection and refuses new ones) each pass fails with a one-line
diagnosis and the worker keeps running; once the database is back, it carries out what was
approved meanwhile, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.model import ReviewDecision
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
from tests.faults.servers import FOUREYES, Process, child_env, services_of, wait_until
from tests.faults.tcpproxy import TcpProxy


def test_the_worker_survives_the_database_going_away(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "data"
    done = CliRunner().invoke(
        app, ["init", "--data-dir", str(data)], env={"FOUREYES_DATABASE_URL": pg_url}
    )
    assert done.exit_code == 0, done.output
    url = make_url(pg_url)
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
