"""Real foureyes processes for fault and load tests: `foureyes serve --demo` on a loopback port
(optionally through the fault-injection launcher `hooked.py`), `foureyes worker`, and the checks
the tests make on the store afterwards.

A server's data directory is made by the first `serve --demo` started on it (with
`FOUREYES_DATABASE_URL` set, the demo lives in that database); later servers and workers on the
same directory share its settings, signing key and database.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from foureyes.audit.checkpoint import signer_from_file
from foureyes.audit.verify import VerifyReport, verify_log
from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.core.services import Services
from foureyes.store.tables import AuditHeadRow, EventRow

FOUREYES = Path(sys.executable).parent / "foureyes"
HOOKED = Path(__file__).with_name("hooked.py")
ROOT = Path(__file__).resolve().parents[2]
TOKEN_ROW = re.compile(r"^\W*([a-z]-\d{4})\b.*\b(fey_[0-9a-f]{16}_[A-Za-z0-9_-]{43})\b")
SERVING = re.compile(r"foureyes is serving at (http://\S+)")
# Waits are on readiness (a line, /healthz, a state), never on a budget tuned to an idle
# machine: a loaded 2-core CI machine took over 90 s to start a server. This bound only keeps a
# hung test from hanging CI; nothing alive and progressing reaches it.
HANG_GUARD = 900.0
# The log's append as a fault point: its events' INSERT, which on PostgreSQL moves the head in
# the same statement (`WITH moved AS (UPDATE audit_head …) INSERT INTO audit_events …`).
AUDIT_APPEND = r"^(?:WITH moved AS \(.*?\) )?INSERT INTO audit_events\b"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], T | None], what: str) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` only if it never
    does within the hang guard (callers fail sooner themselves when the process they wait on
    exits)."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def child_env(database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOUREYES_", "FAULT_"))}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    if database_url is not None:
        env["FOUREYES_DATABASE_URL"] = database_url
    return env


@dataclass
class Process:
    """A foureyes child process whose stdout is collected line by line."""

    name: str
    process: subprocess.Popen[str]
    stderr: Path
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Self:
        stderr = logs / f"{name}.stderr"
        with stderr.open("w") as errors:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        child = cls(name, process, stderr)
        stdout = process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                child.lines.append(line)

        child.reader = threading.Thread(target=read, daemon=True)
        child.reader.start()
        return child

    def output(self) -> str:
        err = self.stderr.read_text() if self.stderr.exists() else ""
        return f"--- {self.name} stdout ---\n{''.join(self.lines)}--- stderr ---\n{err}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it does not end (the test's clean-up)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.reader is not None:
            self.reader.join(5)


@dataclass
class Server(Process):
    base_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    def wait_ready(self) -> Server:
        def serving() -> str | None:
            if not self.alive():
                pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.output()}")
            return next((m.group(1) for line in self.lines if (m := SERVING.search(line))), None)

        self.base_url = wait_until(serving, f"{self.name} to serve")
        self.tokens = {
            m.group(1): m.group(2) for line in self.lines if (m := TOKEN_ROW.search(line))
        }

        def healthy() -> bool:
            if not self.alive():
                pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.output()}")
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, f"{self.name}'s /healthz")
        return self


def server_argv(data_dir: Path, *, worker: bool, hooked: bool = False) -> list[str]:
    """`foureyes serve --demo` on a free loopback port (through `hooked.py` if `hooked`)."""
    launcher = [sys.executable, str(HOOKED)] if hooked else [str(FOUREYES)]
    argv = [
        *launcher,
        "serve",
        "--demo",
        "--data-dir",
        str(data_dir),
        "--port",
        str(free_port()),
        "--worker-interval",
        "0.2",
    ]
    return argv if worker else [*argv, "--no-worker"]


def start_server(
    name: str,
    data_dir: Path,
    logs: Path,
    *,
    database_url: str | None,
    worker: bool = False,
    fault: dict[str, str] | None = None,
) -> Server:
    """`foureyes serve --demo` on a free port (through `hooked.py` when `fault` is given: its
    FAULT_* variables), ready to answer."""
    argv = server_argv(data_dir, worker=worker, hooked=fault is not None)
    env = child_env(database_url, **(fault or {}))
    return Server.start(name, argv, env, logs).wait_ready()


def services_of(data_dir: Path, database_url: str | None) -> Services:
    """The test's own handle on the served foureyes (to check the store, never to act)."""
    env = {"FOUREYES_DATABASE_URL": database_url} if database_url else {}
    return services_for(Settings.load(data_dir, env=env))


def verify_audit(data_dir: Path, services: Services) -> VerifyReport:
    """`audit verify` against the log's key and witness; also: the head's size is the number of
    event rows, dense from 0 (no event without its head bump, no bump without its event)."""
    settings = Settings.load(data_dir, env={})
    report = verify_log(
        services.database,
        [signer_from_file(settings.signing_key_file).verifier()],
        origin=settings.log_origin,
        witness_dir=settings.witness_dir if settings.witness_dir.is_dir() else None,
    )
    with services.database.transaction() as session:
        head = session.scalar(select(AuditHeadRow.size))
        rows = session.scalar(select(func.count()).select_from(EventRow))
        top = session.scalar(select(func.max(EventRow.seq)))
    assert report.size == head == rows == (top or 0) + 1, (report.size, head, rows, top)
    return report


def call(server: Server, staff_id: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[staff_id]}"}
    return httpx.request(method, f"{server.base_url}{path}", headers=headers, timeout=60, **kwargs)
