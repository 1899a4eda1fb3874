"""The API over a running foureyes on the demo platform (the workflow tests' world: chirp
accounts, the example staff and policy, a clock the test moves, a step-up key per person), with
a token per person and a FastAPI TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from foureyes.audit.checkpoint import Signer
from foureyes.bootstrap import create_app
from foureyes.config import Settings
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.worlds import World, challenge_signature, make_world

PROBLEM_JSON = "application/problem+json"


@dataclass
class Api:
    """A TestClient with each person's token, and the world behind it."""

    client: TestClient
    world: World
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, staff_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[staff_id]}"}

    def get(
        self, staff_id: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return self.client.get(path, headers={**self.auth(staff_id), **(headers or {})}, **kwargs)

    def post(self, staff_id: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers=self.auth(staff_id), json=body, **kwargs)

    def submit(self, staff_id: str, **body: Any) -> httpx.Response:
        return self.post(staff_id, "/v1/requests", body)

    def submitted(self, staff_id: str, **body: Any) -> dict[str, Any]:
        """Submit and expect 201; the request view."""
        response = self.submit(staff_id, **body)
        assert response.status_code == 201, response.text
        view: dict[str, Any] = response.json()
        return view

    def show(self, staff_id: str, request_id: str) -> dict[str, Any]:
        response = self.get(staff_id, f"/v1/requests/{request_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def review(
        self,
        staff_id: str,
        request_id: str,
        decision: str = "approve",
        *,
        digest: str | None = None,
        step_up: bool = False,
        comment: str = "",
    ) -> httpx.Response:
        if digest is None:
            digest = self.show(staff_id, request_id)["digest"]
        body: dict[str, Any] = {"decision": decision, "digest": digest, "comment": comment}
        if step_up:
            body["step_up"] = challenge_signature(
                self.world, staff_id, request_id, digest, decision
            )
        return self.post(staff_id, f"/v1/requests/{request_id}/reviews", body)


def make_settings(root: Path) -> Settings:
    """Settings for a data directory holding just a log signing key."""
    settings = Settings.load(root, env={})
    settings.signing_key_file.parent.mkdir(parents=True)
    settings.signing_key_file.write_text(Signer.generate(settings.log_origin).to_skey() + "\n")
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


@pytest.fixture
def api(world: World, settings: Settings) -> Iterator[Api]:
    app = create_app(world.services, settings)
    with TestClient(app) as client:
        api = Api(client, world, settings)
        for person in operations.list_staff(world.services):
            api.tokens[person.id] = operations.issue_token(world.services, person.id)
        yield api


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of `status` and type `slug`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:foureyes:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body
