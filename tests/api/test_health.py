"""`/healthz` and `/metrics`, which need no token."""

from __future__ import annotations

from fastapi.testclient import TestClient

from foureyes.api import create_app
from foureyes.config import Settings
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem


def test_healthz_checks_the_store_and_the_policy(api: Api) -> None:
    operations.run_once(api.world.services)  # the detector pipeline has run: a heartbeat
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "policy_version": 1,
        "detectors": "ok",
    }


def test_healthz_raises_the_silence_alert_when_detectors_stop(api: Api) -> None:
    operations.run_once(api.world.services)
    api.world.clock.advance(days=2)  # no worker pass since: the pipeline has gone quiet
    assert api.client.get("/healthz").json()["detectors"] == "silent"
    alerts = api.get("e-4001", "/v1/alerts").json()["items"]
    assert [a["detector"] for a in alerts] == ["detector_silence"]


def test_healthz_is_503_without_a_policy(database: Database, settings: Settings) -> None:
    services = operations.build_services(database, connectors={"chirp": ("demo", {})})
    with TestClient(create_app(services, settings)) as client:
        body = assert_problem(client.get("/healthz"), 503, "unavailable")
    assert "init" not in body["detail"]  # no internals for an unauthenticated caller


def test_metrics_count_traffic_and_requests_by_state(api: Api) -> None:
    api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    api.client.get("/nope")
    api.client.get("/v1/requests")
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'foureyes_http_requests_total{method="POST",route="/v1/requests",status="201"} 1.0' in text
    )
    assert 'foureyes_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'foureyes_http_requests_total{method="GET",route="/v1/requests",status="401"} 1.0' in text
    )
    assert 'foureyes_requests{state="pending"} 1.0' in text
    assert 'foureyes_requests{state="executed"} 0.0' in text
    assert "foureyes_database_up 1.0" in text
    assert "foureyes_audit_events " in text
    assert "foureyes_http_request_duration_seconds_bucket" in text
