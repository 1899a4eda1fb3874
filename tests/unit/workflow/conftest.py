"""The workflow tests run against the demo world (tests/worlds.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from tests.worlds import World, challenge_signature, make_world

from foureyes.store.database import Database

__all__ = ["World", "challenge_signature"]


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)
