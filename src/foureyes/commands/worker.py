"""`foureyes worker`: a service process that operators run beside the server. It acts on the
database named by the settings (the staff's commands are HTTP clients: `commands/client.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from foureyes import notify, worker
from foureyes.audit.checkpoint import signer_from_file
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.bootstrap import services_for
from foureyes.commands.options import DataDirOpt, diagnosed, err
from foureyes.commands.serve import DEMO_MARKER
from foureyes.config import Settings
from foureyes.core.services import Services
from foureyes.errors import Unavailable
from foureyes.store import roles
from foureyes.workflow import operations

out = Console(highlight=False)


def _check_role(services: Services, data_dir: Path | None, *, once: bool, interval: float) -> None:
    """Fail closed unless the worker's database role owns nothing (`foureyes.store.roles`; a
    demo data directory may run as the owner). While the database is down, wait for it."""
    demo = (Settings.load(data_dir).data_dir / DEMO_MARKER).exists()
    while True:
        try:
            if roles.prepare_runtime(services.database, allow_owner=demo) == "owner":
                err.print(roles.owner_warning(services.database), markup=False, soft_wrap=True)
            return
        except Unavailable as exc:
            if once:
                raise
            err.print(
                f"foureyes worker: cannot check the database ({exc.message}); "
                f"next try in {interval:g} s",
                markup=False,
                soft_wrap=True,
            )
            time.sleep(interval)


def _checkpoint_schedule(data_dir: Path | None) -> CheckpointSchedule:
    """Every worker signs checkpoints and hands them to the witness: it refuses to start
    without the log's signing key, as `serve` does."""
    settings = Settings.load(data_dir)
    return CheckpointSchedule(
        signer_from_file(settings.signing_key_file),
        settings.witness_dir,
        every=settings.checkpoint_interval,
        deadline=settings.checkpoint_deadline,
    )


def worker_cmd(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval")] = 5.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Run due work: expiry, delayed executions, reconciliation, overdue post-reviews, and
    the log's checkpoints (signed and handed to the witness on the settings' schedule)."""
    services = services_for(Settings.load(data_dir))
    checkpoints = _checkpoint_schedule(data_dir)
    _check_role(services, data_dir, once=once, interval=interval)
    operations.seal_records(services)  # once, on a store upgraded from before seals
    notify.announce(services.database)  # where notifications go: once, not on every pass
    pacing = worker.Pacing(interval)  # a busy pass is followed at once by the next
    while True:
        try:
            tick = worker.run_once(services, worker="cli-worker", checkpoints=checkpoints)
        except Unavailable as exc:
            if once:
                raise
            # The database or a platform is down: nothing was changed; the next pass retries.
            err.print(
                f"foureyes worker: this pass failed ({exc.message}); next pass in {interval:g} s",
                markup=False,
                soft_wrap=True,
            )
            time.sleep(pacing.wait_after(None))
            continue
        out.print(
            f"executed {len(tick.executed)}, cancelled {len(tick.cancelled)}, "
            f"failed {len(tick.failed)}, expired {len(tick.expired)}, "
            f"reconciled {len(tick.reconciled)}, overdue {len(tick.overdue)}"
            + ("" if tick.checkpoint is None else f", checkpoint {tick.checkpoint}")
            + ("" if tick.held is None else f"; nothing carried out: {tick.held}")
        )
        if once:
            return
        wait = pacing.wait_after(tick)
        if wait:
            time.sleep(wait)


def register(app: typer.Typer) -> None:
    """Mount `foureyes worker` on the main app."""
    app.command("worker")(diagnosed(worker_cmd))
