"""`foureyes batch cancel` against a real foureyes server: the requester withdraws a pending
batch; someone who may not see it gets the one-line diagnosis of an unknown batch, and the
batch stays as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.store.database import Database
from tests.batches import seed_ring, show, submit
from tests.unit.commands import test_lifecycle_cli as lifecycle
from tests.unit.commands.test_lifecycle_cli import Served


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    yield from lifecycle.served.__wrapped__(database, tmp_path)  # type: ignore[attr-defined]


def test_the_requester_cancels_a_batch_and_a_stranger_cannot(served: Served) -> None:
    batch_id = submit(served.world, seed_ring(served.world, 3))
    code, out, err = served.run("c-3004", "batch", "cancel", batch_id, "--reason", "mine now")
    assert code != 0
    assert "no batch" in err
    assert show(served.world, batch_id)["state"] == "pending"
    code, out, err = served.run("e-3001", "batch", "cancel", batch_id, "--reason", "wrong list")
    assert code == 0, err
    assert out.strip() == f"{batch_id}: cancelled"
    view = show(served.world, batch_id)
    assert (view["state"], view["reason"]) == ("cancelled", "wrong list")
    code, out, err = served.run("e-3001", "batch", "cancel", batch_id)
    assert code != 0
    assert "is cancelled" in err
