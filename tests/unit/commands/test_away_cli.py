"""`foureyes away set|clear` as staff run them: clients of a real foureyes server, changing
only the caller's own away."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from foureyes.store.database import Database
from foureyes.workflow.away import my_away
from tests.unit.commands import test_lifecycle_cli as lifecycle
from tests.unit.commands.test_lifecycle_cli import Served


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """The test world served over HTTP, as the lifecycle CLI tests serve it."""
    yield from lifecycle.served.__wrapped__(database, tmp_path)  # type: ignore[attr-defined]


MEI, SAM = "e-3002", "e-3003"


def test_away_set_and_clear(served: Served) -> None:
    today = served.world.clock.now.date()
    until = (today + timedelta(days=4)).isoformat()
    code, out, err = served.run(
        MEI, "away", "set", "--from", today.isoformat(), "--until", until, "--delegate", SAM
    )
    assert code == 0, err
    assert f"away from {today.isoformat()} until {until}" in out
    assert SAM in out
    away = my_away(served.world.services, served.world.actor(MEI))
    assert away is not None
    assert away.delegate == SAM
    assert my_away(served.world.services, served.world.actor(SAM)) is None
    code, out, err = served.run(MEI, "away", "clear")
    assert code == 0, err
    assert "back" in out
    assert my_away(served.world.services, served.world.actor(MEI)) is None


def test_a_bad_away_is_one_line_and_changes_nothing(served: Served) -> None:
    today = served.world.clock.now.date()
    code, _, err = served.run(
        MEI,
        "away",
        "set",
        "--from",
        today.isoformat(),
        "--until",
        (today - timedelta(days=1)).isoformat(),
    )
    assert code != 0
    assert "before" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = served.run(
        MEI,
        "away",
        "set",
        "--from",
        today.isoformat(),
        "--until",
        today.isoformat(),
        "--delegate",
        "nobody",
    )
    assert code != 0
    assert "nobody" in err
    assert my_away(served.world.services, served.world.actor(MEI)) is None
