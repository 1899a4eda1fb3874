"""In-process cost of one `POST /v1/requests` for an allowed action carried out at once.

What the route does, without HTTP: the token's check (`authenticate_bearer`), the submit
(`answered.submit_run_or_replay`) and the answer's view (`show_submitted`), for `account.view` on a
demo account by a support agent (`e-2001`), the call `bench/api.py` times. On a fresh SQLite
file and on a fresh PostgreSQL database (created for the run and dropped after it), it reports
per submit: statements sent, transactions (BEGINs), and CPU ms of this process (the database
server's own CPU not counted), after a warm-up. With `--profile` it prints cProfile's top
functions by cumulative time.

    uv run --locked python bench/submit.py --submits 300
    uv run --locked python bench/submit.py --no-pg --profile 40
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event

from foureyes import bootstrap
from foureyes.auth.bearer import authenticate_bearer
from foureyes.auth.tokens import issue_token
from foureyes.policy.directory import load_directory
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.workflow import answered, operations
from foureyes.workflow.submit import Submission

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REQUESTER = "e-2001"
SUBMISSION = Submission("account.view", "chirp:alice", {}, client="127.0.0.1")


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    name = f"foureyes_bench_submit_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def measure(url: str, submits: int, warmup: int, profile: int) -> dict[str, float]:
    database = Database(url)
    migrate.upgrade(database)
    services = bootstrap.build_services(database, connectors={"chirp": ("demo", {})})
    directory = load_directory(EXAMPLES / "staff.yaml")
    operations.seed(
        services,
        policy_text=(EXAMPLES / "policy.yaml").read_text(),
        directory=directory,
        demo_accounts=list(directory.accounts),
    )
    token = issue_token(services, REQUESTER)
    counts = {"statements": 0, "begins": 0}

    def executed(*args: Any) -> None:
        counts["statements"] += 1

    def began(*args: Any) -> None:
        counts["begins"] += 1

    def one() -> None:
        actor = authenticate_bearer(services, token, None, client="127.0.0.1")
        submitted, outcome = answered.submit_run_or_replay(services, actor, SUBMISSION)
        if outcome is None or outcome.state.value != "executed":
            raise RuntimeError(f"the submit was not carried out: {outcome}")
        answered.show_submitted(services, actor, submitted)  # the route's answer

    for _ in range(warmup):
        one()
    event.listen(database.engine, "before_cursor_execute", executed)
    event.listen(database.engine, "begin", began)
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu = time.process_time()
    wall = time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(submits):
        one()
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    event.remove(database.engine, "before_cursor_execute", executed)
    event.remove(database.engine, "begin", began)
    database.dispose()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return {
        "statements": counts["statements"] / submits,
        "transactions": counts["begins"] / submits,
        "cpu_ms": cpu * 1000 / submits,
        "wall_ms": wall * 1000 / submits,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--submits", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "FOUREYES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| database | statements/submit | transactions/submit | CPU ms/submit | wall ms |")
    print("|---|--:|--:|--:|--:|")
    rows: list[tuple[str, dict[str, float]]] = []
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/foureyes.db"
            rows.append(("SQLite", measure(url, args.submits, args.warmup, args.profile)))
    if not args.no_pg:
        with pg_database(args.pg_url) as url:
            rows.append(("PostgreSQL", measure(url, args.submits, args.warmup, args.profile)))
    for name, got in rows:
        print(
            f"| {name} | {got['statements']:.1f} | {got['transactions']:.1f} | "
            f"{got['cpu_ms']:.2f} | {got['wall_ms']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
