"""Attack scenarios reuse the API tests' fixtures: the seeded demo world behind a TestClient with
one real bearer token per person, on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.api.conftest import api, settings, world

__all__ = ["api", "settings", "world"]
