"""`/metrics` is for the operator's scraper only: the bearer token of `metrics_token_file` /
`metrics_token_env`. Anyone else, staff included, gets the 401 problem and no numbers (the
finding: per-route traffic told anyone that a key had just been enrolled, a review given)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from foureyes.bootstrap import create_app
from foureyes.config import Settings
from foureyes.errors import BadInput
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem
from tests.worlds import World

TOKEN = "c0ffee" * 8  # 48 characters


@pytest.fixture
def metered(world: World, settings: Settings, tmp_path: Path) -> Iterator[Api]:
    """The API of `api`, with a metrics token configured in a file."""
    (tmp_path / "metrics-token").write_text(TOKEN + "\n")
    with_token = settings.model_copy(update={"metrics_token_file": tmp_path / "metrics-token"})
    with TestClient(create_app(world.services, with_token)) as client:
        api = Api(client, world, with_token)
        for person in operations.list_staff(world.services):
            api.tokens[person.id] = operations.issue_token(world.services, person.id)
        yield api


def test_the_operators_token_reads_the_metrics(metered: Api) -> None:
    metered.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    response = metered.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'foureyes_http_requests_total{method="POST",route="/v1/requests",status="201"} 1.0'
        in response.text
    )


def test_metrics_count_traffic_and_requests_by_state(metered: Api) -> None:
    api = metered
    api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    api.client.get("/nope")
    api.client.get("/v1/requests")
    response = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
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


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {TOKEN[:-1]}",  # one character short
        f"Bearer {TOKEN}x",  # one too many
        f"Bearer {TOKEN.upper()}",
        f"bearer  {TOKEN} extra",
        f"Basic {base64.b64encode(f'prometheus:{TOKEN}'.encode()).decode()}",
        f"Token {TOKEN}",
        "Bearer ",
    ],
    ids=["none", "short", "long", "case", "extra", "basic", "scheme", "empty"],
)
def test_without_the_metrics_token_a_scrape_is_the_401_problem(
    metered: Api, authorization: str | None
) -> None:
    metered.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    headers = {} if authorization is None else {"Authorization": authorization}
    response = metered.client.get("/metrics", headers=headers)
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith('Bearer realm="foureyes"')
    assert "foureyes_" not in response.text
    assert TOKEN not in body["detail"]


@pytest.mark.parametrize("staff_id", ["c-1001", "e-4001"])  # anyone; oversight staff too
def test_a_staff_token_does_not_read_the_metrics(metered: Api, staff_id: str) -> None:
    """A sign-in token is a person's, not the operator's scraper's: refused like any other."""
    response = metered.get(staff_id, "/metrics")
    assert_problem(response, 401, "unauthenticated")
    assert "foureyes_http_requests" not in response.text


def test_the_token_is_taken_from_the_header_only(metered: Api) -> None:
    for params in ({"token": TOKEN}, {"access_token": TOKEN}):
        assert_problem(metered.client.get("/metrics", params=params), 401, "unauthenticated")
    metered.client.cookies.set("token", TOKEN)
    assert_problem(metered.client.get("/metrics"), 401, "unauthenticated")


def test_without_a_configured_token_nobody_reads_the_metrics(api: Api) -> None:
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, api.auth("e-4001")):
        response = api.client.get("/metrics", headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert "foureyes_" not in response.text


def test_the_token_may_come_from_a_variable(world: World, settings: Settings) -> None:
    named = settings.model_copy(update={"metrics_token_env": "TEST_METRICS_TOKEN"})
    assert named.metrics_token({"TEST_METRICS_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(BadInput, match="at least 32 characters"):
        named.metrics_token({})  # unset: the app would not start
    with pytest.raises(BadInput, match="at least 32 characters") as refused:
        named.metrics_token({"TEST_METRICS_TOKEN": "hunter2"})
    assert "hunter2" not in refused.value.message


def test_an_unreadable_token_file_stops_the_app_from_being_made(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    missing = settings.model_copy(update={"metrics_token_file": tmp_path / "nope"})
    with pytest.raises(BadInput, match=r"metrics_token_file: .* is not a readable file") as no:
        create_app(world.services, missing)
    assert "nope" not in no.value.message  # the value given may be the token itself


def test_the_openapi_document_says_metrics_need_the_metrics_token(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    operation = document["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"metrics_token": []}]
    assert "401" in operation["responses"]
