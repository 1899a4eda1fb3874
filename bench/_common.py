"""What the server benches beside `api.py` share: a `foureyes serve --demo` with extra accounts,
tokens, percentiles and the report's header. The machine, the server subprocess, its CPU and
the PostgreSQL database come from `bench/api.py` itself (imported, not copied).

The benches run as scripts (`uv run python bench/stories.py`), so `bench/` is on `sys.path`
and `api` is `bench/api.py`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import yaml

from api import (
    Server,
    foureyes_command,
    free_port,
    issue_token,
    load_average,
    machine,
    note,
    pg_database,
    serving,
)

__all__ = [
    "APPROVERS",
    "FOUREYES",
    "REQUESTER",
    "BenchFailed",
    "DemoServer",
    "People",
    "demo_server",
    "expect",
    "header",
    "issue_tokens",
    "load_average",
    "machine",
    "maybe_pg",
    "note",
    "now_utc",
    "percentile",
    "vit_accounts",
]

# The console script of the venv the bench runs in (`.venv/bin/foureyes`), as api.py runs it.
FOUREYES = Path(sys.executable).with_name("foureyes")
DEFAULT_PG_URL = os.environ.get(
    "FOUREYES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# The story of the example policy (src/foureyes/examples/policy.yaml) the benches tell: a
# support agent asks to suspend a very important account (tier `vit`: ≥ 1M followers); rule
# `vit-suspension` wants two approvals by trust & safety, with no delay and no step-up; once
# approved, the background worker carries it out.
REQUESTER = "e-2001"  # Ana Lima, support
APPROVERS = ("e-3001", "e-3002", "e-3003", "c-3004", "e-9001")  # everyone in trust-safety
STORY_ACTION = "account.suspend"
VIT_FOLLOWERS = 2_000_000


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in 0..1) of unsorted `samples`; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def vit_accounts(count: int, prefix: str = "bench") -> list[str]:
    """The ids of `count` extra demo accounts, each very important (tier `vit`)."""
    return [f"{prefix}-{n:05d}" for n in range(count)]


def _staff_file(path: Path, accounts: Sequence[str]) -> None:
    """The packaged example staff directory with `accounts` added to its demo accounts.
    `serve --demo` keeps a staff.yaml it finds in a new data directory (`datadir.initialize`
    copies the example only where there is none) and seeds the chirp platform from it."""
    document = yaml.safe_load((files("foureyes") / "examples" / "staff.yaml").read_text())
    document["accounts"] = [
        *document.get("accounts", []),
        *({"id": a, "followers": VIT_FOLLOWERS, "verified": True} for a in accounts),
    ]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@dataclass
class DemoServer:
    """A running `foureyes serve --demo`: where it listens, its data and environment."""

    server: Server
    base: str
    data_dir: Path
    env: Mapping[str, str]
    database: str  # "SQLite" or "PostgreSQL"

    @property
    def pid(self) -> int:
        """The server's process (and process group: it runs in its own session)."""
        return self.server.process.pid


@contextlib.contextmanager
def demo_server(
    workdir: Path,
    database: str,
    pg_url: str | None,
    *,
    accounts: Sequence[str] = (),
    workers: int = 1,
    worker_interval: float | None = None,
    worker: bool = True,
    name: str = "",
) -> Iterator[DemoServer]:
    """`foureyes serve --demo` on a fresh data directory (on PostgreSQL at `pg_url` when given),
    with `accounts` as extra vit accounts on the chirp demo platform; up (`/healthz` 200) when
    it yields; stopped (SIGTERM) after."""
    tag = f"{database.lower()}{('-' + name) if name else ''}"
    data_dir = workdir / f"data-{tag}"
    if accounts:
        _staff_file(data_dir / "staff.yaml", accounts)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    if pg_url is not None:
        env["FOUREYES_DATABASE_URL"] = pg_url
    command = foureyes_command(data_dir, port, workers)
    if worker_interval is not None:
        command += ["--worker-interval", str(worker_interval)]
    if not worker:
        command.append("--no-worker")
    note(
        f"foureyes serve --demo on {database} (port {port}, {workers} process(es), "
        f"worker {'off' if not worker else f'every {worker_interval or 5.0:g} s'}, "
        f"{len(accounts)} extra accounts)"
    )
    server = Server(f"foureyes on {database}", command, env=env, log=workdir / f"serve-{tag}.log")
    base = f"http://127.0.0.1:{port}"
    with serving(server):
        server.wait_until(f"{base}/healthz", expect=200)
        yield DemoServer(server, base, data_dir, env, database)


@contextlib.contextmanager
def maybe_pg(database: str, admin_url: str) -> Iterator[str | None]:
    """None for SQLite; for PostgreSQL a fresh database (api.py's `pg_database`), dropped
    after."""
    if database == "SQLite":
        yield None
        return
    with pg_database(admin_url) as url:
        yield url


def issue_tokens(demo: DemoServer, staff_ids: Sequence[str]) -> dict[str, str]:
    """A token per person, each issued by `foureyes staff token` on the server's data (as
    api.py issues its one), a few at a time."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        tokens = pool.map(lambda s: issue_token(demo.data_dir, demo.env, s), staff_ids)
        return dict(zip(staff_ids, tokens, strict=True))


def header(title: str, started: str, load_before: str, settings: str) -> None:
    """The report's first lines: the machine, when, the load average before, the settings."""
    print(f"## {title}")
    print()
    print(f"Machine: {machine()}")
    print(f"Run at {started}; load average before: {load_before}; after: {load_average()}")
    print(f"Settings: {settings}")
    print()


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


class BenchFailed(RuntimeError):
    """A call was not answered as the bench expects: the figures would mean nothing."""


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    """The answer's JSON, if it has `status`; else BenchFailed naming `what`."""
    if response.status_code != status:
        raise BenchFailed(f"{what}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


# Well under uvicorn's `timeout_keep_alive` (5 s), which `foureyes serve` keeps.
KEEPALIVE_SECONDS = 2.0


class People:
    """One AsyncClient per person, with their token."""

    def __init__(self, base: str, tokens: Mapping[str, str], concurrency: int) -> None:
        # An idle connection is dropped here before the server drops it: uvicorn closes one
        # idle for 5 s (`timeout_keep_alive`), httpx's default keeps it 5 s too, and a request
        # sent on it as the server closes it fails with `httpx.ReadError` (a POST is not
        # retried): the PostgreSQL drain of bench/worker.py, where stories wait, once crashed so.
        limits = httpx.Limits(
            max_connections=concurrency + 2,
            max_keepalive_connections=None,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        self.clients = {
            who: httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
                limits=limits,
            )
            for who, token in tokens.items()
        }

    def __getitem__(self, who: str) -> httpx.AsyncClient:
        return self.clients[who]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
