"""The console over the demo world (tests/worlds.py): a TestClient per person, signed in with
a local token through the login form. The base URL is https, since the session cookie is Secure
and the client only sends Secure cookies to https."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from foureyes.bootstrap import create_app
from foureyes.config import Settings
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.api.conftest import make_settings
from tests.browser import browser, page  # noqa: F401 (fixtures: Chromium, a page in a context)
from tests.worlds import World, make_world

BASE_URL = "https://testserver"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(html: str) -> str:
    found = CSRF_META.search(html) or CSRF_FIELD.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Browser:
    """One person's TestClient, and what they need to post forms."""

    client: TestClient
    staff_id: str | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def csrf(self, path: str = "/console/login") -> str:
        return csrf_of(self.client.get(path).text)

    def post(
        self, path: str, data: dict[str, str], *, csrf_from: str = "/console/"
    ) -> httpx.Response:
        """Post a form with the CSRF token of the page at `csrf_from`; redirects not followed."""
        form = {"csrf": self.csrf(csrf_from), **data}
        return self.client.post(path, data=form, follow_redirects=False)


@dataclass
class Console:
    app: FastAPI
    world: World
    settings: Settings

    def browser(self, address: str = "testclient") -> Browser:
        """A fresh browser (no cookies) at client `address`."""
        return Browser(TestClient(self.app, base_url=BASE_URL, client=(address, 50000)))

    def token(self, staff_id: str) -> str:
        return operations.issue_token(self.world.services, staff_id)

    def signed_in(self, staff_id: str) -> Browser:
        person = self.browser()
        response = person.post(
            "/console/login", {"token": self.token(staff_id)}, csrf_from="/console/login"
        )
        assert response.status_code == 303, response.text
        person.staff_id = staff_id
        return person


def console_for(world: World, settings_root: Path) -> Console:
    settings = make_settings(settings_root)
    return Console(create_app(world.services, settings), world, settings)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


@pytest.fixture
def console(world: World, tmp_path: Path) -> Console:
    return console_for(world, tmp_path / "data")
