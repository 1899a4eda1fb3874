"""Running foureyes: the API under uvicorn, and the background worker beside it.

The worker is a thread that calls `foureyes.worker.run_once` every `interval` seconds (expiry, due
executions, reconciliation, overdue post-reviews). It is safe to run one in each of several
processes sharing one PostgreSQL: `run_once` claims each item with a row lock.

Shutdown. SIGTERM or SIGINT (Ctrl-C) makes uvicorn stop accepting connections and finish the
requests in flight; then the worker is told to stop and is waited for (it finishes the item in
hand, so a platform call is never cut off by us), the store's connections are closed, and the
process exits 0. uvicorn re-raises the signal once it is done; the handlers installed here take
it, so the re-raise does not kill the process before the worker has stopped. A second signal
while the worker finishes its pass ends the process at once.

The port. `listen` binds it before anything says "serving" (`serve` prints its banner only
then; a busy port is a one-line diagnosis), and `run` serves on that socket. With several
processes, each serving process asks Linux to send it SIGTERM when its supervisor ends,
however that ends (SIGKILL included), so none is left holding the port (`_die_with_supervisor`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors.multiprocess import Multiprocess

from foureyes import worker
from foureyes.api.metrics import Metrics
from foureyes.audit.schedule import CheckpointSchedule
from foureyes.bootstrap import create_app, services_for
from foureyes.config import Settings
from foureyes.config.served import SERVED_PORT_ENV, as_served
from foureyes.core.demo import DemoMode
from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.notify import announce

__all__ = [
    "APP_FACTORY",
    "DEFAULT_WORKER_INTERVAL",
    "DEMO_APP_FACTORY",
    "DEMO_ENV",
    "Worker",
    "app_from_environment",
    "configure_logging",
    "demo_app_from_environment",
    "listen",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_WORKER_INTERVAL = 5.0
WORKER_STOP_TIMEOUT = 60.0
APP_FACTORY = f"{__name__}:app_from_environment"
DEMO_APP_FACTORY = f"{__name__}:demo_app_from_environment"
# How `serve --demo --workers N` hands its serving processes the demo (`DemoMode.to_json`).
DEMO_ENV = "FOUREYES_SERVED_DEMO"
# How long a serving process may take to answer its supervisor's first ping: it imports the
# `foureyes` command before anything else (uvicorn's default, 5 s, killed them in a loop on a
# loaded 2-core machine, where that import took 12 s).
PROCESS_START_SECONDS = 60
GRACEFUL_SHUTDOWN_SECONDS = 10
BACKLOG = 2048  # uvicorn's default
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# Every worker process signs checkpoints: the schedule lives with the log (foureyes.audit).
Checkpoints = CheckpointSchedule


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
        announce(self.services.database)  # where notifications go: said once, not per pass
        self._thread.start()

    def stop(self, timeout: float = WORKER_STOP_TIMEOUT) -> bool:
        """Ask the worker to stop and wait; False if it was still busy after `timeout`."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        pacing = worker.Pacing(self.interval)  # a busy pass is followed at once by the next
        while not self._stopping.is_set():
            wait = pacing.wait_after(self.tick())
            if wait:
                self._stopping.wait(wait)

    def tick(self) -> worker.Tick | None:
        """One pass; a failure is logged and counted (None), and the next pass tries again.
        What the pass did."""
        try:
            done = worker.run_once(self.services, worker=self.name, checkpoints=self.checkpoints)
        except Exception as exc:
            if isinstance(exc, FoureyesError):  # the store is down...: expected, one line
                log.error("the worker's pass failed: %s; retrying in %.1f s", exc, self.interval)
            else:  # a bug: its traceback
                log.exception("the worker's pass failed; retrying in %.1f s", self.interval)
            if self.metrics is not None:
                self.metrics.worker_errors.inc()
            return None
        if self.metrics is not None:
            self.metrics.record_tick(done)
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
        return done


def app_from_environment() -> FastAPI:
    """The app each process of `run(..., processes=N)` serves, made in that process (uvicorn
    starts them afresh) from the settings `serve` was started with: the data directory is in
    FOUREYES_DATA_DIR, the port it bound in FOUREYES_SERVED_PORT (`config.served`), the rest of
    the environment is inherited. It ends with its supervisor (`_die_with_supervisor`)."""
    _die_with_supervisor()
    configure_logging()
    settings = _served_settings()
    return create_app(services_for(settings), settings)


def demo_app_from_environment() -> FastAPI:
    """As `app_from_environment`, for `serve --demo --workers N` alone (it names this factory;
    nothing else does): the demo's `DemoMode` comes from FOUREYES_SERVED_DEMO, which that
    command sets, and is checked again here (the data directory must be a demo's)."""
    _die_with_supervisor()
    configure_logging()
    settings = _served_settings()
    services = services_for(settings)
    services.demo = DemoMode.from_json(os.environ[DEMO_ENV])
    if services.demo.data_dir != settings.data_dir:
        raise SystemExit("foureyes: the demo's data directory is not the one served")
    return create_app(services, settings)


def _served_settings() -> Settings:
    settings = Settings.load()
    port = os.environ.get(SERVED_PORT_ENV, "")
    return as_served(settings, int(port)) if port.isdigit() else settings


def _die_with_supervisor() -> None:
    """In a process the supervisor spawned: have Linux send SIGTERM (a graceful stop) when the
    supervisor ends, even by SIGKILL. If it ended before the request took effect, this process
    already has another parent: it exits at once. Elsewhere (not a spawned child, not Linux)
    nothing is done."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor.pid:  # it died before prctl: nobody would signal us
        raise SystemExit("foureyes: the supervising process is gone; not serving")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening (port 0: any free port). OSError (e.g.
    EADDRINUSE) if it cannot be had: nothing has been started then."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart need not wait out TIME_WAIT. (Linux still refuses a
        # port another socket listens on.)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


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
    trusted_proxies: tuple[str, ...] = (),
    sock: socket.socket | None = None,
    factory: str = APP_FACTORY,
) -> None:
    """Serve `app` on `sock` (`listen(host, port)`; bound here if not given, and closed
    here either way) with the worker beside it (unless `worker` is False: then
    another process runs `foureyes worker`) until SIGTERM or SIGINT; returns once everything
    has stopped and the store's connections are closed.

    With `processes` > 1, uvicorn's supervisor serves the port from that many processes, each
    with its own copy of the app (`factory`, by default `app_from_environment`: set
    FOUREYES_DATA_DIR first) and
    its own connections; this process supervises them and runs the one worker and the
    checkpoint schedule, so those stay single. `app` then only lends its metrics to nothing:
    each serving process counts its own HTTP traffic at its own `/metrics`.

    `X-Forwarded-For` is believed only from `trusted_proxies`.
    uvicorn runs on uvloop and httptools (both dependencies). `access_log` adds a line per
    request to the output (off by default: it costs throughput, and the audit log, not the
    access log, is the record of what was done)."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if worker_interval <= 0:
        raise ValueError("the worker interval must be positive")
    listening = listen(host, port) if sock is None else sock
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
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default; foureyes only from the
        # proxies the operator names (none: the peer's own address is the client's).
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": list(trusted_proxies),
    }
    serve: Callable[[], None]
    if processes == 1:
        server = uvicorn.Server(uvicorn.Config(app, **options))

        def serve() -> None:
            server.run(sockets=[listening])

    else:
        config = uvicorn.Config(
            factory,
            factory=True,
            workers=processes,
            timeout_worker_healthcheck=PROCESS_START_SECONDS,
            **options,
        )
        # Installs its own SIGINT/SIGTERM handlers: they stop the serving processes.
        serve = Multiprocess(config, sockets=[listening]).run
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
        listening.close()
    log.info("foureyes stopped")
