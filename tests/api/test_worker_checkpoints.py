"""Every worker pass signs checkpoints on schedule and hands them to the witness; a log the
witness shows was rolled back is refused, and the refusal raises `checkpoint_stale` at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from foureyes import worker
from foureyes.audit.checkpoint import Checkpoint, Signer, sign_checkpoint, signer_from_file
from foureyes.audit.export import note_checkpoint, write_witness
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.store.tables import CheckpointRow
from tests.api.conftest import Api
from tests.dba import dba


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _schedule(api: Api, ticks: Ticks) -> CheckpointSchedule:
    return CheckpointSchedule(
        signer_from_file(api.settings.signing_key_file),
        api.settings.witness_dir,
        every=60,
        clock=ticks,
    )


def _size(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return api.world.services.audit.size(session)


def _witnessed(api: Api) -> int:
    return note_checkpoint((api.settings.witness_dir / "latest").read_bytes()).size


def _checkpoints(api: Api) -> list[int]:
    with api.world.services.database.transaction() as session:
        return list(session.scalars(select(CheckpointRow.size).order_by(CheckpointRow.size)))


def _stale_alerts(api: Api) -> list[dict[str, Any]]:
    response = api.get("e-4001", "/v1/alerts", params={"detector": "checkpoint_stale"})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_worker_pass_signs_on_schedule_and_witnesses(api: Api) -> None:
    services, ticks = api.world.services, Ticks()
    schedule = _schedule(api, ticks)
    first = worker.run_once(services, checkpoints=schedule)
    assert first.checkpoint == _size(api) == _witnessed(api)
    api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    assert worker.run_once(services, checkpoints=schedule).checkpoint is None  # not due
    ticks.now += 60
    second = worker.run_once(services, checkpoints=schedule)
    assert second.checkpoint == _size(api) == _witnessed(api) > (first.checkpoint or 0)
    ticks.now += 60
    assert worker.run_once(services, checkpoints=schedule).checkpoint is None  # no growth
    assert _stale_alerts(api) == []


def test_a_worker_refuses_a_rolled_back_log_and_alerts_at_once(api: Api) -> None:
    services, ticks = api.world.services, Ticks()
    schedule = _schedule(api, ticks)
    worker.run_once(services, checkpoints=schedule)
    signed = _size(api)
    for n in range(3):
        api.submitted(
            "c-1001",
            action="account.deactivate",
            account="chirp:president",
            justification=f"CASE-{n + 10}",
        )
    ticks.now += 60
    worker.run_once(services, checkpoints=schedule)
    witnessed = _witnessed(api)
    assert witnessed > signed
    # The DBA rolls the log back to the first checkpoint and removes every trace of the rest.
    with dba(services.database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= :n"), {"n": signed})
        sql.execute(text("DELETE FROM audit_checkpoints WHERE size > :n"), {"n": signed})
        sql.execute(
            text('DELETE FROM audit_nodes WHERE ("index" + 1) << level > :n'), {"n": signed}
        )
        sql.execute(text("UPDATE audit_head SET size = :n"), {"n": signed})
    # The log grows again (foureyes refuses submits on it now: tests/adversarial/test_dba_log.py).
    with services.database.transaction() as session:
        services.audit.append(
            session,
            kind="test.regrown",
            actor=None,
            account_ref=None,
            request_id=None,
            at=services.clock(),
        )
    before = _checkpoints(api)
    ticks.now += 60
    tick = worker.run_once(services, checkpoints=schedule)
    assert tick.checkpoint is None
    assert _checkpoints(api) == before
    assert _witnessed(api) == witnessed
    (alert,) = _stale_alerts(api)  # at once: no waiting for the deadline
    assert "rolled-back" in alert["summary"]
    ticks.now += 60
    worker.run_once(services, checkpoints=schedule)
    assert len(_stale_alerts(api)) == 1  # once per stretch
    with services.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CheckpointRow)) == len(before)


def test_a_worker_signs_nothing_when_the_witness_holds_another_log(api: Api) -> None:
    """A mixed-up witness directory (another log's checkpoints): refused, not overwritten."""
    stranger = Signer.generate("other.example/log")
    note = sign_checkpoint(Checkpoint(stranger.name, 1, b"\x00" * 32), [stranger])
    write_witness(api.settings.witness_dir, note)
    tick = worker.run_once(api.world.services, checkpoints=_schedule(api, Ticks()))
    assert tick.checkpoint is None
    assert _checkpoints(api) == []
    assert (api.settings.witness_dir / "latest").read_bytes() == note
