"""`/healthz`, which needs no token. (`/metrics`: tests/api/test_metrics.py.)"""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from foureyes import bootstrap, worker
from foureyes.audit.checkpoint import signer_from_file
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.bootstrap import create_app
from foureyes.config import Settings
from foureyes.core.reachability import Reachability
from foureyes.errors import ConnectorError
from foureyes.store.database import Database
from tests.api.conftest import Api, assert_problem


def test_healthz_checks_the_store_and_the_policy(api: Api) -> None:
    worker.run_once(api.world.services)  # the detector pipeline has run: a heartbeat
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "policy_version": 1,
        "detectors": "ok",
        "checkpoints": "ok",
        "alerts": "ok",
        "platforms": {"chirp": "ok"},
    }


def test_healthz_says_which_platform_cannot_be_reached_and_nothing_more(api: Api) -> None:
    """A platform down: `degraded` (still 200: foureyes serves), its name, never its address
    or the error's words (the log has those)."""
    worker.run_once(api.world.services)

    def down() -> None:
        raise ConnectorError(
            "chirp (10.1.2.3:8448) cannot be reached: secret-ish words", transient=True
        )

    api.world.services.connectors["chirp"].probe = down  # type: ignore[method-assign]
    response = api.client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["platforms"] == {"chirp": "unreachable"}
    assert body["reasons"] == ["platform chirp cannot be reached"]
    assert "10.1.2.3" not in response.text
    assert "secret-ish" not in response.text


def test_healthz_raises_the_silence_alert_when_detectors_stop(api: Api) -> None:
    worker.run_once(api.world.services, checkpoints=_schedule(api))  # signed: not stale
    api.world.clock.advance(days=2)  # no worker pass since: the pipeline has gone quiet
    assert api.client.get("/healthz").json()["detectors"] == "silent"
    alerts = api.get("e-4001", "/v1/alerts").json()["items"]
    assert [a["detector"] for a in alerts] == ["detector_silence"]


def test_healthz_is_503_without_a_policy(database: Database, settings: Settings) -> None:
    services = bootstrap.build_services(database, connectors={"chirp": ("demo", {})})
    with TestClient(create_app(services, settings)) as client:
        body = assert_problem(client.get("/healthz"), 503, "unavailable")
    assert "init" not in body["detail"]  # no internals for an unauthenticated caller


def _schedule(api: Api) -> CheckpointSchedule:
    return CheckpointSchedule(
        signer_from_file(api.settings.signing_key_file),
        api.settings.witness_dir,
        deadline=api.settings.checkpoint_deadline,
    )


def _stale_alerts(api: Api) -> list[dict[str, Any]]:
    response = api.get("e-4001", "/v1/alerts", params={"detector": "checkpoint_stale"})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_healthz_raises_checkpoint_stale_when_nothing_signs(api: Api) -> None:
    """The deployment runs no worker that signs (the finding: `serve --no-worker` and a worker
    that never signed): once an event has waited longer than the deadline, the probe says so
    and raises `checkpoint_stale`, once; a worker pass that signs puts it right."""
    services = api.world.services
    worker.run_once(services)  # a heartbeat, so that only checkpoints are late
    assert api.client.get("/healthz").json()["checkpoints"] == "ok"
    api.world.clock.advance(seconds=api.settings.checkpoint_deadline.total_seconds() + 1)
    worker.run_once(services)  # the detectors keep running; nothing signs
    for _ in range(2):
        assert api.client.get("/healthz").json()["checkpoints"] == "stale"
    (alert,) = _stale_alerts(api)
    assert alert["severity"] == "high"
    assert "no signed checkpoint" in alert["summary"]

    tick = worker.run_once(services, checkpoints=_schedule(api))
    with services.database.transaction() as session:
        size = services.audit.size(session)
    assert tick.checkpoint == size
    latest = (api.settings.witness_dir / "latest").read_text()
    assert latest.splitlines()[1] == str(size)
    assert api.client.get("/healthz").json()["checkpoints"] == "ok"
    assert len(_stale_alerts(api)) == 1


def test_healthz_is_not_ok_while_a_platform_has_not_answered_and_stays_fast(api: Api) -> None:
    """Attack run: `/healthz` said ok while the platform hung (its probe had not answered).
    A platform whose probe has not answered is `unknown` and the status `degraded`; the check
    itself never waits on the platform beyond the reachability's short wait."""
    worker.run_once(api.world.services)
    release = threading.Event()
    api.world.services.connectors["chirp"].probe = release.wait  # type: ignore[method-assign]
    api.client.app.state.reachability = Reachability(wait=0.05)  # type: ignore[attr-defined]
    try:
        response = api.client.get("/healthz")
        assert response.status_code == 200
        body = response.json()
        assert body["platforms"] == {"chirp": "unknown"}
        assert body["status"] == "degraded"
        assert body["reasons"] == ["platform chirp has not answered its probe yet"]
    finally:
        release.set()
