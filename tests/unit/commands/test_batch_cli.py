"""`foureyes batch request|approve|show|prove` as staff run them, against a real foureyes
server: a CSV manifest from a file or stdin, one line per bad line, approval bound to the digest
shown, the proof verified here with the log's verifier."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.store.database import Database
from foureyes.workflow import batch_worker
from tests.batches import approved, make_big_vit, seed_big, seed_ring
from tests.unit.commands import test_lifecycle_cli as lifecycle
from tests.unit.commands.test_lifecycle_cli import Served

BATCH = re.compile(r"batch ([0-9a-f-]{36}): (\w+)")


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    yield from lifecycle.served.__wrapped__(database, tmp_path)  # type: ignore[attr-defined]


def test_a_batch_from_a_csv_file_is_approved_carried_out_and_proved(
    served: Served, tmp_path: Path
) -> None:
    ring = seed_ring(served.world, 5)
    manifest = tmp_path / "ring.csv"
    manifest.write_text("account\n" + "\n".join([*ring, "chirp:president"]) + "\n")
    code, out, err = served.run(
        "e-3001", "batch", "request", "account.suspend", "--accounts", str(manifest), "-j", "CASE-5"
    )
    assert code == 0, err
    found = BATCH.search(out)
    assert found is not None, out
    batch_id = found.group(1)
    assert "split out chirp:president" in out
    for reviewer in ("e-3002", "e-3003"):
        code, out, err = served.run(reviewer, "batch", "approve", batch_id, "--yes")
        assert code == 0, err
    assert out.strip().endswith(f"{batch_id}: approved")
    batch_worker.run_batches(served.world.services, "test")
    code, out, err = served.run("e-3001", "batch", "show", batch_id, "--wait")
    assert code == 0, err
    assert "progress: 5/5 (5 executed, 0 failed, 0 cancelled, 0 pending)" in out
    code, out, err = served.run("e-3001", "batch", "prove", batch_id, "3")
    assert code == 0, err
    assert "proof verified" in out


def test_bad_lines_are_one_line_each_and_nothing_is_recorded(
    served: Served, tmp_path: Path
) -> None:
    ring = seed_ring(served.world, 2)
    manifest = tmp_path / "bad.csv"
    manifest.write_text("\n".join([ring[0], "chirp:ghost", ring[0], "junk"]) + "\n")
    code, out, err = served.run(
        "e-3001", "batch", "request", "account.suspend", "--accounts", str(manifest), "-j", "CASE-5"
    )
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in lines] == ["line 2", "line 3", "line 4"]
    code, out, _ = served.run("e-3001", "batch", "list")
    assert code == 0
    assert out.strip() == ""


def test_batch_show_counts_cancelled_and_pending_items(served: Served) -> None:
    world = served.world
    ring, big = seed_ring(world, 3), seed_big(world, 2)
    batch_id = approved(world, [*ring, *big])
    code, out, err = served.run("e-3001", "batch", "show", batch_id)
    assert code == 0, err
    assert "progress: 0/5 (0 executed, 0 failed, 0 cancelled, 5 pending)" in out
    make_big_vit(world)
    batch_worker.run_batches(world.services, "test")
    code, out, err = served.run("e-3001", "batch", "show", batch_id)
    assert code == 0, err
    assert "progress: 5/5 (3 executed, 0 failed, 2 cancelled, 0 pending)" in out
