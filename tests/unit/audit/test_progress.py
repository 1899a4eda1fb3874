"""How far verifying and exporting the log got: the callbacks of `verify_log`, `export_log` and
`verify_export` (done never goes back, the total is the log's size), and the CLI's lines on
stderr, with stdout as it was and no key or URL among them (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.audit.export import verify_export
from foureyes.audit.log import AuditLog
from foureyes.audit.verify import export_log, verify_log
from foureyes.commands.audit import audit_app
from foureyes.store.database import Database
from tests.unit.audit.test_log import ORIGIN, SIGNER, VERIFIER, fill

SIZE = 21


@pytest.fixture
def checkpointed(database: Database, tmp_path: Path) -> Path:
    """A log of SIZE events with a checkpoint of that size; its witness directory."""
    log = AuditLog(ORIGIN)
    fill(database, log, 0, SIZE)
    witness = tmp_path / "witness"
    log.checkpoint(database, SIGNER, witness)
    return witness


def assert_counted(calls: list[tuple[int, int]], total: int) -> None:
    assert calls, "never called"
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert all(a <= b for a, b in itertools.pairwise(done))
    assert done[-1] == total


def test_verify_log_tells_events_done_of_the_log_size(
    database: Database, checkpointed: Path
) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_log(
        database,
        [VERIFIER],
        witness_dir=checkpointed,
        batch_level=2,
        workers=1,
        progress=lambda *call: calls.append(call),
    )
    assert report.size == SIZE
    assert_counted(calls, SIZE)
    assert len(calls) > 2  # one per batch of 4


def test_export_and_its_verification_tell_events_done(
    database: Database, checkpointed: Path, tmp_path: Path
) -> None:
    exported: list[tuple[int, int]] = []
    export_log(
        database,
        tmp_path / "export",
        VERIFIER,
        witness_dir=checkpointed,
        progress=lambda *call: exported.append(call),
    )
    assert exported[0] == (0, SIZE)
    assert_counted(exported, SIZE)
    checked: list[tuple[int, int]] = []
    report = verify_export(
        tmp_path / "export", VERIFIER, batch_level=2, progress=lambda *call: checked.append(call)
    )
    assert report.size == SIZE
    assert checked == [(min(n, SIZE), SIZE) for n in range(0, SIZE + 4, 4)]


def test_the_cli_reports_on_stderr_and_keeps_stdout(
    database: Database, checkpointed: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    key = tmp_path / "log.key"
    key.write_text(SIGNER.to_skey() + "\n")
    vkey = VERIFIER.to_vkey()
    url = ["--database-url", database.url]
    common = [*url, "--vkey", vkey, "--witness", str(checkpointed)]
    export = tmp_path / "export"
    runs = {
        "verify": (["verify", *common, "--copies"], "ok: 21 events"),
        "export": (["export", str(export), *common], f"exported {SIZE} events"),
        "verify-export": (["verify-export", str(export), "--vkey", vkey], "ok: 21 events"),
    }
    expected = {
        "verify": [
            f"verifying: {SIZE} / {SIZE} events (100%)",
            f"checking indexed copies: {SIZE} / {SIZE} events (100%)",
        ],
        "export": [f"exporting: {SIZE} / {SIZE} events (100%)"],
        "verify-export": [f"verifying the export: {SIZE} / {SIZE} events (100%)"],
    }
    secrets = [SIGNER.to_skey(), vkey, vkey.rsplit("+", 1)[1], database.url, str(key)]
    for name, (args, result) in runs.items():
        done = runner.invoke(audit_app, args)
        assert done.exit_code == 0, done.output
        assert done.stderr.splitlines() == expected[name]
        assert done.stdout.startswith(result)
        assert "%)" not in done.stdout
        assert not any(secret in done.stderr for secret in secrets)


def test_a_failed_verification_leaves_no_final_line(
    database: Database, checkpointed: Path, tmp_path: Path
) -> None:
    """The diagnosis says where it stopped; no "100%" line suggests it got through."""
    export = tmp_path / "export"
    export_log(database, export, VERIFIER)
    lines = (export / "events.jsonl").read_bytes().splitlines(keepends=True)
    (export / "events.jsonl").write_bytes(b"".join(lines[:-1]))  # the last event dropped
    done = CliRunner().invoke(
        audit_app, ["verify-export", str(export), "--vkey", VERIFIER.to_vkey()]
    )
    assert done.exit_code == 1
    assert done.stderr.startswith("foureyes: TAMPERED: audit log truncated")
    assert "%)" not in done.stderr
    assert done.stdout == ""
