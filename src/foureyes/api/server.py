"""Running foureyes: the API under uvicorn, and the background worker beside it.

The worker is a thread that calls `operations.run_once` every `interval` seconds (expiry, due
executions, reconciliation, overdue post-reviews). It is safe to run one in each of several
processes sharing one PostgreSQL: `run_once` claims each item with a row lock.

Shutdown. SIGTERM or SIGINT (Ctrl-C) makes uvicorn stop accepting connections and finish the
requests in flight; then the worker is told to stop and is waited for (it finishes the item in
hand, so a platform call is never cut off by us), the store's connections are closed, and the
process exits 0. uvicorn re-raises the signal once it is done; the handlers installed here take
it, so the re-raise does not kill the process before the worker has stopped. A second signal
while the worker finishes its pass ends the process at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors.multiprocess import Multiprocess

from foureyes.api.app import create_app
from foureyes.api.metrics import Metrics
from foureyes.audit.checkpoint import Signer
from foureyes.commands.common import services_for
from foureyes.config import Settings
from foureyes.errors import FoureyesError
from foureyes.workflow import operations
from foureyes.workflow.services import Services

__all__ = [
    "APP_FACTORY",
    "DEFAULT_WORKER_INTERVAL",
    "Worker",
    "app_from_environment",
    "configure_logging",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_WORKER_INTERVAL = 5.0
DEFAULT_CHECKPOINT_INTERVAL = 300.0  # seconds between scheduled checkpoints (when the log grew)
WORKER_STOP_TIMEOUT = 60.0
APP_FACTORY = f"{__name__}:app_from_environment"
# How long a serving process may take to answer its supervisor's first ping: it imports the
# `foureyes` command before anything else (uvicorn's default, 5 s, killed them in a loop on a
# loaded 2-core machine, where that import took 12 s).
PROCESS_START_SECONDS = 60
GRACEFUL_SHUTDOWN_SECONDS = 10


@dataclass
class Checkpoints:
    """Signs a checkpoint on a schedule (when the log has grown) and publishes it to the
    witness directory, so a later rollback or rewrite is evident against it."""

    signer: Signer
    witness_dir: Path | None
    every: float = DEFAULT_CHECKPOINT_INTERVAL
    _last: float = field(default=0.0, repr=False)

    def maybe_sign(self, services: Services) -> None:
        now = time.monotonic()
        if self._last and now - self._last < self.every:
            return
        self._last = now
        try:
            with services.database.transaction() as session:
                size = services.audit.size(session)
                latest = services.audit.latest_checkpoint(session)
            if size and (latest is None or latest.size < size):
                services.audit.checkpoint(services.database, self.signer, self.witness_dir)
        except FoureyesError as exc:  # e.g. the witness is ahead: loud, and the log is not signed
            log.error("no checkpoint signed: %s", exc.message)


class Worker:
    """The background worker thread. `start`, then `stop` (which waits for the pass in hand)."""

    def __init__(
        self,
        services: Services,
        *,
        interval: float = DEFAULT_WORKER_INTERVAL,
        metrics: Metrics | None = None,
        name: str | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the worker interval must be positive")
        self.services = services
        self.interval = interval
        self.metrics = metrics
        # Recorded in execution events: which process carried a request out.
        self.name = name or f"serve@{socket.gethostname()}:{os.getpid()}"
        self.checkpoints = checkpoints
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="foureyes-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = WORKER_STOP_TIMEOUT) -> bool:
        """Ask the worker to stop and wait; False if it was still busy after `timeout`."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.tick()
            self._stopping.wait(self.interval)

    def tick(self) -> None:
        """One pass; a failure is logged and counted, and the next pass tries again."""
        try:
            done = operations.run_once(self.services, worker=self.name)
        except Exception:
            log.exception("the worker's pass failed; retrying in %.1f s", self.interval)
            if self.metrics is not None:
                self.metrics.worker_errors.inc()
            return
        if self.metrics is not None:
            self.metrics.record_tick(done)
        if self.checkpoints is not None:
            self.checkpoints.maybe_sign(self.services)
        counts = {
            "executed": len(done.executed),
            "cancelled": len(done.cancelled),
            "failed": len(done.failed),
            "expired": len(done.expired),
            "reconciled": len(done.reconciled),
            "overdue": len(done.overdue),
        }
        if any(counts.values()):
            log.info("worker: %s", ", ".join(f"{name} {n}" for name, n in counts.items()))


def app_from_environment() -> FastAPI:
    """The app each process of `run(..., processes=N)` serves, made in that process (uvicorn
    starts them afresh) from the settings `serve` was started with: the data directory is in
    FOUREYES_DATA_DIR, the rest of the environment is inherited."""
    configure_logging()
    settings = Settings.load()
    return create_app(services_for(settings), settings)


def configure_logging() -> None:
    """What a serving process logs: warnings, and foureyes' own news (the worker's passes)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("foureyes").setLevel(logging.INFO)


def run(
    app: FastAPI,
    services: Services,
    *,
    host: str,
    port: int,
    worker_interval: float = DEFAULT_WORKER_INTERVAL,
    log_level: str = "info",
    checkpoints: Checkpoints | None = None,
    worker: bool = True,
    processes: int = 1,
    access_log: bool = False,
) -> None:
    """Serve `app` on host:port with the worker beside it (unless `worker` is False: then
    another process runs `foureyes worker`) until SIGTERM or SIGINT; returns once everything
    has stopped and the store's connections are closed.

    With `processes` > 1, uvicorn's supervisor serves the port from that many processes, each
    with its own copy of the app (`app_from_environment`: set FOUREYES_DATA_DIR first) and
    its own connections; this process supervises them and runs the one worker and the
    checkpoint schedule, so those stay single. `app` then only lends its metrics to nothing:
    each serving process counts its own HTTP traffic at its own `/metrics`.

    uvicorn runs on uvloop and httptools (both dependencies). `access_log` adds a line per
    request to the output (off by default: it costs throughput, and the audit log, not the
    access log, is the record of what was done)."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    signals: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    metrics: Metrics | None = getattr(app.state, "metrics", None) if processes == 1 else None
    background = (
        Worker(services, interval=worker_interval, metrics=metrics, checkpoints=checkpoints)
        if worker
        else None
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": access_log,
    }
    serve: Callable[[], None]
    if processes == 1:
        serve = uvicorn.Server(uvicorn.Config(app, **options)).run
    else:
        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            workers=processes,
            timeout_worker_healthcheck=PROCESS_START_SECONDS,
            **options,
        )
        # Installs its own SIGINT/SIGTERM handlers: they stop the serving processes.
        serve = Multiprocess(config, sockets=[config.bind_socket()]).run
    if background is not None:
        background.start()
    try:
        if not signals:  # a signal before uvicorn took over means: do not start at all
            serve()
    finally:
        # From here a second Ctrl-C or SIGTERM acts as usual: it cuts the wait short.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if background is not None and not background.stop():
            log.warning("the worker was still busy after %.0f s; leaving it", WORKER_STOP_TIMEOUT)
        services.database.dispose()
    log.info("foureyes stopped")
