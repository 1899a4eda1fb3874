"""Detector tests run against the demo world (tests/worlds.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from foureyes.store.database import Database
from tests.worlds import World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)
